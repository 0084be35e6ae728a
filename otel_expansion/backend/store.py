"""The embedded backend's SQL store: one SQLite file holding what the OTLP receiver accepted.

Why SQLite and not DuckDB: it ships with Python (zero install, nothing for a user to build or trust),
WAL mode lets the receiver's threads write while the report and dashboard read, and a single file of
aggregated metric points and command spans is plenty for one team's product telemetry. DuckDB would be
faster for wide scans but is a compiled dependency with a single-writer process model. At fleet scale
the path is different anyway: the collector's ClickHouse exporter (see collector-config/).

Schema notes:
- ``resources`` are deduplicated by a hash of their attributes (minus the batch id attribute).
- Spans and metric points keep their full attributes as JSON plus the few columns reports group by
  (command, outcome, error type, session, exit code), so queries never parse JSON on the hot path.
- Metric points are stored as received, with their temporality. The SDK sends delta; cumulative points
  (from other SDKs or a collector's deltatocumulative processor) are kept verbatim, and the report turns
  them into deltas per series (see report.py).
- ``seen_batches`` records every (batch id + content digest, signal) stored, so a retried batch is dropped
  whether it arrives directly (HTTP header) or through a collector (resource attribute), while a batch a
  collector split into several requests is stored whole (each part has its own content). The check and
  the insert run in one ``BEGIN IMMEDIATE`` transaction, so two concurrent copies cannot both be stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from otel_expansion.backend.ingest import ResourceData

__all__ = ["SCHEMA_VERSION", "Store", "WriteResult", "connect"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,
    service_name TEXT,
    service_version TEXT,
    installation_id TEXT,
    first_seen_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources(id),
    scope_name TEXT NOT NULL,
    scope_version TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    command TEXT,
    outcome TEXT,
    error_type TEXT,
    session_id TEXT,
    exit_code INTEGER,
    received_ns INTEGER NOT NULL,
    UNIQUE (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_start ON spans(start_ns);
CREATE INDEX IF NOT EXISTS spans_command ON spans(command);
CREATE TABLE IF NOT EXISTS metric_points (
    id INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources(id),
    scope_name TEXT NOT NULL,
    scope_version TEXT NOT NULL,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    kind TEXT NOT NULL,
    temporality TEXT,
    monotonic INTEGER,
    attributes TEXT NOT NULL,
    command TEXT,
    outcome TEXT,
    error_type TEXT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    value REAL,
    count INTEGER,
    sum REAL,
    min REAL,
    max REAL,
    bounds TEXT,
    bucket_counts TEXT,
    received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS metric_points_name_end ON metric_points(name, end_ns);
CREATE INDEX IF NOT EXISTS metric_points_end ON metric_points(end_ns);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources(id),
    scope_name TEXT NOT NULL,
    scope_version TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    observed_ns INTEGER NOT NULL,
    severity_number INTEGER NOT NULL,
    severity_text TEXT NOT NULL,
    event_name TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_time ON logs(time_ns);
CREATE TABLE IF NOT EXISTS seen_batches (
    batch_id TEXT NOT NULL,
    signal TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (batch_id, signal)
) WITHOUT ROWID;
"""

_SPAN_INSERT = f"INSERT OR IGNORE INTO spans VALUES (NULL, ?, {', '.join(['?'] * 19)}, ?)"
_POINT_INSERT = f"INSERT INTO metric_points VALUES (NULL, ?, {', '.join(['?'] * 20)}, ?)"
_LOG_INSERT = f"INSERT INTO logs VALUES (NULL, ?, {', '.join(['?'] * 11)}, ?)"


def connect(db_path: Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """Open (creating if needed) the store in WAL mode, with the schema in place; autocommit mode."""
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db_path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except BaseException:
            conn.close()
            raise
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one request added; ``duplicates`` counts resources dropped as already-stored batches."""

    resources: int = 0
    duplicates: int = 0
    spans: int = 0
    points: int = 0
    logs: int = 0


class Store:
    """Write side of the store; one instance per thread (SQLite connections are cheap)."""

    def __init__(self, db_path: Path) -> None:
        self._conn = connect(db_path)
        self._resource_ids: dict[str, int] = {}

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(
        self, signal: str, resources: Sequence[ResourceData], batch_id: str | None = None
    ) -> WriteResult:
        """Store one decoded request, dropping batches already stored; atomic per request."""
        now = time.time_ns()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            kept: list[ResourceData] = []
            keys: set[str] = set()
            for resource in resources:
                bid = resource.batch_id or batch_id
                if bid is None:
                    kept.append(resource)
                    continue
                key = f"{bid}:{_digest(resource)}"
                if key in keys or self._seen(key, signal):
                    continue
                keys.add(key)
                kept.append(resource)
            spans = points = logs = 0
            for resource in kept:
                rid = self._resource_id(resource, now)
                if resource.spans:
                    before = conn.total_changes
                    conn.executemany(_SPAN_INSERT, [(rid, *row, now) for row in resource.spans])
                    spans += conn.total_changes - before
                if resource.points:
                    conn.executemany(_POINT_INSERT, [(rid, *row, now) for row in resource.points])
                    points += len(resource.points)
                if resource.logs:
                    conn.executemany(_LOG_INSERT, [(rid, *row, now) for row in resource.logs])
                    logs += len(resource.logs)
            conn.executemany(
                "INSERT OR IGNORE INTO seen_batches VALUES (?, ?, ?)", [(k, signal, now) for k in keys]
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._resource_ids.clear()  # ids inserted in the rolled-back transaction are gone
            raise
        return WriteResult(len(kept), len(resources) - len(kept), spans, points, logs)

    def _seen(self, batch_id: str, signal: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM seen_batches WHERE batch_id = ? AND signal = ?", (batch_id, signal)
        ).fetchone()
        return row is not None

    def _resource_id(self, resource: ResourceData, now: int) -> int:
        attributes = json.dumps(
            resource.attributes, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        digest = hashlib.sha256(attributes.encode()).hexdigest()
        cached = self._resource_ids.get(digest)
        if cached is not None:
            return cached
        attrs = resource.attributes
        self._conn.execute(
            "INSERT OR IGNORE INTO resources (hash, attributes, service_name, service_version,"
            " installation_id, first_seen_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (
                digest,
                attributes,
                _str(attrs.get("service.name")),
                _str(attrs.get("service.version")),
                _str(attrs.get("otel_expansion.installation.id")),
                now,
            ),
        )
        rid = int(self._conn.execute("SELECT id FROM resources WHERE hash = ?", (digest,)).fetchone()[0])
        self._resource_ids[digest] = rid
        return rid


def _digest(resource: ResourceData) -> str:
    """Content of one resource entry: a retried batch repeats it exactly, a split one does not."""
    h = hashlib.sha1(resource.fingerprint)
    h.update(repr((resource.spans, resource.points, resource.logs)).encode())
    return h.hexdigest()[:20]


def _str(value: object) -> str | None:
    return None if value is None else str(value)
