"""Opening the spool file and recovering from a damaged one (the spool's connection job).

Why a module of its own: everything here runs before a :class:`~otel_expansion.spool.store.Spool` exists
(creating the file 0600 and never through a link, switching it to WAL, checking and migrating it, moving a
corrupt file aside and counting what it held), and the read-only opening that ``status``/``show`` use.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import suppress
from pathlib import Path

from otel_expansion.spool import schema

__all__ = ["SpoolUnavailable", "readonly_uri"]

_LOGGER = "otel_expansion.spool"
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class SpoolUnavailable(Exception):
    """The spool cannot be used for this run (read-only, disk full, locked, closed, newer schema)."""



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
        from otel_expansion.otlp import exponential

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
        from otel_expansion._version import __version__

        schema.add_compatible(conn, __version__)
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


def readonly_uri(path: Path | str) -> str:
    """A URI that reads ``path`` without creating or changing any file, SQLite's side files included.

    With a writer's WAL present (``-wal`` and ``-shm`` both exist: some connection is or was open), the
    file is read through them, so rows committed to the WAL and not yet checkpointed are counted; opening
    creates nothing then, as both files exist. Otherwise the WAL (if any) holds nothing a reader needs,
    and the file is read as immutable, which creates neither side file. A ``-wal`` without its ``-shm``
    (a crash of the last writer, then a hand deleted ``-shm``) is also read immutable: its frames are
    counted by the next writer's recovery, not by a reader.
    """
    from urllib.parse import quote

    p = Path(path)
    live = os.path.exists(f"{p}-wal") and os.path.exists(f"{p}-shm")
    return f"file:{quote(str(p.absolute()))}?mode=ro&nofollow=1" + ("" if live else "&immutable=1")
