"""The durable local spool: one SQLite file (WAL, 0600) shared by every process of one service.

Producers ``add`` (one short ``BEGIN IMMEDIATE`` transaction each, points of a series merged into its open
row); a single consumer (the sender, under its own lock) takes ``next_batch`` and then ``ack``s, ``drop``s
or ``release``s it. A process killed at any instant leaves either the whole transaction or nothing.

Failures are contained: a corrupt file is moved aside and replaced (counted in ``dropped.corrupt``); any
condition that makes the file unusable for this run (read-only, disk full, locked past the busy timeout,
schema from a newer version) surfaces as the single :class:`SpoolUnavailable`.

Released batches: rows go back to the open pool; a row whose series already has a new open row (points
that arrived while the batch was in flight) is merged with it immediately, keeping the older row's id so
the data keeps its place in the oldest-first order.

Bounds, enforced inside ``add``'s transaction: the used size ((page_count - freelist_count) * page_size) is
checked on every call, and over ``max_bytes`` the oldest spans, then the least recently updated open series,
are deleted down to ~90 % of the cap (``dropped.size``); rows whose data is older than ``max_age_s`` are
deleted on a handle's first add and then at most once a minute (``dropped.age``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from otel_expansion.otlp import exponential
from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM, Attrs, Batch, MetricPoint, SeriesKey, SpanRecord
from otel_expansion.spool import schema
from otel_expansion.spool.merge import merge

__all__ = ["Spool", "SpoolStats", "SpoolUnavailable"]

_T = TypeVar("_T")

_LOGGER = "otel_expansion.spool"
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SHRINK_TO = 0.9  # over the cap, drop down to this fraction so the next adds do not drop again at once
_AGE_CHECK_EVERY_NS = 60 * 10**9
_CACHE_LIMIT = 4096
_IN_CHUNK = 500  # stay below SQLite's host-parameter limit on old builds (999)
_SPAN_ROW_OVERHEAD = 64  # rough per-row bytes beyond the blob: row header, three index entries
_SERIES_ROW_OVERHEAD = 160

_UPSERT_SERIES = """
INSERT INTO series (key_hash, resource_id, key, start_ns, time_ns, value, count, sum, min, max, buckets,
                    updated_ns)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key_hash) WHERE batch_id IS NULL DO UPDATE SET
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
_INSERT_SPAN = (
    "INSERT INTO spans (resource_id, scope_name, scope_version, data, end_ns, bytes) "
    "VALUES (?, ?, ?, ?, ?, ?)"
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


class SpoolUnavailable(Exception):
    """The spool cannot be used for this run (read-only, disk full, locked, closed, newer schema)."""


@dataclass(frozen=True)
class SpoolStats:
    """A snapshot for ``otel-expansion status`` and self-health metrics."""

    series: int
    spans: int
    batches: int
    bytes_on_disk: int
    oldest_ns: int | None
    counters: dict[str, int] = field(default_factory=dict)


class _Corrupt(Exception):
    """Internal: the file is not a usable SQLite database."""


def _warn(message: str, *args: object) -> None:
    import logging  # lazy: ~30 ms to import on a CLI's path

    logging.getLogger(_LOGGER).warning(message, *args)


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return type(exc) is sqlite3.DatabaseError  # NOTADB and CORRUPT map to the base class on 3.10


def _bucket_add_sql(a: bytes | None, b: bytes | None) -> bytes | None:
    """SQL function merging two encoded bucket tuples; lenient so a damaged row cannot wedge all writes."""
    try:
        x = schema.decode_buckets(a)
    except (ValueError, EOFError, TypeError):
        return b
    try:
        y = schema.decode_buckets(b)
    except (ValueError, EOFError, TypeError):
        return a
    if schema.is_exponential(x) or schema.is_exponential(y):
        try:
            e = exponential.merge(exponential.Buckets(*schema.exponential_parts(x)),
                                  exponential.Buckets(*schema.exponential_parts(y)))
        except (TypeError, ValueError):
            return a
        return schema.encode_exponential(e.scale, e.zero_count, e.offset, e.counts, e.negative_offset,
                                         e.negative_counts)
    if len(x) < len(y):
        x, y = y, x
    return schema.encode_buckets(tuple(v + (y[i] if i < len(y) else 0) for i, v in enumerate(x)))


def _ensure_private_dir(directory: Path) -> None:
    """Create missing directories 0700 whatever the umask; the spool's own must be a real one of ours."""
    from otel_expansion.config.paths import ensure_dir

    ensure_dir(str(directory))


_SIDE_FILES = ("-wal", "-shm", "-journal")


def _ensure_private_file(path: Path) -> int:
    """Create the database file 0600 (umask-proof) before SQLite does; returns its inode.

    Never through a link: the file and SQLite's side files (``-wal``, ``-shm``, ``-journal``, which SQLite
    opens by name) must be regular files of ours or absent, else OSError and the spool stands down.
    """
    from otel_expansion.config.paths import check_owned, open_private

    fd = open_private(str(path))
    try:
        inode = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    for suffix in _SIDE_FILES:
        side = f"{path}{suffix}"
        try:
            st = os.lstat(side)
        except FileNotFoundError:
            continue
        check_owned(side, st, 0o100000)
    return inode


def _wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> object:
    """Switch a new file to WAL. Why a loop: the switch needs the file to itself, and SQLite answers
    "locked" at once, without its busy handler, while another process opens the same new file (a
    service's init() and a detached sender, or many senders of one app): retried until the busy timeout."""
    deadline = time.monotonic() + busy_timeout_ms / 1000.0
    while True:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() == "wal":
            return mode
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A checked, migrated connection; raises _Corrupt for a damaged file, sqlite3/schema errors otherwise."""
    from urllib.parse import quote

    # nofollow: SQLite itself refuses a database path that is (or runs through) a symbolic link
    uri = f"file:{quote(str(path.absolute()))}?nofollow=1"
    conn = sqlite3.connect(
        uri, timeout=busy_timeout_ms / 1000.0, isolation_level=None, check_same_thread=False, uri=True
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms):d}")
        try:
            mode = _wal(conn, busy_timeout_ms)
            rows = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise _Corrupt(str(exc)) from exc
            raise
        if rows != [("ok",)]:
            raise _Corrupt("; ".join(str(r[0]) for r in rows[:3]))
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Keep the WAL near 1 MiB: checkpoint at 256 pages and truncate it back afterwards.
        conn.execute("PRAGMA wal_autocheckpoint = 256")
        conn.execute("PRAGMA journal_size_limit = 1048576")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.create_function("oe_bucket_add", 2, _bucket_add_sql, deterministic=True)
        schema.migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _lock_dir(directory: Path) -> int | None:
    """Best-effort exclusive lock on the directory so two processes do not both move the file aside."""
    try:
        import fcntl  # POSIX only

        fd = os.open(directory, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd


def _move_aside(path: Path, inode: int) -> Path | None:
    """Rename a corrupt file (and its WAL) to ``<name>.corrupt-<timestamp>``; None if someone else did."""
    lock = _lock_dir(path.parent)
    try:
        try:
            if os.stat(path).st_ino != inode:
                return None  # already replaced by a process that saw the same corruption
        except FileNotFoundError:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = path.with_name(f"{path.name}.corrupt-{stamp}.{n}")
            n += 1
        os.replace(path, aside)
        for suffix in ("-wal", "-journal"):
            with suppress(FileNotFoundError):
                os.replace(f"{path}{suffix}", f"{aside}{suffix}")
        with suppress(FileNotFoundError):
            os.unlink(f"{path}-shm")  # only an index of the WAL; stale contents must not meet a new file
        return aside
    finally:
        if lock is not None:
            os.close(lock)


def _count_lost(aside: Path | None) -> int:
    """Pending items in a spool moved aside as corrupt, as far as they can still be counted (at least 1)."""
    if aside is None:
        return 1
    lost = 0
    try:
        conn = sqlite3.connect(f"file:{aside}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return 1
    try:
        for table in ("spans", "series"):
            with suppress(sqlite3.Error, TypeError, ValueError):
                lost += int(conn.execute(f"SELECT count(*) FROM {table} NOT INDEXED").fetchone()[0])
    finally:
        conn.close()
    return max(1, lost)


def _real(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _chunks(items: Sequence[_T], size: int = _IN_CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Spool:
    """A handle on the spool file; thread-safe, and safe alongside other processes using the same file.

    Open one handle per process (never carry one across ``fork``). Every method either completes or raises
    :class:`SpoolUnavailable`; writes that fail are rolled back whole.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, max_bytes: int, max_age_s: float) -> None:
        """Use :meth:`open`; this only wires an already checked connection."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._max_bytes = int(max_bytes)
        self._max_age_ns = int(max_age_s * 1e9)
        self._lock = threading.Lock()
        self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        self._next_age_check = 0
        # key -> (key_hash, resource_hash, resource_blob, key_blob); resource attrs -> (hash, blob)
        self._keys: dict[SeriesKey, tuple[bytes, bytes, bytes, bytes]] = {}
        self._resources: dict[Attrs, tuple[bytes, bytes]] = {}
        self._decoded_keys: dict[tuple[bytes, bytes], SeriesKey] = {}

    # ----------------------------------------------------------------------------------------- opening

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        max_bytes: int = 20 * 2**20,
        max_age_s: float = 7 * 86400,
        busy_timeout_ms: int = 5000,
    ) -> Spool:
        """Open or create the spool; a corrupt file is replaced, other failures raise SpoolUnavailable.

        ``max_bytes`` bounds the database's used pages (the WAL adds at most ~1 MiB beside it).
        """
        path = Path(path)
        try:
            _ensure_private_dir(path.parent)
            inode = _ensure_private_file(path)
            try:
                conn = _connect(path, busy_timeout_ms)
                recovered = False
                aside = None
            except _Corrupt as exc:
                aside = _move_aside(path, inode)
                if aside is not None:
                    _warn("spool %s is corrupt (%s); moved aside to %s, starting fresh", path, exc, aside)
                _ensure_private_file(path)
                conn = _connect(path, busy_timeout_ms)
                recovered = aside is not None
            try:
                spool = cls(conn, path, max_bytes=max_bytes, max_age_s=max_age_s)
            except BaseException:
                conn.close()
                raise
        except (OSError, sqlite3.Error, schema.SchemaError, _Corrupt) as exc:
            raise SpoolUnavailable(f"spool {path} unavailable: {exc}") from exc
        if recovered:
            try:
                spool.incr("dropped.corrupt", _count_lost(aside))
            except SpoolUnavailable:
                spool.close()
                raise
        return spool

    @classmethod
    def open_readonly(cls, path: Path | str, *, busy_timeout_ms: int = 5000) -> Spool:
        """A reader's view for ``status``/``show``: creates, migrates and writes nothing, not even SQLite's
        side files (without a live WAL the file is read as immutable). SpoolUnavailable if unreadable."""
        from urllib.parse import quote

        path = Path(path)
        live_wal = path.with_name(path.name + "-wal").exists()  # a writer's WAL: read through it
        params = "mode=ro&nofollow=1" + ("" if live_wal else "&immutable=1")
        try:
            conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?{params}", uri=True,
                                   timeout=busy_timeout_ms / 1000.0, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA query_only = ON")
                return cls(conn, path, max_bytes=1 << 62, max_age_s=1e18)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise SpoolUnavailable(f"spool {path} unreadable: {exc}") from exc

    def close(self) -> None:
        """Close the connection; further calls raise SpoolUnavailable. Idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(sqlite3.Error):
                    conn.close()

    def __enter__(self) -> Spool:
        return self

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
            try:
                yield conn
                conn.execute("COMMIT")
            except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an integer SQLite cannot hold
                self._rollback(conn)
                raise SpoolUnavailable(f"spool write failed: {exc}") from exc
            except BaseException:
                self._rollback(conn)
                raise

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

    # ------------------------------------------------------------------------------------------ ingest

    def add(
        self,
        points: Sequence[MetricPoint] = (),
        spans: Sequence[SpanRecord] = (),
        source_ids: Sequence[str] = (),
        claim: Callable[[], bool] | None = None,
    ) -> bool:
        """Store one unit of work in one transaction; points merge into their series' open row.

        ``claim``, when given, is called once the write lock is held: returning False abandons the call
        with nothing written (a service hands its unfinished work to the journal at exit and must know
        whether it was stored). Returns whether the call went ahead.

        ``source_ids`` (journal record ids) are recorded in the same transaction; if any of them was
        already ingested the whole call is skipped (counted in ``dropped.duplicate``), so a record can never
        be counted twice even when two processes replay it at once. Malformed points (bucket counts that do
        not fit the bounds, attributes marshal cannot encode) are counted in ``dropped.invalid``.
        """
        if not points and not spans and not source_ids:
            return claim() if claim is not None else True
        merged: dict[SeriesKey, MetricPoint] = {}
        invalid = 0
        for p in points:
            explicit = p.key.kind != EXPONENTIAL_HISTOGRAM
            if p.bucket_counts and explicit and len(p.bucket_counts) != len(p.key.bounds) + 1:
                invalid += 1
                continue
            try:
                prev = merged.get(p.key)
            except TypeError:  # an unhashable attribute value slipped past attrs_of
                invalid += 1
                continue
            merged[p.key] = p if prev is None else merge(prev, p)
        series_rows: list[tuple[tuple[bytes, bytes], MetricPoint, bytes, bytes]] = []
        for key, p in merged.items():
            try:
                kh, res_hash, res_blob, key_blob = self._key_parts(key)
            except (ValueError, TypeError):
                invalid += 1
                continue
            series_rows.append(((res_hash, res_blob), p, kh, key_blob))
        span_rows: list[tuple[tuple[bytes, bytes], SpanRecord]] = []
        last_resource: Attrs | None = None
        last_parts = (b"", b"")
        for s in spans:
            try:
                if s.resource is not last_resource:  # spans of one batch share one resource object
                    last_parts, last_resource = self._resource_parts(s.resource), s.resource
                span_rows.append((last_parts, s))
            except (ValueError, TypeError):
                invalid += 1
        ids = list(dict.fromkeys(source_ids))
        now = time.time_ns()
        with self._write() as conn:
            if claim is not None and not claim():
                return False
            if ids:
                if self._seen(conn, ids):
                    self._incr(conn, "dropped.duplicate", len(points) + len(spans))
                    return True
                conn.executemany(
                    "INSERT INTO ingested (source_id, at_ns) VALUES (?, ?)", [(i, now) for i in ids]
                )
            resource_ids: dict[bytes, int] = {}
            conn.executemany(
                _UPSERT_SERIES,
                [
                    (
                        kh,
                        self._resource_id(conn, resource_ids, res),
                        key_blob,
                        *_point_values(p),
                        now,
                    )
                    for res, p, kh, key_blob in series_rows
                ],
            )
            span_values = []
            last_res: tuple[bytes, bytes] | None = None
            rid = 0
            for res, s in span_rows:
                if res is not last_res:
                    rid, last_res = self._resource_id(conn, resource_ids, res), res
                span_values.append((rid, s.scope_name, s.scope_version, s.data, s.end_ns, len(s.data)))
            _insert_rows(conn, _INSERT_SPAN, span_values)
            if invalid:
                self._incr(conn, "dropped.invalid", invalid)
            self._enforce_bounds(conn, now)
        return True

    @staticmethod
    def _resource_id(conn: sqlite3.Connection, known: dict[bytes, int], res: tuple[bytes, bytes]) -> int:
        """Row id of a resource inside the current transaction (never cached across transactions)."""
        res_hash, blob = res
        rid = known.get(res_hash)
        if rid is None:
            row = conn.execute("SELECT id FROM resources WHERE hash = ?", (res_hash,)).fetchone()
            if row is None:
                cur = conn.execute("INSERT INTO resources (hash, attrs) VALUES (?, ?)", (res_hash, blob))
                rid = int(cur.lastrowid or 0)
            else:
                rid = int(row[0])
            known[res_hash] = rid
        return rid

    @staticmethod
    def _seen(conn: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT source_id FROM ingested WHERE source_id IN ({marks})"
            found.update(str(r[0]) for r in conn.execute(sql, chunk))
        return found

    def seen(self, source_ids: Sequence[str]) -> set[str]:
        """The subset of ``source_ids`` already ingested (kept while their journal file may still exist)."""
        ids = list(dict.fromkeys(source_ids))
        if not ids:
            return set()
        return self._read(lambda conn: self._seen(conn, ids))

    def forget_sources(self, source_ids: Sequence[str]) -> None:
        """Drop the ingest marks of journal records whose files are gone: they can never be replayed.

        The marks only guard against replaying a record whose file survived its ingest (a crash between
        the spool commit and the file's deletion); keeping them longer costs space and guards nothing.
        """
        ids = list(dict.fromkeys(source_ids))
        if not ids:
            return
        with self._write() as conn:
            for chunk in _chunks(ids):
                conn.execute(f"DELETE FROM ingested WHERE source_id IN ({','.join('?' * len(chunk))})", chunk)

    def retain_sources(self, existing: Collection[str]) -> int:
        """Keep ingest marks only for ``existing`` journal record ids (call under the sender's lock, with
        the journal's current listing); returns how many marks were dropped."""
        keep = set(existing)
        with self._write() as conn:
            stale = [str(r[0]) for r in conn.execute("SELECT source_id FROM ingested") if str(r[0]) not in keep]
            for chunk in _chunks(stale):
                conn.execute(f"DELETE FROM ingested WHERE source_id IN ({','.join('?' * len(chunk))})", chunk)
        return len(stale)

    # ------------------------------------------------------------------------------------------ bounds

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _overhead_bytes(self, conn: sqlite3.Connection) -> int:
        """Bytes that are not pending data: one root page per table and index, and the ingest marks.

        The cap is about pending data: bookkeeping must never push telemetry out (issue 12).
        """
        roots = int(conn.execute("SELECT count(*) FROM sqlite_master WHERE rootpage > 0").fetchone()[0]) + 1
        n, id_bytes = conn.execute("SELECT count(*), coalesce(sum(length(source_id)), 0) FROM ingested").fetchone()
        # each mark is stored twice (table and at_ns index) with its key, ~24 bytes of headers, ~70 % full pages
        marks = (2 * int(id_bytes) + 40 * int(n)) * 10 // 7
        return roots * self._page_size + marks

    def _enforce_bounds(self, conn: sqlite3.Connection, now: int) -> None:
        if now >= self._next_age_check:
            self._expire(conn, now)
            self._next_age_check = now + _AGE_CHECK_EVERY_NS
        used = self._used_bytes(conn)
        if used > self._max_bytes:
            overhead = self._overhead_bytes(conn)
            if used - overhead > self._max_bytes:
                self._shrink(conn, used - overhead, overhead)

    def _expire(self, conn: sqlite3.Connection, now: int) -> None:
        """Delete open rows older than the age limit; a batch in flight goes whole or not at all."""
        cutoff = now - self._max_age_ns
        n = conn.execute("DELETE FROM spans WHERE end_ns < ? AND batch_id IS NULL", (cutoff,)).rowcount
        n += conn.execute("DELETE FROM series WHERE time_ns < ? AND batch_id IS NULL", (cutoff,)).rowcount
        for (batch_id,) in conn.execute("SELECT id FROM batches WHERE created_ns < ?", (cutoff,)).fetchall():
            n += self._delete_batch(conn, str(batch_id))
        conn.execute("DELETE FROM ingested WHERE at_ns < ?", (cutoff,))
        if n > 0:
            self._incr(conn, "dropped.age", n)
            conn.execute(_GC_RESOURCES)

    def _shrink(self, conn: sqlite3.Connection, used: int, overhead: int = 0) -> None:
        """Delete oldest open spans, then least recently updated open series, then (last resort) the oldest
        batches in flight whole, until under ~90 % of the cap.

        ``used`` is the pending data's share of the file (``overhead`` excluded). A reserved row is never
        deleted alone: a retry must resend exactly what its batch id stood for (the receiver de-duplicates
        by batch id and content).
        """
        target = int(self._max_bytes * _SHRINK_TO)
        dropped = 0
        queries = (
            (
                "spans",
                f"SELECT id, bytes + {_SPAN_ROW_OVERHEAD} FROM spans WHERE batch_id IS NULL ORDER BY id LIMIT 4096",
            ),
            (
                "series",
                f"SELECT id, length(key) + coalesce(length(buckets), 0) + {_SERIES_ROW_OVERHEAD} FROM series "
                "WHERE batch_id IS NULL ORDER BY time_ns, id LIMIT 4096",
            ),
        )
        for table, query in queries:
            while used > target:
                excess = used - target
                victims: list[int] = []
                freed = 0
                for row_id, size in conn.execute(query):
                    victims.append(int(row_id))
                    freed += int(size)
                    if freed >= excess:
                        break
                if not victims:
                    break
                for chunk in _chunks(victims):
                    marks = ",".join("?" * len(chunk))
                    conn.execute(f"DELETE FROM {table} WHERE id IN ({marks})", chunk)
                dropped += len(victims)
                used = self._used_bytes(conn) - overhead
        while used > target:
            row = conn.execute("SELECT id FROM batches ORDER BY created_ns, id LIMIT 1").fetchone()
            if row is None:
                break
            dropped += self._delete_batch(conn, str(row[0]))
            used = self._used_bytes(conn) - overhead
        if dropped:
            self._incr(conn, "dropped.size", dropped)
            conn.execute(_GC_RESOURCES)

    # ---------------------------------------------------------------------------------------- batches

    def next_batch(self, max_spans: int = 512, max_points: int = 2048) -> Batch | None:
        """The oldest reserved batch again (same id, attempts + 1), else a new one of the oldest open rows.

        The limits apply when a batch is formed; a retried batch comes back whole (``release`` it to re-form
        smaller ones). Meant for one consumer at a time (the sender holds its own lock); producers may add
        meanwhile.
        """
        with self._write() as conn:
            while True:
                row = conn.execute(
                    "SELECT id, created_ns, attempts FROM batches ORDER BY created_ns, id LIMIT 1"
                ).fetchone()
                if row is None:
                    break
                batch_id, created_ns, attempts = str(row[0]), int(row[1]), int(row[2])
                batch = self._load_batch(conn, batch_id, created_ns, attempts + 1)
                if batch is None:
                    self._forget_batch(conn, batch_id)
                    continue
                conn.execute("UPDATE batches SET attempts = ? WHERE id = ?", (batch.attempts, batch_id))
                return batch
            batch_id = os.urandom(16).hex()
            now = time.time_ns()
            reserved = conn.execute(
                "UPDATE spans SET batch_id = ? WHERE id IN "
                "(SELECT id FROM spans WHERE batch_id IS NULL ORDER BY id LIMIT ?)",
                (batch_id, max(0, int(max_spans))),
            ).rowcount
            reserved += conn.execute(
                "UPDATE series SET batch_id = ? WHERE id IN "
                "(SELECT id FROM series WHERE batch_id IS NULL ORDER BY id LIMIT ?)",
                (batch_id, max(0, int(max_points))),
            ).rowcount
            if reserved == 0:
                return None
            conn.execute("INSERT INTO batches (id, created_ns, attempts) VALUES (?, ?, 1)", (batch_id, now))
            return self._load_batch(conn, batch_id, now, 1)

    def _load_batch(
        self, conn: sqlite3.Connection, batch_id: str, created_ns: int, attempts: int
    ) -> Batch | None:
        """The batch's rows; undecodable rows are deleted and counted in ``dropped.corrupt``."""
        points, spans, bad_series, bad_spans = self._load(conn, "s.batch_id = ?", (batch_id,))
        for table, bad in (("series", bad_series), ("spans", bad_spans)):
            for chunk in _chunks(bad):
                conn.execute(f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        if bad_series or bad_spans:
            self._incr(conn, "dropped.corrupt", len(bad_series) + len(bad_spans))
        if not points and not spans:
            return None
        return Batch(id=batch_id, created_ns=created_ns, attempts=attempts, points=points, spans=spans)

    @staticmethod
    def _forget_batch(conn: sqlite3.Connection, batch_id: str) -> None:
        """Delete the batch row and its scoped state (keys ``batch.<id>.*``, e.g. the sender's progress)."""
        conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        prefix = f"batch.{batch_id}."
        conn.execute("DELETE FROM state WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))

    def _delete_batch(self, conn: sqlite3.Connection, batch_id: str) -> int:
        n = conn.execute("DELETE FROM series WHERE batch_id = ?", (batch_id,)).rowcount
        n += conn.execute("DELETE FROM spans WHERE batch_id = ?", (batch_id,)).rowcount
        self._forget_batch(conn, batch_id)
        conn.execute(_GC_RESOURCES)
        return n

    def ack(self, batch_id: str) -> None:
        """The batch was delivered (2xx): forget its rows."""
        with self._write() as conn:
            self._delete_batch(conn, batch_id)

    def drop(self, batch_id: str, reason: str) -> int:
        """Give up on a batch (e.g. a permanent 4xx); its rows are counted in ``dropped.<reason>``."""
        with self._write() as conn:
            n = self._delete_batch(conn, batch_id)
            if n:
                self._incr(conn, f"dropped.{reason}", n)
            return n

    def release(self, batch_id: str) -> None:
        """Return a batch's rows to the open pool (e.g. after a 413, to re-form smaller batches)."""
        with self._write() as conn:
            clashes = conn.execute(
                "SELECT r.id, o.id FROM series r JOIN series o "
                "ON o.key_hash = r.key_hash AND o.batch_id IS NULL WHERE r.batch_id = ?",
                (batch_id,),
            ).fetchall()
            for reserved_id, open_id in clashes:
                self._merge_rows(conn, int(reserved_id), int(open_id))
            conn.execute("UPDATE series SET batch_id = NULL WHERE batch_id = ?", (batch_id,))
            conn.execute("UPDATE spans SET batch_id = NULL WHERE batch_id = ?", (batch_id,))
            self._forget_batch(conn, batch_id)

    def split(self, batch_id: str, signal: str) -> tuple[str, str] | None:
        """Persist a 413 split: move the batch's rows of one signal ("metrics" or "traces") into two new
        batches of fixed content, in order; returns their ids, or None if fewer than two rows remain.

        Each part gets a derived id (``<id>.m1``/``<id>.m2`` for metrics, ``.t1``/``.t2`` for traces) that it
        keeps through every retry, and its rows never change (reserved rows are neither merged nor evicted
        alone), so a receiver that de-duplicates by (batch id, content) stores each part exactly once
        whatever the order of splits, resets and retries. The parts come after the batch in send order;
        the batch itself is forgotten once it holds no rows.
        """
        table = {"metrics": "series", "traces": "spans"}[signal]
        with self._write() as conn:
            row = conn.execute("SELECT created_ns FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return None
            ids = [int(r[0]) for r in conn.execute(
                f"SELECT id FROM {table} WHERE batch_id = ? ORDER BY id", (batch_id,))]
            if len(ids) < 2:
                return None
            half = len(ids) // 2
            parts = (f"{batch_id}.{signal[0]}1", f"{batch_id}.{signal[0]}2")
            for part, members in zip(parts, (ids[:half], ids[half:]), strict=True):
                conn.execute("INSERT INTO batches (id, created_ns, attempts) VALUES (?, ?, 0)", (part, int(row[0])))
                for chunk in _chunks(members):
                    conn.execute(f"UPDATE {table} SET batch_id = ? WHERE id IN ({','.join('?' * len(chunk))})",
                                 (part, *chunk))
            left = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM series WHERE batch_id = ?) OR EXISTS (SELECT 1 FROM spans WHERE "
                "batch_id = ?)", (batch_id, batch_id)).fetchone()[0]
            if not left:
                self._forget_batch(conn, batch_id)
            return parts

    def _merge_rows(self, conn: sqlite3.Connection, keep_id: int, other_id: int) -> None:
        """Fold row ``other_id`` into ``keep_id`` (same series) and delete it."""
        rows = {
            int(r[0]): r
            for r in conn.execute(
                f"SELECT {_SERIES_COLUMNS} FROM series s LEFT JOIN resources r ON r.id = s.resource_id "
                "WHERE s.id IN (?, ?)",
                (keep_id, other_id),
            )
        }
        decoded: dict[int, MetricPoint] = {}
        for row_id in (keep_id, other_id):
            try:
                decoded[row_id] = self._decode_point(rows[row_id])
            except (ValueError, EOFError, TypeError, KeyError):
                conn.execute("DELETE FROM series WHERE id = ?", (row_id,))  # unreadable: count the loss
                self._incr(conn, "dropped.corrupt", 1)
        if len(decoded) < 2:
            return
        p = merge(decoded[keep_id], decoded[other_id])
        conn.execute("DELETE FROM series WHERE id = ?", (other_id,))
        conn.execute(
            "UPDATE series SET start_ns = ?, time_ns = ?, value = ?, count = ?, sum = ?, min = ?, max = ?, "
            "buckets = ?, updated_ns = ? WHERE id = ?",
            (*_point_values(p), time.time_ns(), keep_id),
        )

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

    # ----------------------------------------------------------------------------------- inspection

    def stats(self) -> SpoolStats:
        def query(conn: sqlite3.Connection) -> SpoolStats:
            series, oldest_series = conn.execute("SELECT count(*), min(start_ns) FROM series").fetchone()
            spans, oldest_span = conn.execute("SELECT count(*), min(end_ns) FROM spans").fetchone()
            batches = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
            oldest = [int(v) for v in (oldest_series, oldest_span) if v is not None]
            return SpoolStats(
                series=int(series),
                spans=int(spans),
                batches=int(batches),
                bytes_on_disk=self._bytes_on_disk(),
                oldest_ns=min(oldest) if oldest else None,
                counters=self._counters(conn),
            )

        return self._read(query)

    def _bytes_on_disk(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with suppress(OSError):
                total += os.stat(f"{self._path}{suffix}").st_size
        return total

    def pending(self, limit: int = 1000) -> tuple[list[MetricPoint], list[SpanRecord]]:
        """Up to ``limit`` points and ``limit`` spans unacknowledged (open or reserved), oldest first."""

        def query(conn: sqlite3.Connection) -> tuple[list[MetricPoint], list[SpanRecord]]:
            points, spans, _, _ = self._load(conn, "1", (), max(0, int(limit)))
            return points, spans

        return self._read(query)

    def clear(self) -> int:
        """Delete all pending data (counters and non-batch state stay); returns the number of rows removed."""
        with self._write() as conn:
            n = conn.execute("DELETE FROM series").rowcount
            n += conn.execute("DELETE FROM spans").rowcount
            conn.execute("DELETE FROM batches")
            conn.execute("DELETE FROM state WHERE substr(key, 1, 6) = 'batch.'")
            conn.execute("DELETE FROM resources")
            return int(n)


T = TypeVar("T")


def _decode_rows(
    conn: sqlite3.Connection, columns: str, table: str, where: str, params: Sequence[Any], limit: int,
    decode: Callable[[Any], T],
) -> tuple[list[T], list[int]]:
    """(decoded rows, ids of rows that would not decode) for one table, oldest first."""
    sql = (
        f"SELECT {columns} FROM {table} s LEFT JOIN resources r ON r.id = s.resource_id "
        f"WHERE {where} ORDER BY s.id LIMIT ?"
    )
    items: list[T] = []
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


def open_home(home: str, *, max_bytes: int, max_age_s: float, busy_timeout_ms: int = 5000) -> Spool:
    """The spool of a state directory (``<home>/spool.sqlite``)."""
    from otel_expansion.config.paths import SPOOL_FILE

    return Spool.open(Path(home) / SPOOL_FILE, max_bytes=max_bytes, max_age_s=max_age_s,
                      busy_timeout_ms=busy_timeout_ms)


def remove_corrupt_copies(home: str) -> int:
    """Delete spool files moved aside as corrupt (their data was already counted as dropped)."""
    from otel_expansion.config.paths import SPOOL_FILE

    removed = 0
    for name in os.listdir(home) if os.path.isdir(home) else ():
        if name.startswith(SPOOL_FILE + ".corrupt-"):
            with suppress(OSError):
                os.unlink(os.path.join(home, name))
                removed += 1
    return removed
