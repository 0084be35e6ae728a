"""The spool's on-disk format: tables, ordered migrations and the byte encodings of keys and attributes.

The version lives in ``PRAGMA user_version``; each migration runs in its own ``BEGIN IMMEDIATE``
transaction and re-reads the version under the write lock, so many processes opening an old file at once
upgrade it exactly once and a crash mid-migration leaves the previous version intact.

Encodings use ``marshal`` at version 2: stdlib, no import cost, and deterministic for the plain values the
model allows (versions >= 3 emit back-references that depend on object identity, which would make equal
keys hash differently). ``key_hash`` is the sha1 of the resource hash followed by the encoded key.
"""

from __future__ import annotations

import hashlib
import marshal
import sqlite3
from collections.abc import Sequence
from typing import Any

from otel_expansion.otlp.model import Attrs, SeriesKey

__all__ = [
    "ADDITIONS",
    "FORMAT",
    "INDEXES",
    "KEPT",
    "KEPT_SUFFIX",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SchemaError",
    "add_compatible",
    "attrs_hash",
    "day_key_hash",
    "decode_attrs",
    "decode_buckets",
    "decode_key",
    "encode_attrs",
    "encode_buckets",
    "encode_exponential",
    "encode_key",
    "exponential_parts",
    "has_column",
    "is_exponential",
    "key_hash",
    "migrate",
]

