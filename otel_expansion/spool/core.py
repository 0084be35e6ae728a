"""The spool handle's core: transactions, row encodings, counters and state (shared by writes and batches).

The write side (:mod:`~otel_expansion.spool.writes`) and the batch side (:mod:`~otel_expansion.spool.batches`)
both extend :class:`SpoolCore`; :class:`~otel_expansion.spool.store.Spool` combines them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM, Attrs, MetricPoint, SeriesKey, SpanRecord
from otel_expansion.spool import accounting, schema
from otel_expansion.spool.connection import SpoolUnavailable

__all__ = ["SpoolCore", "SpoolStats"]


_T = TypeVar("_T")

_SHRINK_TO = 0.9  # over the cap, drop down to this fraction so the next adds do not drop again at once
_AGE_CHECK_EVERY_NS = 60 * 10**9
_CACHE_LIMIT = 4096
_IN_CHUNK = 500  # stay below SQLite's host-parameter limit on old builds (999)
_SPAN_ROW_OVERHEAD = 64  # rough per-row bytes beyond the blob: row header, three index entries
_SERIES_ROW_OVERHEAD = 160

_UPSERT = """
INSERT INTO series (key_hash, resource_id, key, start_ns, time_ns, value, count, sum, min, max, buckets,
                    updated_ns{column})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{value})
ON CONFLICT (key_hash) WHERE {open} DO UPDATE SET
    start_ns = min(start_ns, excluded.start_ns),
    time_ns = max(time_ns, excluded.time_ns),
    value = value + excluded.value,
    count = count + excluded.count,
    sum = sum + excluded.sum,
    min = min(min, excluded.min),
    max = max(max, excluded.max),
    buckets = CASE WHEN excluded.buckets IS NULL THEN buckets
                   WHEN buckets IS NULL THEN excluded.buckets
                   ELSE oe_bucket_add(buckets, excluded.buckets) END,
    updated_ns = excluded.updated_ns
"""
_UPSERT_SERIES = _UPSERT.format(column="", value="", open="batch_id IS NULL")
_UPSERT_KEPT = _UPSERT.format(column=", batch_id", value=f", '{schema.KEPT}'", open=f"batch_id = '{schema.KEPT}'")
"""The upsert of an exponential series' open row (``schema.KEPT``: a row release 0.2 leaves alone)."""
OPEN = f"(batch_id IS NULL OR batch_id = '{schema.KEPT}')"
"""An open row (not reserved by a batch), of any kind."""
_INSERT_SPAN = (
    "INSERT INTO spans (resource_id, scope_name, scope_version, data, end_ns, bytes, stored_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SERIES_COLUMNS = (
    "s.id, s.key, r.attrs, s.start_ns, s.time_ns, s.value, s.count, s.sum, s.min, s.max, s.buckets"
)
_SPAN_COLUMNS = "s.id, r.attrs, s.scope_name, s.scope_version, s.data, s.end_ns"
_INCR = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)
_GC_RESOURCES = """
DELETE FROM resources WHERE NOT EXISTS (SELECT 1 FROM series WHERE series.resource_id = resources.id)
                        AND NOT EXISTS (SELECT 1 FROM spans WHERE spans.resource_id = resources.id)
"""


_ROWS_PER_INSERT = 512  # rows per multi-row INSERT, within SQLite's variable limit (below)


