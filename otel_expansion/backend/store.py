"""The embedded backend's SQL store: raw rows for drill-down plus the rollups the report reads.

Why SQLite: it ships with Python (nothing to install or trust), WAL lets the receiver's threads write
while the report reads, and with rollups kept at ingest the report reads a number of rows that depends
on the groups (days x apps x versions x commands ...), not on how many invocations were stored: under
300 ms at 10M stored invocations on a 2-core box (benchmarks/bench_backend.py), so no analytics engine
is needed. The fleet path is ClickHouse (see clickhouse.py and collector-config/).

Tables:
- raw: ``resources`` (deduplicated by attribute hash), ``spans``, ``metric_points``, ``logs``; kept
  ``retention_days`` (default 30; rollups are kept forever), pruned at most once an hour by the writer.
  A span is stored once per (start time, trace id, span id): a re-sent span repeats all three. A store created
  at schema 6 keeps those keys in two levels instead of a unique index on ``spans`` (which dirtied one random
  index page per span: the start time of a span arriving is a minute or two old): the spans above a merged mark
  (their keys held in memory by the writer, rebuilt from the table whenever it may be stale) and ``span_keys``,
  which they join ``MERGE_SPANS`` at a time in one sorted insert; a new span is looked up in both before it is
  inserted (Store._new_spans). Stores created before schema 6 keep their unique index (Stores created before
  0.3: on (trace id, span id)) and the INSERT OR IGNORE path.
- rollups (see rollup.py): ``r_metric``, ``r_bucket``, ``r_exp``, ``r_env``, ``r_error`` (error counters by
  stack signature, also kept for all time as grain 0); ``active``/``active_count`` (distinct
  installations per day and per week, each app version and all versions, '*'); ``installations``;
  ``sessions`` (one row per session id seen on spans, open or ended) with its histogram ``r_session``.
- bookkeeping: ``seen_batches``, ``cumulative`` (last point of cumulative series, to store deltas),
  ``dim_values`` (distinct values per app and dimension, for the cardinality limit), ``limits`` (what
  the limits cut), ``counters`` (stored row counts: COUNT(*) over 10M rows is too slow for a report).

Duplicates (the contract with the sender): a request part is identified by its batch id (header
X-Otel-Expansion-Batch-Id, or the ``otel_expansion.batch.id`` resource attribute a collector keeps) plus its
content (ingest.content_id, the entry's fingerprint; stores before schema 5 hold a digest of its rows instead,
still recognised: see Store._stored). The same id with the same content is stored once, whatever path or order
it arrives by; each part of a 413-split batch has its own stable id and fixed content, so every part is stored
exactly once and a retried part is dropped. The check, the raw rows and the rollup updates commit in one
``BEGIN IMMEDIATE`` transaction, so a duplicate can never be counted in the rollups and two concurrent copies
cannot both be stored. Requests without a batch id are all stored.

Group commit: ``write_group`` stores several requests in one transaction, each in a SAVEPOINT (a failing
request is rolled back alone), their rollups merged in memory and upserted once per key; the receiver's
single writer thread uses it, so N senders no longer contend for SQLite's write lock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import marshal
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import add
from pathlib import Path
from typing import Any

from otel_expansion.backend.ingest import PointRow, ResourceData, SpanRow, content_id, session_totals
from otel_expansion.backend.ingest import digest as _digest
from otel_expansion.backend.limits import OTHER, Limits, clip_resource
from otel_expansion.backend.rollup import (
    BUCKET_SLOTS,
    DAY_NS,
    ERROR_METRICS,
    INVOCATIONS,
    Rolled,
    Rollup,
    as_string,
    decode_exponential,
    encode_exponential,
    exponential_of,
    roll,
    session_bucket,
    week_of,
    weekly,
)
from otel_expansion.otlp import exponential

__all__ = [
    "MERGE_SPANS", "SCHEMA_VERSION", "ForeignDatabase", "Store", "WriteResult", "connect", "merge_span_keys",
    "open_readonly", "span_keys_kept",
]

logger = logging.getLogger("otel_expansion.backend.server")

SCHEMA_VERSION = 6
DEFAULT_RETENTION_DAYS = 30.0
_PRUNE_EVERY_NS = 3600 * 10**9
_RESOURCE_CACHE = 50_000
"""Resource ids a Store remembers (digest -> id) before starting over; a miss costs one indexed lookup."""
_EXP_CACHE = 20_000
"""Exponential rollup rows the writer keeps decoded (valid while no other connection writes: data_version)."""
_KNOWN_CACHE = 200_000
"""Admitted dimension values a Store remembers (values are never un-admitted, so a hit needs no query)."""
MERGE_SPANS = 8_192
"""Spans a schema-6 store keeps in its recent level (ids above the merged mark, their keys held in memory by the
writer) before their keys join ``span_keys`` in one sorted insert (see Store._new_spans): a merge dirties at most
this many pages of span_keys (32 MiB of WAL at worst, a few MiB when the spans' start times are close)."""
_PROBE_CHUNK = 1_024
"""Span keys looked up in ``span_keys`` per statement (3 parameters each, far below SQLite's limit); fewer are
padded to the next power of two, so the statements the writer prepares are a handful, not one per count."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, attributes TEXT NOT NULL, service_name TEXT,
    service_version TEXT, installation_id TEXT, first_seen_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY, resource_id INTEGER NOT NULL REFERENCES resources(id), scope_name TEXT NOT NULL,
    scope_version TEXT NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL, kind INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL, status_code INTEGER NOT NULL, status_message TEXT NOT NULL,
    attributes TEXT NOT NULL, events TEXT NOT NULL, command TEXT, outcome TEXT, error_type TEXT,
    session_id TEXT, exit_code INTEGER, received_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS span_keys (
    start_ns INTEGER NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL, id INTEGER NOT NULL,
    PRIMARY KEY (start_ns, trace_id, span_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_points (
    id INTEGER PRIMARY KEY, resource_id INTEGER NOT NULL REFERENCES resources(id), scope_name TEXT NOT NULL,
    scope_version TEXT NOT NULL, name TEXT NOT NULL, unit TEXT NOT NULL, kind TEXT NOT NULL, temporality TEXT,
    monotonic INTEGER, attributes TEXT NOT NULL, command TEXT, outcome TEXT, error_type TEXT,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, value REAL, count INTEGER, sum REAL, min REAL,
    max REAL, bounds TEXT, bucket_counts TEXT, received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS metric_points_end ON metric_points(end_ns);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY, resource_id INTEGER NOT NULL REFERENCES resources(id), scope_name TEXT NOT NULL,
    scope_version TEXT NOT NULL, time_ns INTEGER NOT NULL, observed_ns INTEGER NOT NULL,
    severity_number INTEGER NOT NULL, severity_text TEXT NOT NULL, event_name TEXT NOT NULL, body TEXT NOT NULL,
    attributes TEXT NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL, received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_time ON logs(time_ns);
CREATE TABLE IF NOT EXISTS seen_batches (
    batch_id TEXT NOT NULL, signal TEXT NOT NULL, received_ns INTEGER NOT NULL, PRIMARY KEY (batch_id, signal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r_metric (
    metric TEXT NOT NULL, grain INTEGER NOT NULL, day INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL,
    command TEXT NOT NULL, outcome TEXT NOT NULL, error_type TEXT NOT NULL, label TEXT NOT NULL,
    kind TEXT NOT NULL, value REAL NOT NULL, errors REAL NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,
    min REAL, max REAL, last_ns INTEGER NOT NULL,
    PRIMARY KEY (metric, grain, day, service, version, command, outcome, error_type, label)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r_bucket (
    metric TEXT NOT NULL, grain INTEGER NOT NULL, day INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL,
    command TEXT NOT NULL, label TEXT NOT NULL, bounds TEXT NOT NULL, {BUCKET_COLUMNS},
    PRIMARY KEY (metric, grain, day, service, version, command, label, bounds)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r_exp (
    metric TEXT NOT NULL, grain INTEGER NOT NULL, day INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL,
    command TEXT NOT NULL, label TEXT NOT NULL, buckets BLOB NOT NULL,
    PRIMARY KEY (metric, grain, day, service, version, command, label)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS r_exp_all_commands ON r_exp(metric, command, grain, day);
CREATE INDEX IF NOT EXISTS r_exp_all_apps ON r_exp(metric, service, grain, day);
CREATE TABLE IF NOT EXISTS r_error (
    metric TEXT NOT NULL, grain INTEGER NOT NULL, day INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL,
    command TEXT NOT NULL, error_type TEXT NOT NULL, signature TEXT NOT NULL, n REAL NOT NULL,
    PRIMARY KEY (metric, grain, day, service, version, command, error_type, signature)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS app_days (
    service TEXT NOT NULL, version TEXT NOT NULL, first_day INTEGER NOT NULL, last_day INTEGER NOT NULL,
    PRIMARY KEY (service, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r_env (
    grain INTEGER NOT NULL, day INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, invocations REAL NOT NULL, PRIMARY KEY (grain, day, service, version, key, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS active (
    kind TEXT NOT NULL, period INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL,
    installation_id TEXT NOT NULL, PRIMARY KEY (kind, period, service, version, installation_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS active_count (
    kind TEXT NOT NULL, period INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (kind, period, service, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS installations (
    service TEXT NOT NULL, version TEXT NOT NULL, installation_id TEXT NOT NULL, first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL, PRIMARY KEY (service, version, installation_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS installations_version ON installations(version, installation_id);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, service TEXT NOT NULL, version TEXT NOT NULL, day INTEGER NOT NULL,
    first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, commands INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_last ON sessions(last_ns);
CREATE INDEX IF NOT EXISTS sessions_length ON sessions((last_ns - first_ns) / 1e9);
CREATE INDEX IF NOT EXISTS sessions_commands ON sessions(commands);
CREATE TABLE IF NOT EXISTS r_session (
    kind TEXT NOT NULL, day INTEGER NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL, lo REAL NOT NULL,
    hi REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (kind, day, service, version, lo, hi)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cumulative (
    series TEXT PRIMARY KEY, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, value REAL, count INTEGER,
    sum REAL, bounds TEXT, bucket_counts TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dim_values (
    service TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (service, key, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS limits (
    service TEXT NOT NULL, what TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (service, what)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

_SCHEMA = _SCHEMA.replace(
    "{BUCKET_COLUMNS}", ", ".join(f"c{i} INTEGER NOT NULL DEFAULT 0" for i in range(BUCKET_SLOTS))
)
_SPAN_INSERT = f"INSERT OR IGNORE INTO spans VALUES (NULL, ?, {', '.join(['?'] * 19)}, ?)"
_POINT_INSERT = f"INSERT INTO metric_points VALUES (NULL, ?, {', '.join(['?'] * 20)}, ?)"


def _span_insert(rid: int, now: int, ignore: bool = True) -> str:
    """The span insert with the resource id and receipt time written in (a packed row is the stored columns
    alone: executemany takes the worker's tuples as they are, no tuple built per row here); ``ignore``: OR
    IGNORE, for a store whose unique span index drops a re-sent span (before schema 6)."""
    verb = "INSERT OR IGNORE" if ignore else "INSERT"
    return f"{verb} INTO spans VALUES (NULL, {int(rid)}, {', '.join(['?'] * 19)}, {int(now)})"


@functools.lru_cache(maxsize=64)
def _probe_sql(n: int) -> str:
    """The keys of ``n`` (start, trace id, span id) triples that span_keys holds (a primary-key lookup each)."""
    values = ", ".join(["(?, ?, ?)"] * n)
    return (f"SELECT k.start_ns, k.trace_id, k.span_id FROM (VALUES {values}) AS v CROSS JOIN span_keys AS k"
            " ON k.start_ns = v.column1 AND k.trace_id = v.column2 AND k.span_id = v.column3")


def span_keys_kept(conn: sqlite3.Connection) -> bool:
    """Whether this store keeps its span keys in two levels (created at schema 6: no unique index on spans)."""
    return not any(row[2] for row in conn.execute("PRAGMA index_list(spans)"))


def _merged_mark(conn: sqlite3.Connection) -> int:
    """The largest span id whose key is in span_keys (spans above it are the recent level)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'span_keys_upto'").fetchone()
    return 0 if row is None else int(row[0])


def merge_span_keys(conn: sqlite3.Connection) -> None:
    """Move the recent level's keys into span_keys, sorted (one pass over the index's recent pages instead of a
    random page per span), inside the caller's write transaction."""
    mark = _merged_mark(conn)
    top = conn.execute("SELECT MAX(id) FROM spans").fetchone()[0] or 0
    if top > mark:
        conn.execute("INSERT INTO span_keys SELECT start_ns, trace_id, span_id, id FROM spans WHERE id > ?"
                     " ORDER BY start_ns, trace_id, span_id", (mark,))
    if top != mark:  # below the mark after a prune deleted the latest spans: new ids start above the top
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('span_keys_upto', ?)", (str(top),))


def _point_insert(rid: int, now: int) -> str:
    """The point insert for packed rows (see _span_insert)."""
    return f"INSERT INTO metric_points VALUES (NULL, {int(rid)}, {', '.join(['?'] * 20)}, {int(now)})"


_LOG_INSERT = f"INSERT INTO logs VALUES (NULL, ?, {', '.join(['?'] * 11)}, ?)"
_METRIC_UPSERT = """
INSERT INTO r_metric VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO UPDATE SET
  value = CASE WHEN excluded.kind = 'gauge'
               THEN (CASE WHEN excluded.last_ns >= last_ns THEN excluded.value ELSE value END)
               ELSE value + excluded.value END,
  errors = errors + excluded.errors,
  count = count + excluded.count,
  sum = sum + excluded.sum,
  min = CASE WHEN min IS NULL OR excluded.min < min THEN excluded.min ELSE min END,
  max = CASE WHEN max IS NULL OR excluded.max > max THEN excluded.max ELSE max END,
  last_ns = MAX(last_ns, excluded.last_ns)
"""
_BUCKET_UPSERT = (
    f"INSERT INTO r_bucket VALUES ({', '.join(['?'] * (8 + BUCKET_SLOTS))}) ON CONFLICT DO UPDATE SET "
    + ", ".join(f"c{i} = c{i} + excluded.c{i}" for i in range(BUCKET_SLOTS))
)
_EXP_SELECT = (
    "SELECT buckets FROM r_exp WHERE metric = ? AND grain = ? AND day = ? AND service = ? AND version = ?"
    " AND command = ? AND label = ?"
)
_EXP_INSERT = "INSERT INTO r_exp VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_EXP_UPDATE = (
    "UPDATE r_exp SET buckets = ? WHERE metric = ? AND grain = ? AND day = ? AND service = ? AND version = ?"
    " AND command = ? AND label = ?"
)
_APP_DAYS_UPSERT = (
    "INSERT INTO app_days VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
    " first_day = MIN(first_day, excluded.first_day), last_day = MAX(last_day, excluded.last_day)"
)
_ENV_UPSERT = (
    "INSERT INTO r_env VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO UPDATE SET invocations = invocations + excluded.invocations"
)
_ERROR_UPSERT = "INSERT INTO r_error VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
_COUNTER_UPSERT = "INSERT INTO counters VALUES (?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
_LIMIT_UPSERT = "INSERT INTO limits VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"


class ForeignDatabase(Exception):
    """The file is an SQLite database that this backend did not create; it is left untouched."""


def connect(db_path: Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """Open (creating if needed) the store in WAL mode, with the schema in place; autocommit mode."""
    conn = sqlite3.connect(str(db_path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        version = _user_version(conn, db_path)
        _not_newer(version, db_path)
        if version != SCHEMA_VERSION:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version not in (0, 1, 2, 3, 4, 5) or (version == 0 and tables):
                raise ForeignDatabase(f"{db_path} is not an otel-expansion backend database")
            # 2 -> 3 adds the exponential rollup (r_exp); explicit-bucket rows already stored stay as they are
            # 3 -> 4 adds the error rollup by stack signature (r_error), filled from the metric rollup
            # 4 -> 5 keys new batch parts by content_id (the entry's fingerprint) instead of the digest of its
            # rows; the keys already stored stay and are still recognised (Store._stored); the number keeps an
            # older release, which would not recognise the new keys, from opening the store
            # 5 -> 6 adds span_keys; a store created before 6 keeps its unique span index (and its path: see
            # span_keys_kept); a store created at 6 has none, and an older release would store a re-sent span
            # twice in it: the number keeps that release out
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            if version == 1:
                _backfill(conn)
            elif version == 2:
                _rebuild_session_rollup(conn)
                conn.execute(
                    "INSERT OR IGNORE INTO app_days SELECT service, version, MIN(day), MAX(day) FROM r_metric"
                    " WHERE metric = ? AND grain = 1 GROUP BY service, version", (INVOCATIONS,)
                )
            if version >= 2 and "r_error" not in tables:  # by the table, not the number: merges renumber
                _backfill_errors(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _not_newer(version: int, db_path: Path) -> None:
    """A store written by a newer release is left exactly as it is (its data waits for that release)."""
    if version > SCHEMA_VERSION:
        raise ForeignDatabase(f"{db_path} was written by a newer otel-expansion (format {version}; this release "
                              f"reads up to {SCHEMA_VERSION}); left untouched")


def _exponential_delta(row: PointRow, last: Any) -> PointRow:
    """A cumulative exponential point minus the previous one, at the current (never finer) scale."""
    now = exponential_of(row.bounds, row.bucket_counts)
    before = exponential.downscale(exponential_of(last[5], last[6]), now.scale)
    if (row.samples or 0) < (last[3] or 0) or before.scale != now.scale:
        return row

    def minus(off: int, counts: tuple[int, ...], p_off: int, p_counts: tuple[int, ...]) -> list[int] | None:
        out = list(counts)
        for i, n in enumerate(p_counts):
            j = p_off + i - off
            if n and not 0 <= j < len(out):
                return None
            if n:
                out[j] -= n
        return None if any(v < 0 for v in out) else out

    pos = minus(now.offset, now.counts, before.offset, before.counts)
    neg = minus(now.negative_offset, now.negative_counts, before.negative_offset, before.negative_counts)
    zero = now.zero_count - before.zero_count
    if pos is None or neg is None or zero < 0:
        return row
    total = None if row.sum is None or last[4] is None else row.sum - last[4]
    meta = json.dumps({"scale": now.scale, "zero_count": zero, "offset": now.offset,
                       "negative_offset": now.negative_offset, "negative_counts": neg})
    return row._replace(samples=(row.samples or 0) - (last[3] or 0), sum=total, bounds=meta,
                        bucket_counts=json.dumps(pos))


def _user_version(conn: sqlite3.Connection, db_path: Path) -> int:
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        raise ForeignDatabase(f"{db_path} is not an otel-expansion backend database (not SQLite: {exc})") from None


def open_readonly(db_path: Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """A reader's connection: never creates tables; refuses a database that is not ours."""
    conn = sqlite3.connect(str(db_path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        version = _user_version(conn, db_path)
        _not_newer(version, db_path)
        if version in (1, 2, 3, 4, 5):  # an older store of ours: upgrade it once (adds the rollups)
            conn.close()
            connect(db_path, timeout_s).close()
            return open_readonly(db_path, timeout_s)
        if version != SCHEMA_VERSION:
            raise ForeignDatabase(f"{db_path} is not an otel-expansion backend database")
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


Request = tuple[str, Sequence[ResourceData], "str | None"]
"""One decoded OTLP request: (signal, resources, batch id header)."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one request added; ``duplicates`` counts resources dropped as already-stored batches."""

    resources: int = 0
    duplicates: int = 0
    spans: int = 0
    points: int = 0
    logs: int = 0


class _ExpRow:
    """An exponential rollup row the writer keeps between groups, its positive counts in a list it adds into."""

    __slots__ = ("counts", "negative_counts", "negative_offset", "offset", "scale", "zero_count")

    def __init__(self, b: exponential.Buckets) -> None:
        self.scale, self.zero_count, self.offset = b.scale, b.zero_count, b.offset
        self.counts = list(b.counts)
        self.negative_offset, self.negative_counts = b.negative_offset, b.negative_counts

    def add(self, b: exponential.Buckets) -> bool:
        """Add ``b`` in place when exponential.merge would keep this scale (same scale, no negative buckets, the
        sum within MAX_SIZE buckets); False, unchanged, otherwise."""
        if b.scale != self.scale or b.negative_counts or self.negative_counts:
            return False
        counts, new = self.counts, b.counts
        if not new or not counts:  # merge gives the other side, trimmed
            offset, trimmed = exponential.trimmed(*((self.offset, counts) if counts else (b.offset, new)))
            if len(trimmed) > exponential.MAX_SIZE:
                return False
            self.offset, self.counts = offset, list(trimmed)
            self.zero_count += b.zero_count
            self.negative_offset = 0  # as merge's result has it (no negative bucket on either side)
            return True
        start = min(self.offset, b.offset)
        end = max(self.offset + len(counts), b.offset + len(new))
        if end - start > exponential.MAX_SIZE:
            return False
        self.zero_count += b.zero_count
        self.negative_offset = 0
        if self.offset > start:
            counts[:0] = [0] * (self.offset - start)
            self.offset = start
        if len(counts) < end - start:
            counts.extend([0] * (end - start - len(counts)))
        i = b.offset - start
        counts[i:i + len(new)] = map(add, counts[i:i + len(new)], new)
        if not counts[0] or not counts[-1]:  # empty buckets at an end (a row kept untrimmed): the trimmed form
            self.offset, trimmed = exponential.trimmed(self.offset, counts)
            self.counts = list(trimmed)
        return True

    def buckets(self) -> exponential.Buckets:
        return exponential.Buckets(self.scale, self.zero_count, self.offset, tuple(self.counts),
                                   self.negative_offset, self.negative_counts)

    def encoded(self) -> bytes:
        """rollup.encode_exponential of :meth:`buckets`, byte for byte."""
        return marshal.dumps((self.scale, self.zero_count, self.offset, tuple(self.counts), self.negative_offset,
                              self.negative_counts), 2)


class Store:
    """Write side of the store; one instance per thread (SQLite connections are cheap).

    ``retention_days`` > 0 prunes raw rows older than that (by event time) after writes; the server
    passes its setting (default ``DEFAULT_RETENTION_DAYS``), the class alone keeps everything.
    """

    def __init__(
        self,
        db_path: Path,
        limits: Limits | None = None,
        retention_days: float = 0.0,
    ) -> None:
        self._conn = connect(db_path)
        self._conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: the rollups' and indexes' hot pages stay
        # checkpoint every 16 MiB of WAL, not 4: the rollup pages every group rewrites reach the database
        # file once per checkpoint, so fewer checkpoints copy far fewer pages (the server truncates the WAL
        # past its own limit, see server.WAL_LIMIT_BYTES)
        self._conn.execute("PRAGMA wal_autocheckpoint = 4096")
        self._resource_ids: dict[str, int] = {}
        self._known: set[tuple[str, str, str]] = set()
        self._exp_rows: dict[tuple[Any, ...], _ExpRow] = {}
        self._data_version: int | None = None
        self._open_day: int | None = None  # read in each write transaction until known (see _close_days)
        self._spans_before = 0  # the largest span id before the last span insert (see _inserted_spans)
        self._keyed = span_keys_kept(self._conn)
        self._recent: set[tuple[int, str, str]] | None = None  # keys of the spans above the mark (_recent_keys)
        self._merged_top: int | None = -1  # largest start in span_keys, None when empty, -1 unknown
        self._added: list[set[tuple[int, str, str]]] = []  # the keys the current request added to _recent
        self.clock: Callable[[], int] = time.time_ns
        """Receipt time in nanoseconds (a test moves it on to close days)."""
        self._limits = limits or Limits()
        self._retention_days = retention_days

    def close(self) -> None:
        self._conn.close()

    def checkpoint(self) -> None:
        """Copy the whole WAL into the database and truncate it (between transactions only)."""
        busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy is not None and busy[0]:
            raise sqlite3.OperationalError("WAL checkpoint busy (a reader holds an old snapshot)")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(
        self, signal: str, resources: Sequence[ResourceData], batch_id: str | None = None
    ) -> WriteResult:
        """Store one decoded request, dropping batches already stored; atomic per request."""
        outcome = self.write_group([(signal, resources, batch_id)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def write_group(self, requests: Sequence[Request], *, upkeep: bool = True) -> list[WriteResult | Exception]:
        """Store several decoded requests in one transaction (group commit), each atomic on its own.

        Each request runs inside its own SAVEPOINT: one that fails is rolled back alone and its exception
        returned in its place; the others commit together, so a result here means stored. A failed COMMIT
        raises (nothing of the group is stored). With ``upkeep=False`` the caller runs ``upkeep`` itself.
        """
        now = self.clock()
        conn = self._conn
        results: list[WriteResult | Exception] = []
        group: list[Rollup] = []  # the group's rollups, merged in memory (Rollup.combined): one upsert per key
        kinds: dict[str, str] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:  # another connection wrote: what we remember may be stale
                self._exp_rows.clear()
                self._open_day = None
                self._recent, self._merged_top = None, -1
                self._data_version = version
            if self._open_day is None:
                self._open_day = self._first_open_day(now)
            if now // DAY_NS > self._open_day:
                self._close_days(now // DAY_NS)
            for signal, resources, batch_id in requests:
                conn.execute("SAVEPOINT oe_request")
                self._added = []
                try:
                    result, rollup = self._write_one(signal, resources, batch_id, now)
                except Exception as exc:
                    conn.execute("ROLLBACK TO oe_request")
                    recent = self._recent
                    self._forget()  # ids and values inserted in the rolled-back savepoint are gone
                    if recent is not None:  # the span keys as before the request: those it added taken out
                        for added in self._added:
                            recent -= added
                        self._recent = recent
                    results.append(exc)
                else:
                    if any(kinds.get(name, kind) != kind for name, kind in rollup.kinds.items()):
                        self._flush(Rollup.combined(group))  # a metric whose kind changed: keep the upsert order
                        group, kinds = [], {}
                    kinds.update(rollup.kinds)
                    group.append(rollup)
                    results.append(result)
                conn.execute("RELEASE oe_request")
            if group:
                self._flush(Rollup.combined(group))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget()  # ids and values inserted in the rolled-back transaction are gone
            raise
        if upkeep:
            self.upkeep()
        return results

    def upkeep(self, after_each: Callable[[], None] | None = None) -> None:
        """The work a group leaves due, each in a transaction of its own: merging the span keys, then pruning.

        The server answers a group's senders first and passes ``after_each`` to bound the WAL between these
        transactions, so it grows by one group, one merge or one prune between its checks, never by their sum.
        """
        if self._keyed and self._recent is not None and len(self._recent) >= MERGE_SPANS:
            self._merge_spans()
            if after_each is not None:
                after_each()
        if self._maybe_prune(self.clock()) and after_each is not None:
            after_each()

    def _merge_spans(self) -> None:
        """The recent level's keys into span_keys, in a transaction of its own after the group's (no sender's
        group waits for it); a merge that fails leaves both levels as they were (the group before it is
        committed either way)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                merge_span_keys(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # retried after the next group
            logger.warning("merging span keys failed: %s", exc)
            self._recent, self._merged_top = None, -1
            return
        self._recent, self._merged_top = set(), -1

    def _forget(self) -> None:
        self._resource_ids.clear()
        self._known.clear()
        self._exp_rows.clear()
        self._recent, self._merged_top = None, -1  # span keys added in the rolled-back part are gone
        self._open_day = None  # re-read: a rolled-back transaction may have set it

    # ----------------------------------------------------------------------------------------- open days

    def _first_open_day(self, now: int) -> int:
        """The first day whose rollup rows are not in the weekly tier yet (kept in the meta table).

        A store that has none (new, or written by an older release, which wrote both tiers for every point)
        starts at today or the day after the last day it holds, whichever is later: no day already counted in
        a weekly row is ever added to it again."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'weekly_from_day'").fetchone()
        if row is not None:
            return int(row[0])
        last = max((self._conn.execute("SELECT MAX(day) FROM r_metric WHERE metric = ? AND grain = 1", (metric,)
                                       ).fetchone()[0] for metric in _metrics_in(self._conn, "r_metric")),
                   default=None)
        day = max(now // DAY_NS, -1 if last is None else last + 1)
        self._conn.execute("INSERT INTO meta VALUES ('weekly_from_day', ?)", (str(day),))
        return day

    def _close_days(self, today: int) -> None:
        """Add the daily rollup rows of every open day before ``today`` to their weeks' rows, in the caller's
        transaction, and move the first open day on.

        Why: a point of an open day (nearly every point: they arrive the day they are recorded) then writes
        its daily rollup rows only, half the rollup writes of ingest. Each day is added once, through the
        same upserts (and exponential merge) that writing both tiers per point used, in day order, so the
        weekly rows hold what they held before; a point arriving later for a closed day writes both tiers, as
        before. Readers (SQLiteEngine) read the open days from the daily tier.
        """
        assert self._open_day is not None
        first, end = self._open_day, today
        conn = self._conn
        for metric in _metrics_in(conn, "r_metric"):
            conn.executemany(_METRIC_UPSERT, [
                (metric, 7, week_of(r[0]), *r[1:]) for r in conn.execute(
                    "SELECT day, service, version, command, outcome, error_type, label, kind, value, errors, count,"
                    " sum, min, max, last_ns FROM r_metric WHERE metric = ? AND grain = 1 AND day >= ? AND day < ?"
                    " ORDER BY day, service, version, command, outcome, error_type, label", (metric, first, end)
                ).fetchall()])
        slots = ", ".join(f"c{i}" for i in range(BUCKET_SLOTS))
        for metric in _metrics_in(conn, "r_bucket"):
            conn.executemany(_BUCKET_UPSERT, [
                (metric, 7, week_of(r[0]), *r[1:]) for r in conn.execute(
                    f"SELECT day, service, version, command, label, bounds, {slots} FROM r_bucket"
                    " WHERE metric = ? AND grain = 1 AND day >= ? AND day < ?", (metric, first, end)
                ).fetchall()])
        for metric in _metrics_in(conn, "r_exp"):
            merged: dict[tuple[Any, ...], exponential.Buckets] = {}
            for day, *rest, blob in conn.execute(
                "SELECT day, service, version, command, label, buckets FROM r_exp WHERE metric = ? AND grain = 1"
                " AND day >= ? AND day < ? ORDER BY day, service, version, command, label", (metric, first, end)
            ).fetchall():
                key = (metric, week_of(day), *rest)
                have = merged.get(key)
                b = decode_exponential(blob)
                merged[key] = b if have is None else exponential.merge(have, b)
            self._upsert_exp(7, merged)
        for metric in _metrics_in(conn, "r_error"):
            conn.executemany(_ERROR_UPSERT, [
                (metric, 7, week_of(r[0]), *r[1:]) for r in conn.execute(
                    "SELECT day, service, version, command, error_type, signature, n FROM r_error"
                    " WHERE metric = ? AND grain = 1 AND day >= ? AND day < ?", (metric, first, end)
                ).fetchall()])
        conn.executemany(_ENV_UPSERT, [
            (7, week_of(r[0]), *r[1:]) for r in conn.execute(
                "SELECT day, service, version, key, value, invocations FROM r_env"
                " WHERE grain = 1 AND day >= ? AND day < ?", (first, end)
            ).fetchall()])
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('weekly_from_day', ?)", (str(end),))
        self._open_day = end

    def _write_one(
        self, signal: str, resources: Sequence[ResourceData], batch_id: str | None, now: int
    ) -> tuple[WriteResult, Rollup]:
        """One request's raw rows, sessions and bookkeeping, inside the caller's transaction; its rollup
        aggregates are returned for the caller to flush (rollup tables are read nowhere during ingest)."""
        conn = self._conn
        kept: list[ResourceData] = []
        keys: set[str] = set()
        for resource in resources:
            bid = resource.batch_id or batch_id
            if bid is None:
                kept.append(resource)
                continue
            if resource.digest is None:
                resource.digest = content_id(resource)
            key = f"{bid}:{resource.digest}"
            if key in keys or self._stored(bid, key, resource, signal) or any(
                self._seen(a, signal) for a in _ancestors(bid)
            ):
                continue
            keys.add(key)
            keys.add(bid)  # a part of this batch split later (after a lost reply) is then known stored
            kept.append(resource)
        spans = points = logs = 0
        rollup = Rollup()
        done: list[Rollup] = []
        cut: Counter[tuple[str, str]] = Counter()
        for resource in kept:
            counts: Counter[str] = Counter(resource.cut or ())
            if resource.cut is None:  # not cut by a decoding worker (decoding.prepare): cut here
                resource.unpack()
                clip_resource(resource, self._limits, counts)
            rid = self._resource_id(resource, now)
            service, version = self._app(resource, counts)
            packed = resource.packed
            if self._keyed and ((packed is not None and packed.spans) or resource.spans):
                n, sessions = self._insert_keyed(rid, now, resource)
                spans += n
                self._sessions(service, version, sessions)
                packed = resource.packed  # None when the rows had to be named (a duplicate span)
            elif packed is not None and packed.spans:
                if self._insert_packed(_span_insert(rid, now), packed.span_rows, packed.spans):
                    spans += packed.spans
                    self._sessions(service, version, packed.sessions)
                else:  # some span was already stored: the named rows tell which
                    resource.unpack()
                    packed = None
                    inserted = self._inserted_spans(resource.spans)
                    spans += len(inserted)
                    self._sessions(service, version, session_totals(inserted))
            elif resource.spans:
                inserted = self._insert_spans(rid, resource.spans, now)
                spans += len(inserted)
                self._sessions(service, version, session_totals(inserted))
            rolled = resource.rolled
            if (packed is not None and packed.points) or resource.points:
                if isinstance(rolled, Rolled) and self._admits_all(rolled, service, version):
                    if packed is not None and packed.points:
                        conn.executemany(_point_insert(rid, now), marshal.loads(packed.point_rows))
                        points += packed.points
                    else:
                        conn.executemany(_POINT_INSERT, [(rid, *row, now) for row in resource.points])
                        points += len(resource.points)
                    done.append(rolled.rollup)  # rolled by a decoding worker with these very values
                    counts.update(rolled.counts)
                else:  # a value the worker kept is cut here (or a cumulative point): the writer rolls the rows
                    resource.unpack()
                    conn.executemany(_POINT_INSERT, [(rid, *row, now) for row in resource.points])
                    points += len(resource.points)
                    self._roll(rollup, resource, service, version, counts)
            if resource.logs:
                conn.executemany(_LOG_INSERT, [(rid, *row, now) for row in resource.logs])
                logs += len(resource.logs)
            for what, n in counts.items():
                cut[(service, what)] += n
        if cut:
            conn.executemany(_LIMIT_UPSERT, [(s, w, n) for (s, w), n in cut.items()])
        conn.executemany(
            _COUNTER_UPSERT, [(name, n) for name, n in (("spans", spans), ("metric_points", points),
                                                        ("logs", logs)) if n]
        )
        conn.executemany(
            "INSERT OR IGNORE INTO seen_batches VALUES (?, ?, ?)", [(k, signal, now) for k in keys]
        )
        if done and not rollup.metrics and not rollup.env and len(done) == 1:
            rollup = done[0]
        else:
            for other in done:
                rollup.absorb(other)
        return WriteResult(len(kept), len(resources) - len(kept), spans, points, logs), rollup

    def _admits_all(self, rolled: Rolled, service: str, version: str) -> bool:
        """Whether every dimension value a worker rolled up under is stored as it is (else: roll again here)."""
        if (rolled.service, rolled.version) != (service, version):
            return False
        scratch: Counter[str] = Counter()  # a value cut to (other) is counted when the entry is rolled again
        return all(self._admit(s, key, value, scratch) == value for s, key, value in rolled.admitted)

    # ------------------------------------------------------------------------------------------ raw rows

    def _stored(self, bid: str, key: str, resource: ResourceData, signal: str) -> bool:
        """Whether this content of batch ``bid`` is stored: under ``key`` (its content_id), or, by a release
        before schema 5, under the digest of its rows (ingest.digest).

        One range read of the batch's keys (none, for a new batch); the rows' digest is computed only when the
        batch holds another key (a retried batch stored before the upgrade; parts of one batch)."""
        found = {row[0] for row in self._conn.execute(
            "SELECT batch_id FROM seen_batches WHERE batch_id >= ? AND batch_id < ? AND signal = ?",
            (bid + ":", bid + ";", signal),  # every key "<bid>:...": ';' follows ':'
        )}
        if not found:
            return False
        if key in found:
            return True
        legacy = resource.legacy_digest
        if legacy is None:  # the rows are as received unless the limits cut them (then legacy_digest is set)
            resource.unpack()
            legacy = _digest(resource)
        return f"{bid}:{legacy}" in found

    def _seen(self, batch_id: str, signal: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM seen_batches WHERE batch_id = ? AND signal = ?", (batch_id, signal)
        ).fetchone()
        return row is not None

    def _resource_id(self, resource: ResourceData, now: int) -> int:
        attributes = json.dumps(resource.attributes, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
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
        if len(self._resource_ids) >= _RESOURCE_CACHE:  # the server's one writer lives long: stay bounded
            self._resource_ids.clear()
        self._resource_ids[digest] = rid
        return rid

    def _insert_keyed(self, rid: int, now: int, resource: ResourceData) -> tuple[int, dict[str, list[int]]]:
        """A schema-6 store: insert the entry's spans new to the store (_new_spans); (how many, their sessions'
        totals)."""
        packed = resource.packed
        if packed is not None and packed.spans:
            rows = marshal.loads(packed.span_rows)
        else:
            rows = [row[:-1] for row in resource.spans]  # all but ``adjusted``
        kept = self._new_spans(rows)
        sql = _span_insert(rid, now, ignore=False)
        if kept is None:
            self._conn.executemany(sql, rows)
            return len(rows), packed.sessions if packed is not None else session_totals(resource.spans)
        resource.unpack()  # the named rows: their adjusted counts, for the sessions
        self._conn.executemany(sql, [rows[i] for i in kept])
        return len(kept), session_totals([resource.spans[i] for i in kept])

    def _recent_keys(self) -> set[tuple[int, str, str]]:
        """The keys of the spans above the merged mark (not yet in span_keys), read from the table when not held
        (a new Store, a rollback, another connection's write): memory is a cache of the table, never the truth."""
        recent = self._recent
        if recent is None:
            conn = self._conn
            recent = self._recent = set(conn.execute(
                "SELECT start_ns, trace_id, span_id FROM spans WHERE id > ?", (_merged_mark(conn),)))
        return recent

    def _new_spans(self, rows: list[tuple[Any, ...]]) -> list[int] | None:
        """Which of these stored-column span rows are new (indexes, in order; None: all of them), their keys then
        held as stored: a key already in the recent level, in span_keys, or earlier in ``rows`` is a duplicate.

        Exactly once by construction: both levels hold every committed span's key (the recent level is read
        from the table when not held), a key moves from one to the other only in the writer's transaction, a
        request rolled back alone takes out the keys it added (none was held before it: only new keys are
        added), and any other rollback drops what memory holds (_forget)."""
        recent = self._recent_keys()
        keys = [(row[7], row[2], row[3]) for row in rows]
        fresh = set(keys)
        merged = self._merged_keys(keys)
        if not merged and len(fresh) == len(keys) and fresh.isdisjoint(recent):
            recent |= fresh
            self._added.append(fresh)
            return None
        kept = []
        added = set()
        for i, key in enumerate(keys):
            if key not in recent and key not in merged:
                recent.add(key)
                added.add(key)
                kept.append(i)
        self._added.append(added)
        return kept

    def _merged_keys(self, keys: list[tuple[int, str, str]]) -> set[tuple[int, str, str]]:
        """The keys among ``keys`` that span_keys holds (a span starting after its latest start is not looked
        up): one statement per _PROBE_CHUNK keys, each an index lookup in SQLite."""
        top = self._merged_top
        if top == -1:
            top = self._merged_top = self._conn.execute("SELECT MAX(start_ns) FROM span_keys").fetchone()[0]
        if top is None:
            return set()
        probe = [key for key in keys if key[0] <= top]
        found: set[tuple[int, str, str]] = set()
        for i in range(0, len(probe), _PROBE_CHUNK):
            chunk = probe[i:i + _PROBE_CHUNK]
            size = min(_PROBE_CHUNK, 1 << (len(chunk) - 1).bit_length())  # a few statement texts, each prepared once
            chunk += [chunk[-1]] * (size - len(chunk))  # padded with its last key (a set: found once)
            found.update(self._conn.execute(_probe_sql(size), [v for key in chunk for v in key]))
        return found

    def _insert_spans(self, rid: int, rows: list[SpanRow], now: int) -> list[SpanRow]:
        """Insert in one executemany; only spans new to the store reach the session rollup.

        Inside the write transaction nobody else inserts, so the rows with an id above the largest id
        before the statement are exactly the ones it inserted (INSERT OR IGNORE skips known spans).
        """
        conn = self._conn
        self._spans_before = conn.execute("SELECT MAX(id) FROM spans").fetchone()[0] or 0
        changes = conn.total_changes
        conn.executemany(_SPAN_INSERT, [(rid, *row[:-1], now) for row in rows])  # all but ``adjusted``
        if conn.total_changes - changes == len(rows):
            return rows
        return self._inserted_spans(rows)

    def _insert_packed(self, sql: str, blob: bytes, n: int) -> bool:
        """Insert a worker's packed span rows (ResourceData.pack) as they are; whether every one was new."""
        conn = self._conn
        self._spans_before = conn.execute("SELECT MAX(id) FROM spans").fetchone()[0] or 0
        changes = conn.total_changes
        conn.executemany(sql, marshal.loads(blob))
        return conn.total_changes - changes == n

    def _inserted_spans(self, rows: list[SpanRow]) -> list[SpanRow]:
        """The rows the last span insert stored (those with an id above ``_spans_before``), in order."""
        new = set(self._conn.execute("SELECT trace_id, span_id FROM spans WHERE id > ?",
                                     (self._spans_before,)).fetchall())
        inserted = []
        for row in rows:  # a span twice in one request: its first copy is the one stored
            key = (row.trace_id, row.span_id)
            if key in new:
                new.discard(key)
                inserted.append(row)
        return inserted

    # ------------------------------------------------------------------------------- limits, dimensions

    def _admit(self, service: str, key: str, value: str, counts: Counter[str]) -> str:
        """``value`` if the dimension has room for it (or already holds it), else ``(other)``, counted."""
        if value == "":
            return value
        entry = (service, key, value)
        known = self._known
        if entry in known:
            return value
        conn = self._conn
        if len(known) >= _KNOWN_CACHE:
            known.clear()
        if conn.execute(
            "SELECT 1 FROM dim_values WHERE service = ? AND key = ? AND value = ?", entry
        ).fetchone():
            known.add(entry)
            return value
        cap = self._limits.distinct_services if key == "service" else self._limits.distinct_values
        held = conn.execute(
            "SELECT COUNT(*) FROM dim_values WHERE service = ? AND key = ?", (service, key)
        ).fetchone()[0]
        if held >= cap:
            counts[f"over {cap} distinct {key} values"] += 1
            return OTHER
        conn.execute("INSERT INTO dim_values VALUES (?, ?, ?)", entry)
        known.add(entry)
        return value

    def _app(self, resource: ResourceData, counts: Counter[str]) -> tuple[str, str]:
        attrs = resource.attributes
        service = self._admit("", "service", as_string(attrs.get("service.name")), counts)
        version = self._admit(service, "version", as_string(attrs.get("service.version")), counts)
        return service, version

    def _roll(
        self, rollup: Rollup, resource: ResourceData, service: str, version: str, counts: Counter[str]
    ) -> None:
        roll(rollup, resource, service, version, counts, self._limits, self._admit, self._delta)

    def _delta(self, prefix: str, row: PointRow) -> PointRow | None:
        """A cumulative point as the delta since the series' previous point (in full after a reset).

        A point not newer than the last one seen for its series is a late or repeated copy: skipped.
        Min and max of a cumulative histogram cannot be differenced; they stay the cumulative extremes.
        """
        series = hashlib.sha1(f"{prefix}|{row.name}|{row.attributes}".encode()).hexdigest()
        last = self._conn.execute(
            "SELECT start_ns, end_ns, value, count, sum, bounds, bucket_counts FROM cumulative WHERE series = ?",
            (series,),
        ).fetchone()
        self._conn.execute(
            "INSERT OR REPLACE INTO cumulative VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (series, row.start_ns, row.end_ns, row.value, row.samples, row.sum, row.bounds, row.bucket_counts)
            if last is None or row.end_ns > last[1]
            else (series, *last),
        )
        if last is not None and row.end_ns <= last[1]:
            return None
        if last is None or last[0] != row.start_ns:
            return row
        if row.kind == "sum":
            value = row.value or 0.0
            return row if value < (last[2] or 0.0) else row._replace(value=value - (last[2] or 0.0))
        if row.kind == "exponential_histogram":
            return _exponential_delta(row, last)
        if (row.samples or 0) < (last[3] or 0) or row.bounds != last[5]:
            return row
        current = json.loads(row.bucket_counts or "[]")
        previous = json.loads(last[6] or "[]")
        buckets = [a - b for a, b in zip(current, previous, strict=False)]
        if any(n < 0 for n in buckets):
            return row
        total = None if row.sum is None or last[4] is None else row.sum - last[4]
        return row._replace(
            samples=(row.samples or 0) - (last[3] or 0), sum=total, bucket_counts=json.dumps(buckets)
        )

    def _flush(self, rollup: Rollup) -> None:
        conn = self._conn
        for grain, tier in ((1, rollup), (7, weekly(rollup, self._open_day))):
            if tier.metrics:
                conn.executemany(
                    _METRIC_UPSERT,
                    [(key[0], grain, *key[1:], tier.kinds[key[0]], *acc) for key, acc in tier.metrics.items()],
                )
            if tier.buckets:
                conn.executemany(
                    _BUCKET_UPSERT, [(key[0], grain, *key[1:], *slots) for key, slots in tier.buckets.items()]
                )
            if tier.exp:
                self._upsert_exp(grain, tier.exp)
            if grain == 1:
                spans: dict[tuple[str, str], list[int]] = {}
                for key in tier.metrics:
                    if key[0] == INVOCATIONS:
                        have = spans.get((key[2], key[3]))
                        if have is None:
                            spans[(key[2], key[3])] = [key[1], key[1]]
                        else:
                            have[0], have[1] = min(have[0], key[1]), max(have[1], key[1])
                conn.executemany(_APP_DAYS_UPSERT, [(*k, lo, hi) for k, (lo, hi) in spans.items()])
            if tier.env:
                conn.executemany(_ENV_UPSERT, [(grain, *key, n) for key, n in tier.env.items()])
            if tier.errors:
                conn.executemany(_ERROR_UPSERT, [(key[0], grain, *key[1:], n) for key, n in tier.errors.items()])
        if rollup.errors:  # and the all-time tier (grain 0, day 0) the report reads when it has no day bounds
            conn.executemany(_ERROR_UPSERT, [(m, 0, 0, *rest, n) for (m, _day, *rest), n in rollup.errors.items()])
        for day, service, version, installation in rollup.active:
            for kind, period in (("d", day), ("w", (day + 3) // 7)):
                for v in (version, "*"):
                    if conn.execute(
                        "INSERT OR IGNORE INTO active VALUES (?, ?, ?, ?, ?)", (kind, period, service, v, installation)
                    ).rowcount:
                        conn.execute(
                            "INSERT INTO active_count VALUES (?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET n = n + 1",
                            (kind, period, service, v),
                        )
            for v in (version, "*"):
                conn.execute(
                    "INSERT INTO installations VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                    " first_day = MIN(first_day, excluded.first_day), last_day = MAX(last_day, excluded.last_day)",
                    (service, v, installation, day, day),
                )

    def _upsert_exp(self, grain: int, rows: dict[Any, exponential.Buckets]) -> None:
        """Merge into the exponential rollup: each stored row is read once (then kept, decoded, in
        ``_exp_rows``), merged here and its blob updated, instead of decoded and re-merged by SQL per group.

        A row kept is a mutable accumulator (_ExpRow): the common merge (one scale, positive buckets, the sum
        within MAX_SIZE buckets) adds the new counts into its list in place, C-speed slice arithmetic, the
        same buckets exponential.merge gives without building a merged copy per group (about 6 -> 3 us a key
        merged and encoded on the benchmark box); anything else goes through exponential.merge."""
        conn = self._conn
        cache = self._exp_rows
        if len(cache) + len(rows) > _EXP_CACHE:
            cache.clear()
        inserts, updates = [], []
        for key, b in rows.items():
            ckey = (grain, key)
            have = cache.get(ckey)
            if have is None:
                found = conn.execute(_EXP_SELECT, (key[0], grain, *key[1:])).fetchone()
                if found is None:
                    cache[ckey] = _ExpRow(b)
                    inserts.append((key[0], grain, *key[1:], encode_exponential(b)))
                    continue
                have = cache[ckey] = _ExpRow(decode_exponential(found[0]))
            if not have.add(b):
                have = cache[ckey] = _ExpRow(exponential.merge(have.buckets(), b))
            # an UPDATE of the blob alone leaves the table's two indexes untouched (REPLACE would not)
            updates.append((have.encoded(), key[0], grain, *key[1:]))
        if updates:
            conn.executemany(_EXP_UPDATE, updates)
        if inserts:
            conn.executemany(_EXP_INSERT, inserts)

    def _sessions(self, service: str, version: str, seen: dict[str, list[int]]) -> None:
        """Fold new spans' session totals (ingest.session_totals) into their sessions and move each session's
        histogram entries accordingly."""
        conn = self._conn
        for session_id, (first, last, n) in seen.items():
            old = conn.execute(
                "SELECT service, version, day, first_ns, last_ns, commands FROM sessions WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if old is not None:
                _session_histogram(conn, old[0], old[1], old[2], old[3], old[4], old[5], -1)
                service, version = old[0], old[1]
                first, last, n = min(first, old[3]), max(last, old[4]), n + old[5]
            day = first // DAY_NS
            conn.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, service, version, day, first, last, n),
            )
            _session_histogram(conn, service, version, day, first, last, n, 1)

    # ------------------------------------------------------------------------------------------ retention

    def _maybe_prune(self, now: int) -> bool:
        """Delete raw rows past the retention period, at most once an hour (rollups are kept); True if it ran."""
        if self._retention_days <= 0:
            return False
        conn = self._conn
        row = conn.execute("SELECT value FROM meta WHERE key = 'pruned_ns'").fetchone()
        if row is not None and now - int(row[0]) < _PRUNE_EVERY_NS:
            return False
        prune(conn, now - int(self._retention_days * DAY_NS), now)
        self._recent, self._merged_top = None, -1  # the mark and span_keys moved
        return True


def prune(conn: sqlite3.Connection, cutoff_ns: int, now: int | None = None) -> dict[str, int]:
    """Delete raw spans, points and logs older than ``cutoff_ns``; rollups and sessions stay."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if span_keys_kept(conn):  # every span's key in span_keys first: the old ones are found there
            merge_span_keys(conn)
            spans = conn.execute("DELETE FROM spans WHERE id IN (SELECT id FROM span_keys WHERE start_ns < ?)",
                                 (cutoff_ns,)).rowcount
            conn.execute("DELETE FROM span_keys WHERE start_ns < ?", (cutoff_ns,))
            merge_span_keys(conn)  # the mark back to the largest id left
        else:
            spans = conn.execute("DELETE FROM spans WHERE start_ns < ?", (cutoff_ns,)).rowcount
        deleted = {
            "spans": spans,
            "metric_points": conn.execute("DELETE FROM metric_points WHERE end_ns < ?", (cutoff_ns,)).rowcount,
            "logs": conn.execute("DELETE FROM logs WHERE time_ns < ?", (cutoff_ns,)).rowcount,
        }
        conn.executemany(_COUNTER_UPSERT, [(name, -n) for name, n in deleted.items() if n])
        conn.execute("DELETE FROM seen_batches WHERE received_ns < ?", (cutoff_ns,))
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('pruned_ns', ?)", (str(now if now is not None else time.time_ns()),)
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return deleted


def _session_histogram(
    conn: sqlite3.Connection, service: str, version: str, day: int, first: int, last: int, n: int, sign: int
) -> None:
    for kind, value in (("length_s", (last - first) / 1e9), ("commands", float(n))):
        lo, hi = session_bucket(kind, value)
        conn.execute(
            "INSERT INTO r_session VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
            (kind, day, service, version, lo, hi, sign),
        )


def _rebuild_session_rollup(conn: sqlite3.Connection) -> None:
    """Schema 2 -> 3: the session rollup re-derived from the sessions table in the new buckets."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM r_session")
        for service, version, day, first, last, n in conn.execute(
            "SELECT service, version, day, first_ns, last_ns, commands FROM sessions"
        ).fetchall():
            _session_histogram(conn, service, version, day, first, last, n, 1)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _backfill_errors(conn: sqlite3.Connection) -> None:
    """Schema 3 -> 4: the error rollup from the metric rollup's error counters (kept forever), each without a
    signature (stores before 4 kept none): old errors stay counted, grouped by error type alone."""
    names = ", ".join("?" * len(ERROR_METRICS))
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO r_error SELECT metric, grain, day, service, version, command, error_type, '', SUM(value)"
            f" FROM r_metric WHERE metric IN ({names}) AND kind = 'sum'"
            " GROUP BY metric, grain, day, service, version, command, error_type", ERROR_METRICS,
        )
        conn.execute(
            "INSERT INTO r_error SELECT metric, 0, 0, service, version, command, error_type, '', SUM(value)"
            f" FROM r_metric WHERE metric IN ({names}) AND kind = 'sum' AND grain = 1"
            " GROUP BY metric, service, version, command, error_type", ERROR_METRICS,
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _backfill(conn: sqlite3.Connection) -> None:
    """Derive the rollups of a version-1 store from its raw rows (once, when it is first opened)."""
    store = Store.__new__(Store)
    store._conn, store._resource_ids, store._known, store._limits = conn, {}, set(), Limits()
    store._exp_rows, store._data_version, store._open_day, store._spans_before = {}, None, None, 0
    store._keyed, store._recent, store._merged_top, store._added = span_keys_kept(conn), None, -1, []
    conn.execute("BEGIN IMMEDIATE")
    try:
        resources = {rid: json.loads(attrs) for rid, attrs in conn.execute("SELECT id, attributes FROM resources")}
        points: dict[int, list[PointRow]] = defaultdict(list)
        for row in conn.execute("SELECT * FROM metric_points ORDER BY end_ns, id"):
            points[row[1]].append(PointRow(*row[2:-1]))
        spans: dict[int, list[SpanRow]] = defaultdict(list)
        for row in conn.execute("SELECT * FROM spans ORDER BY start_ns, id"):
            spans[row[1]].append(SpanRow(*row[2:-1]))
        rollup = Rollup()
        counts: Counter[str] = Counter()
        for rid, attrs in resources.items():
            resource = ResourceData(attrs, None, b"", spans.get(rid, []), points.get(rid, []))
            service, version = store._app(resource, counts)
            store._roll(rollup, resource, service, version, counts)
            store._sessions(service, version, session_totals(resource.spans))
        store._flush(rollup)
        for table in ("spans", "metric_points", "logs"):
            n = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            conn.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (table, n))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _ancestors(batch_id: str) -> list[str]:
    """The batches a 413-split part came from: ``b.t1.m2`` -> ``b.t1``, ``b``.

    A request stored whole whose reply was lost may be retried, refused as too large and split; its
    parts must then count as already stored (the sender names parts ``<id>.t1``/``.m2``...).
    """
    out: list[str] = []
    while True:
        head, dot, tail = batch_id.rpartition(".")
        if not dot or len(tail) < 2 or tail[0] not in "mt" or not tail[1:].isdigit():
            return out
        out.append(head)
        batch_id = head


def _metrics_in(conn: sqlite3.Connection, table: str) -> list[str]:
    """The distinct metric names of a rollup table, one primary-key lookup each (no scan)."""
    out: list[str] = []
    found = conn.execute(f"SELECT MIN(metric) FROM {table}").fetchone()[0]
    while found is not None:
        out.append(found)
        found = conn.execute(f"SELECT MIN(metric) FROM {table} WHERE metric > ?", (found,)).fetchone()[0]
    return out


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def stored_counts(conn: sqlite3.Connection) -> dict[str, Any]:
    """Raw rows held, from the counters kept at ingest (no table scan)."""
    counts = dict(conn.execute("SELECT name, n FROM counters"))
    counts["resources"] = conn.execute("SELECT MAX(id) FROM resources").fetchone()[0] or 0
    return {t: int(counts.get(t, 0)) for t in ("resources", "spans", "metric_points", "logs")}