_MARSHAL_VERSION = 2

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: initial schema.
    (
        """CREATE TABLE resources (
            id INTEGER PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            attrs BLOB NOT NULL
        )""",
        # One row per open series; reserved rows (batch_id set) leave the partial unique index, so points
        # arriving while a batch is in flight start a new open row instead of changing what is being sent.
        # REAL columns stay nullable: SQLite stores NaN as NULL, read back as NaN.
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            key_hash BLOB NOT NULL,
            resource_id INTEGER NOT NULL,
            key BLOB NOT NULL,
            batch_id TEXT,
            start_ns INTEGER NOT NULL,
            time_ns INTEGER NOT NULL,
            value REAL,
            count INTEGER NOT NULL DEFAULT 0,
            sum REAL,
            min REAL,
            max REAL,
            buckets BLOB,
            updated_ns INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX series_open ON series(key_hash) WHERE batch_id IS NULL",
        "CREATE INDEX series_batch ON series(batch_id) WHERE batch_id IS NOT NULL",
        "CREATE INDEX series_time ON series(time_ns)",
        "CREATE INDEX series_resource ON series(resource_id)",
        """CREATE TABLE spans (
            id INTEGER PRIMARY KEY,
            resource_id INTEGER NOT NULL,
            scope_name TEXT NOT NULL,
            scope_version TEXT NOT NULL,
            data BLOB NOT NULL,
            end_ns INTEGER NOT NULL,
            batch_id TEXT,
            bytes INTEGER NOT NULL
        )""",
        "CREATE INDEX spans_batch ON spans(batch_id) WHERE batch_id IS NOT NULL",
        "CREATE INDEX spans_end ON spans(end_ns)",
        "CREATE INDEX spans_resource ON spans(resource_id)",
        """CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            created_ns INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE TABLE ingested (source_id TEXT PRIMARY KEY, at_ns INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE INDEX ingested_at ON ingested(at_ns)",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The format's major version (``PRAGMA user_version``): a release refuses a file of a newer major and leaves
it untouched (its data waits for a newer release). Bump it only for a change older readers would misread."""

ADDITIONS: tuple[tuple[str, str, str], ...] = (
    # (table, column, definition): compatible additions within a major. Releases of the same major that
    # predate a column neither read nor write it (their statements name their columns), so older and newer
    # releases can share one spool; a row an older release wrote has the column's default.
    # 1.1 (0.3.0): when a span was stored, on the spool's skew-proof clock (0: unknown, use end_ns).
    ("spans", "stored_ns", "INTEGER NOT NULL DEFAULT 0"),
)
KEPT = "kept:exponential"
"""``batch_id`` of an open row of an exponential histogram (durations, CPU and start-up times; 1.2, 0.3.0).

Why not NULL, as other open rows: release 0.2 (format 1, before ``meta``) reads a spool of this major as its
own and sends every row whose ``batch_id`` is NULL, encoding any kind but ``histogram`` as a sum of ``value``
(0 for these rows): a downgrade sent every duration as a zero sum and lost it. 0.2 forms batches only of
rows whose ``batch_id`` is NULL, expires and evicts only those, and loads a batch only by an id listed in
``batches``: it never reads, sends or deletes a row marked ``KEPT`` (only ``clear`` would), so these rows
wait, whole, for a release that knows them. This release treats ``NULL`` and ``KEPT`` alike as open."""

KEPT_SUFFIX = "~kept"
"""Appended to a batch's id in the ``batch_id`` of its exponential rows while the batch is in flight: 0.2 loads a
batch by its exact id, so after a downgrade it sends (and acknowledges) the rest of a batch this release
reserved and leaves these rows; this release loads, acknowledges and releases both, and takes rows whose batch
is gone (acknowledged by 0.2) back into the open pool, as ``KEPT``."""

INDEXES: tuple[str, ...] = (
    # 1.2 (0.3.0): the open row of an exponential series on one day is unique, as series_open is for NULL.
    f"CREATE UNIQUE INDEX IF NOT EXISTS series_kept ON series(key_hash) WHERE batch_id = '{KEPT}'",
)
"""Compatible indexes within a major (created with the additions; older releases never name them)."""

FORMAT = f"{SCHEMA_VERSION}.{len(ADDITIONS) + len(INDEXES)}"
"""The full format version, kept in the ``meta`` table (``format``) beside the release that last wrote it."""


class SchemaError(Exception):
    """The file's schema is newer than this code understands; it is left untouched."""


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the file to ``len(migrations)``; ``conn`` must be in autocommit mode (isolation_level=None)."""
    target = len(migrations)
    version = _version(conn)
    if version > target:
        raise SchemaError(f"spool schema version {version} is newer than supported {target}")
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn)  # another process may have migrated while we waited for the lock
            if version < target:
                for statement in migrations[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return version


def add_compatible(conn: sqlite3.Connection, release: str = "") -> None:
    """Apply :data:`ADDITIONS` and :data:`INDEXES` missing from the file, and record :data:`FORMAT` (once,
    under the write lock).

    Reads first and writes only when something is missing, so a file already at this format costs one
    query per open. A file with additions this release does not know keeps them (and its ``format``).
    """
    if _has_additions(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, definition in ADDITIONS:
            if column not in _columns(conn, table):
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        for statement in INDEXES:
            conn.execute(statement)
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None or _newer(FORMAT, str(row[0])):
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('written_by', ?)", (release,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _has_additions(conn: sqlite3.Connection) -> bool:
    if not all(column in _columns(conn, table) for table, column, _ in ADDITIONS):
        return False
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.OperationalError:  # no meta table yet
        return False
    return row is not None and not _newer(FORMAT, str(row[0]))


def _newer(a: str, b: str) -> bool:
    """Format ``a`` (major.minor) is newer than ``b``; an unreadable ``b`` counts as older."""
    try:
        return tuple(int(x) for x in a.split(".")) > tuple(int(x) for x in b.split("."))
    except ValueError:
        return True


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return column in _columns(conn, table)


def encode_attrs(attrs: Attrs) -> bytes:
    """Deterministic bytes of an attribute tuple; ValueError for values marshal cannot hold."""
    return marshal.dumps(attrs, _MARSHAL_VERSION)


def decode_attrs(blob: bytes) -> Attrs:
    value = marshal.loads(blob)
    if not isinstance(value, tuple):
        raise ValueError("attributes blob does not hold a tuple")
    return value


def attrs_hash(blob: bytes) -> bytes:
    return hashlib.sha1(blob).digest()


def encode_key(key: SeriesKey) -> bytes:
    """The key without its resource (stored once in ``resources``)."""
    return marshal.dumps(
        (
            key.scope_name,
            key.scope_version,
            key.name,
            key.kind,
            key.unit,
            key.description,
            key.attributes,
            key.is_monotonic,
            key.bounds,
        ),
        _MARSHAL_VERSION,
    )


def key_hash(resource_hash: bytes, key_blob: bytes) -> bytes:
    return hashlib.sha1(resource_hash + key_blob).digest()


def day_key_hash(series_hash: bytes, day: int) -> bytes:
    """The open row's key of one series on one UTC day (``time_ns // DAY_NS``): points of one series merge
    only with points of the same day, so a merged point never spans two days (see ``spool/merge.py``).
    Rows an earlier release keyed by ``key_hash`` alone stay as they are and are sent as they are."""
    return hashlib.sha1(series_hash + day.to_bytes(8, "big", signed=True)).digest()


def decode_key(resource: Attrs, blob: bytes) -> SeriesKey:
    (scope_name, scope_version, name, kind, unit, description, attributes, is_monotonic, bounds) = (
        marshal.loads(blob)
    )
    return SeriesKey(
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        name=name,
        kind=kind,
        unit=unit,
        description=description,
        attributes=attributes,
        is_monotonic=is_monotonic,
        bounds=bounds,
    )


_EXPONENTIAL = "exp"
"""First item of an exponential point's buckets blob; explicit counts are a plain tuple of ints."""


def encode_buckets(counts: tuple[int, ...]) -> bytes | None:
    return marshal.dumps(counts, _MARSHAL_VERSION) if counts else None


def encode_exponential(scale: int, zero_count: int, offset: int, counts: tuple[int, ...], negative_offset: int,
                       negative_counts: tuple[int, ...]) -> bytes:
    """An exponential point's buckets: self-describing, so old explicit rows need no migration."""
    return marshal.dumps((_EXPONENTIAL, scale, zero_count, offset, counts, negative_offset, negative_counts),
                         _MARSHAL_VERSION)


def is_exponential(value: tuple[object, ...]) -> bool:
    return bool(value) and value[0] == _EXPONENTIAL


def exponential_parts(value: tuple[Any, ...]) -> tuple[int, int, int, tuple[int, ...], int, tuple[int, ...]]:
    """scale, zero count, offset, counts, negative offset, negative counts of a decoded exponential blob."""
    _, scale, zero, offset, counts, n_offset, n_counts = value
    return int(scale), int(zero), int(offset), tuple(counts), int(n_offset), tuple(n_counts)


def decode_buckets(blob: bytes | None) -> tuple[int, ...]:
    if blob is None:
        return ()
    value = marshal.loads(blob)
    if not isinstance(value, tuple):
        raise ValueError("buckets blob does not hold a tuple")
    return value
