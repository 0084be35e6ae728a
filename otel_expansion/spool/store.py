"""The durable local spool: one SQLite file (WAL, 0600) shared by every process of one service.

Producers ``add`` (one short ``BEGIN IMMEDIATE`` transaction each, points of a series merged into its open
row of their UTC day: see ``merge.py``; an exponential histogram's open row is marked ``schema.KEPT``, which
release 0.2 leaves alone); a single consumer (the sender, under its own lock) takes ``next_batch`` and then
``ack``s, ``drop``s or ``release``s it. A process killed at any instant leaves either the whole transaction or nothing.

Failures are contained: a corrupt file is moved aside and replaced (counted in ``dropped.corrupt``); any
condition that makes the file unusable for this run (read-only, disk full, locked past the busy timeout,
schema from a newer version) surfaces as the single :class:`SpoolUnavailable`.

Released batches: rows go back to the open pool; a row whose series already has a new open row (points
that arrived while the batch was in flight) is merged with it immediately, keeping the older row's id so
the data keeps its place in the oldest-first order.

Bounds, enforced inside ``add``'s transaction: the used size ((page_count - freelist_count) * page_size) is
checked on every call, and over ``max_bytes`` the oldest spans, then the least recently updated open series,
are deleted down to ~90 % of the cap (``dropped.size``); rows the spool has held longer than ``max_age_s``
(on its own clock, which a clock correction cannot jump: see ``SpoolCore._sync_clock``) are deleted on a
handle's first add and then at most once a minute (``dropped.age``).

The handle is assembled from one module per job: :mod:`.connection` (creating, checking, migrating and
recovering the file; the read-only URI), :mod:`.core` (transactions, row encodings, counters, state, the
spool's clock), :mod:`.writes` (``add``, ingest marks, bounds), :mod:`.batches` (the consumer's side),
:mod:`.accounting` (the pending note that lets a lost spool be counted in runs) and :mod:`.schema` (format).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Collection

from otel_expansion.otlp.model import MetricPoint, SpanRecord
from otel_expansion.spool import accounting, schema
from otel_expansion.spool.accounting import Pending
from otel_expansion.spool.batches import SpoolBatches
from otel_expansion.spool.connection import (
    SpoolUnavailable,
    _connect,
    _Corrupt,
    _ensure_private_dir,
    _ensure_private_file,
    _move_aside,
    _warn,
    readonly_uri,
)
from otel_expansion.spool.core import SpoolStats
from otel_expansion.spool.writes import SpoolWrites

__all__ = ["Spool", "SpoolStats", "SpoolUnavailable"]

_S_IFMT, _S_IFREG, _S_IFLNK = 0o170000, 0o100000, 0o120000


def _odd_file(path: Path) -> tuple[int, str] | None:
    """(inode, what it is) when ``path`` holds something of ours that cannot be the spool and would wedge
    every open: a directory, a FIFO, a socket, or a 0-byte file where a spool is known to have been (its
    note exists). A link or someone else's file is not ours to move: left to the checks that refuse it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    kind = st.st_mode & _S_IFMT
    if kind == _S_IFLNK or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
        return None
    if kind != _S_IFREG:
        return st.st_ino, "not a regular file"
    if st.st_size == 0 and accounting.read_note(path) is not None and not os.path.exists(f"{path}-wal"):
        return st.st_ino, "truncated to 0 bytes"
    return None


class Spool(SpoolWrites, SpoolBatches):
    """A handle on the spool file; thread-safe, and safe alongside other processes using the same file.

    Open one handle per process (never carry one across ``fork``). Every method either completes or raises
    :class:`SpoolUnavailable`; writes that fail are rolled back whole.
    """

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
        lost: Pending | None = None
        try:
            _ensure_private_dir(path.parent)
            odd = _odd_file(path)
            if odd is not None:  # a directory, a 0-byte file that was a spool...: moved aside, counted
                aside = _move_aside(path, odd[0])
                if aside is not None:
                    _warn("spool %s was %s; moved aside to %s, starting fresh", path, odd[1], aside)
                    lost = accounting.recover(aside, path)
            inode = _ensure_private_file(path)
            try:
                conn = _connect(path, busy_timeout_ms)
            except _Corrupt as exc:
                aside = _move_aside(path, inode)
                if aside is not None:
                    _warn("spool %s is corrupt (%s); moved aside to %s, starting fresh", path, exc, aside)
                    lost = accounting.recover(aside, path)
                _ensure_private_file(path)
                conn = _connect(path, busy_timeout_ms)
            try:
                spool = cls(conn, path, max_bytes=max_bytes, max_age_s=max_age_s)
            except BaseException:
                conn.close()
                raise
        except (OSError, sqlite3.Error, schema.SchemaError, _Corrupt) as exc:
            raise SpoolUnavailable(f"spool {path} unavailable: {exc}") from exc
        if lost is not None:
            try:
                with spool._write() as conn:
                    spool._incr(conn, "dropped.corrupt", lost.items)
                    if lost.runs:
                        spool._incr(conn, "dropped.corrupt_runs", lost.runs)
                    spool._pending_changed(conn)
            except SpoolUnavailable:
                spool.close()
                raise
        return spool

    @classmethod
    def open_readonly(cls, path: Path | str, *, busy_timeout_ms: int = 5000) -> Spool:
        """A reader's view for ``status``/``show``: creates, migrates and writes nothing, not even SQLite's
        side files (without a live WAL the file is read as immutable). SpoolUnavailable if unreadable."""
        path = Path(path)
        try:
            conn = sqlite3.connect(readonly_uri(path), uri=True,
                                   timeout=busy_timeout_ms / 1000.0, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA query_only = ON")
                return cls(conn, path, max_bytes=1 << 62, max_age_s=1e18)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise SpoolUnavailable(f"spool {path} unreadable: {exc}") from exc

    def __enter__(self) -> Spool:
        return self

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

    def lower(self, keep_spans: bool, dropped_metrics: Collection[str]) -> tuple[int, int]:
        """Delete what a lowered level no longer allows: every pending span unless ``keep_spans`` (a span
        does not say the level it was made at), and the series of the named metrics. Every other series
        (the counts a lower level keeps) stays, exact. Returns (spans, series) deleted."""
        with self._write() as conn:
            spans = 0 if keep_spans else int(conn.execute("DELETE FROM spans").rowcount)
            names = set(dropped_metrics)
            doomed = [(row_id,) for row_id, blob in conn.execute("SELECT id, key FROM series")
                      if schema.decode_key((), blob).name in names]
            conn.executemany("DELETE FROM series WHERE id = ?", doomed)
            self._pending_changed(conn)
            return spans, len(doomed)

    def clear(self) -> int:
        """Delete all pending data (counters and non-batch state stay); returns the number of rows removed."""
        with self._write() as conn:
            n = conn.execute("DELETE FROM series").rowcount
            n += conn.execute("DELETE FROM spans").rowcount
            conn.execute("DELETE FROM batches")
            conn.execute("DELETE FROM state WHERE substr(key, 1, 6) = 'batch.'")
            conn.execute("DELETE FROM resources")
            self._pending_changed(conn)
            return int(n)


T = TypeVar("T")


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