def _insert_rows(conn: sqlite3.Connection, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``executemany`` as a few multi-row INSERTs. Why: the sqlite3 module lets go of the interpreter
    lock for every statement it steps; in a long-running program whose thread is busy on the CPU, each
    hand-back waits for the next switch interval (5 ms), so a row-at-a-time insert of 2,000 spans took a
    second of wall time while the program's buffer filled. One statement per 512 rows waits 4 times."""
    if not rows:
        return
    width = len(rows[0])
    variables = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
    per = max(1, min(_ROWS_PER_INSERT, variables // width))
    marks = "(" + ",".join("?" * width) + ")"
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        conn.execute(insert + ("," + marks) * (len(chunk) - 1), [v for row in chunk for v in row])



@dataclass(frozen=True)
class SpoolStats:
    """A snapshot for ``otel-expansion status`` and self-health metrics."""

    series: int
    spans: int
    batches: int
    bytes_on_disk: int
    oldest_ns: int | None
    counters: dict[str, int] = field(default_factory=dict)


def _real(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _chunks(items: Sequence[_T], size: int = _IN_CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


CLOCK_STEP_MAX_NS = 86400 * 10**9
"""The most one observation of the wall clock may advance the spool's clock (see ``_sync_clock``)."""


def _int_or(value: object, default: int | None) -> int | None:
    try:
        return int(str(value)) if value is not None else default
    except ValueError:
        return default


class SpoolCore:
    """State and transactions of one handle on the spool file (see :class:`~otel_expansion.spool.store.Spool`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, max_bytes: int, max_age_s: float) -> None:
        """Use :meth:`open`; this only wires an already checked connection."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._max_bytes = int(max_bytes)
        self._max_age_ns = int(max_age_s * 1e9)
        self._lock = threading.Lock()
        self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        self._next_age_check = 0
        self._offset_ns = 0  # the spool's clock minus the wall clock, as last read (see SpoolWrites._sync_clock)
        self._clock_synced = False
        self._pending_after: accounting.Pending | None = None
        # key -> (key_hash, resource_hash, resource_blob, key_blob); resource attrs -> (hash, blob)
        self._keys: dict[SeriesKey, tuple[bytes, bytes, bytes, bytes]] = {}
        self._resources: dict[Attrs, tuple[bytes, bytes]] = {}
        self._decoded_keys: dict[tuple[bytes, bytes], SeriesKey] = {}

    def close(self) -> None:
        """Close the connection; further calls raise SpoolUnavailable. Idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(sqlite3.Error):
                    conn.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self._path

    # ------------------------------------------------------------------------------------ transactions

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolUnavailable("spool is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed whole, or rolled back and SpoolUnavailable."""
        with self._lock:
            conn = self._require()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise SpoolUnavailable(f"spool busy or unwritable: {exc}") from exc
            self._pending_after = None
            try:
                yield conn
                conn.execute("COMMIT")
            except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an integer SQLite cannot hold
                self._rollback(conn)
                raise SpoolUnavailable(f"spool write failed: {exc}") from exc
            except BaseException:
                self._rollback(conn)
                raise
            if self._pending_after is not None:  # committed: the note beside the file follows
                accounting.write_note(self._path, self._pending_after)

    def _pending_changed(self, conn: sqlite3.Connection) -> None:
        """What is pending changed in this transaction: note it beside the file once it commits."""
        self._pending_after = accounting.count_rows(conn)

    def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` in one read transaction (a consistent snapshot, never blocking writers)."""
        with self._lock:
            conn = self._require()
            try:
                conn.execute("BEGIN")
                try:
                    return fn(conn)
                finally:
                    self._rollback(conn)
            except sqlite3.Error as exc:
                raise SpoolUnavailable(f"spool read failed: {exc}") from exc

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with suppress(sqlite3.Error):  # a hard failure has already rolled back
                conn.execute("ROLLBACK")

    # ---------------------------------------------------------------------------------------- encoding

    def _resource_parts(self, attrs: Attrs) -> tuple[bytes, bytes]:
        parts = self._resources.get(attrs)
        if parts is None:
            blob = schema.encode_attrs(attrs)
            parts = (schema.attrs_hash(blob), blob)
            if len(self._resources) >= _CACHE_LIMIT:
                self._resources.clear()
            self._resources[attrs] = parts
        return parts

    def _key_parts(self, key: SeriesKey) -> tuple[bytes, bytes, bytes, bytes]:
        parts = self._keys.get(key)
        if parts is None:
            res_hash, res_blob = self._resource_parts(key.resource)
            key_blob = schema.encode_key(key)
            parts = (schema.key_hash(res_hash, key_blob), res_hash, res_blob, key_blob)
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()
            self._keys[key] = parts
        return parts

    def _decode_point(self, row: Sequence[Any]) -> MetricPoint:
        _id, key_blob, res_blob, start_ns, time_ns, value, count, sum_, min_, max_, buckets = row
        cache_key = (res_blob, key_blob)
        key = self._decoded_keys.get(cache_key)
        if key is None:
            key = schema.decode_key(schema.decode_attrs(res_blob), key_blob)
            if len(self._decoded_keys) >= _CACHE_LIMIT:
                self._decoded_keys.clear()
            self._decoded_keys[cache_key] = key
        decoded = schema.decode_buckets(buckets)
        if schema.is_exponential(decoded):
            scale, zero, offset, counts, n_offset, n_counts = schema.exponential_parts(decoded)
            return MetricPoint(
                key=key, start_ns=int(start_ns), time_ns=int(time_ns), value=_real(value), count=int(count),
                sum=_real(sum_), min=_real(min_), max=_real(max_), bucket_counts=counts, scale=int(scale),
                zero_count=int(zero), offset=int(offset), negative_offset=int(n_offset),
                negative_counts=n_counts,
            )
        return MetricPoint(
            key=key,
            start_ns=int(start_ns),
            time_ns=int(time_ns),
            value=_real(value),
            count=int(count),
            sum=_real(sum_),
            min=_real(min_),
            max=_real(max_),
            bucket_counts=decoded,
        )

    @staticmethod
    def _decode_span(row: Sequence[Any]) -> SpanRecord:
        _id, res_blob, scope_name, scope_version, data, end_ns = row
        return SpanRecord(
            resource=schema.decode_attrs(res_blob),
            scope_name=str(scope_name),
            scope_version=str(scope_version),
            data=bytes(data),
            end_ns=int(end_ns),
        )

    def _load(
        self, conn: sqlite3.Connection, where: str, params: Sequence[Any], limit: int = -1
    ) -> tuple[list[MetricPoint], list[SpanRecord], list[int], list[int]]:
        """Decode rows matching ``where``; rows that fail to decode are returned by id instead."""
        points, bad_series = _decode_rows(conn, _SERIES_COLUMNS, "series", where, params, limit, self._decode_point)
        spans, bad_spans = _decode_rows(conn, _SPAN_COLUMNS, "spans", where, params, limit, self._decode_span)
        return points, spans, bad_series, bad_spans

    # ------------------------------------------------------------------------------ counters and state

    @staticmethod
    def _incr(conn: sqlite3.Connection, name: str, n: int) -> None:
        conn.execute(_INCR, (name, int(n)))

    def incr(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a self-health counter (``dropped.*``, ``export.*``)."""
        with self._write() as conn:
            self._incr(conn, name, n)

    def counters(self) -> dict[str, int]:
        return self._read(self._counters)

    @staticmethod
    def _counters(conn: sqlite3.Connection) -> dict[str, int]:
        return {str(name): int(value) for name, value in conn.execute("SELECT name, value FROM counters")}

    def get_state(self, key: str) -> str | None:
        """A small persistent value (e.g. the sender's backoff), shared by all processes.

        Keys named ``batch.<id>.<anything>`` belong to that batch and are deleted with it (ack, drop,
        release, clear), so per-batch bookkeeping cannot pile up.
        """
        sql = "SELECT value FROM state WHERE key = ?"
        row = self._read(lambda conn: conn.execute(sql, (key,)).fetchone())
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @staticmethod
    def _forget_batch(conn: sqlite3.Connection, batch_id: str) -> None:
        """Delete the batch row and its scoped state (keys ``batch.<id>.*``, e.g. the sender's progress)."""
        conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        prefix = f"batch.{batch_id}."
        conn.execute("DELETE FROM state WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))

    def _delete_batch(self, conn: sqlite3.Connection, batch_id: str) -> int:
        n = conn.execute("DELETE FROM series WHERE batch_id IN (?, ?)",
                         (batch_id, batch_id + schema.KEPT_SUFFIX)).rowcount
        n += conn.execute("DELETE FROM spans WHERE batch_id = ?", (batch_id,)).rowcount
        self._forget_batch(conn, batch_id)
        conn.execute(_GC_RESOURCES)
        return n

    def _sync_clock(self, conn: sqlite3.Connection, wall: int) -> None:
        """Advance the spool's clock to this observation of the wall clock (inside a write transaction).

        The spool's clock is the wall clock plus an offset kept in the file. It never goes back (a clock
        moved back adds to the offset) and one observation never moves it more than ``CLOCK_STEP_MAX_NS``
        ahead (a clock corrected by a year, or a laptop closed for weeks, counts as a day): a wrong clock
        is not the data's age, so data recorded under it is never discarded as "too old" when it is set
        right. The cost: data may outlive ``max_age_s`` after long gaps; the size cap still bounds it.
        """
        rows = dict(conn.execute(
            "SELECT key, value FROM state WHERE key IN ('clock.offset_ns', 'clock.wall_ns')").fetchall())
        offset = _int_or(rows.get("clock.offset_ns"), None) or 0
        last = _int_or(rows.get("clock.wall_ns"), None)
        if last is not None:
            step = wall - last
            if step < 0:
                offset -= step
            elif step > CLOCK_STEP_MAX_NS:
                offset -= step - CLOCK_STEP_MAX_NS
        conn.executemany("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (("clock.offset_ns", str(offset)), ("clock.wall_ns", str(wall))))
        self._offset_ns = offset
        self._clock_synced = True


def _decode_rows(
    conn: sqlite3.Connection, columns: str, table: str, where: str, params: Sequence[Any], limit: int,
    decode: Callable[[Any], _T],
) -> tuple[list[_T], list[int]]:
    """(decoded rows, ids of rows that would not decode) for one table, oldest first."""
    sql = (
        f"SELECT {columns} FROM {table} s LEFT JOIN resources r ON r.id = s.resource_id "
        f"WHERE {where} ORDER BY s.id LIMIT ?"
    )
    items: list[_T] = []
    bad: list[int] = []
    for row in conn.execute(sql, (*params, limit)):
        try:
            items.append(decode(row))
        except (ValueError, EOFError, TypeError):
            bad.append(int(row[0]))
    return items, bad


def _point_values(p: MetricPoint) -> tuple[Any, ...]:
    """A point's stored columns, in schema order: start, time, value, count, sum, min, max, buckets."""
    if p.key.kind == EXPONENTIAL_HISTOGRAM:
        blob = schema.encode_exponential(p.scale, p.zero_count, p.offset, p.bucket_counts, p.negative_offset,
                                         p.negative_counts)
        return (p.start_ns, p.time_ns, p.value, p.count, p.sum, p.min, p.max, blob)
    return (p.start_ns, p.time_ns, p.value, p.count, p.sum, p.min, p.max, schema.encode_buckets(p.bucket_counts))


