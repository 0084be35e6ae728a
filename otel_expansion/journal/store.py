"""The run journal's reading side, and both sides under one name: the sender and the tools read records
(decode, oldest first, upgraded by ``record``), remove them, sweep leftovers and settle the drop counter.

The write side (encoding, the bounds, appending, whether a sender is due) is the package's own,
``otel_expansion.journal``, where a CLI's exit path finds it without loading this module; its names are
given here too (``__all__``), so a reader writes ``store.append`` and ``store.read`` alike.
"""

from __future__ import annotations

import binascii
import marshal
import os

from otel_expansion.config.paths import CLOEXEC, NOFOLLOW, check_dir, ensure_own_dir, open_dir, random_id, write_private
from otel_expansion.config.paths import sweep_temp as _sweep
from otel_expansion.journal import (
    CLOCK_SLACK_S,
    DIRECTORIES,
    DROPPED_FILE,
    INGEST_THRESHOLD,
    MAGIC,
    MAX_DEFER_S,
    MAX_PENDING,
    MAX_PENDING_BYTES,
    MAX_RECORD_BYTES,
    MIN_SPAWN_INTERVAL_S,
    RESERVE_BYTES,
    SUFFIX,
    VERSION,
    _counter_add,
    _entries,
    _version,
    append,
    blocks_of,
    count,
    encode,
    full,
    journal_dir,
    names,
    next_send_at,
    note_dropped,
    should_start,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from otel_expansion.journal.record import Record

__all__ = [
    "CLOCK_SLACK_S", "DIRECTORIES", "DROPPED_FILE", "INGEST_THRESHOLD", "MAGIC", "MAX_DEFER_S", "MAX_PENDING",
    "MAX_PENDING_BYTES", "MAX_RECORD_BYTES", "MIN_SPAWN_INTERVAL_S", "RESERVE_BYTES", "SUFFIX", "VERSION",
    "CorruptRecord", "WaitingRecord", "append", "append_many", "blocks_of", "count", "decode", "dropped", "encode",
    "forget_dropped", "full", "journal_dir", "names", "next_send_at", "note_dropped", "pending", "read", "remove",
    "should_start", "sweep_temp", "take_dropped",
]
"""Both sides: the write side is the package's own (``otel_expansion.journal``), given here too."""


class CorruptRecord(ValueError):
    """A journal file that is not a whole, valid record."""


class WaitingRecord(ValueError):
    """A whole record of a newer format than this release reads: left in place for a newer release."""


def decode(data: bytes) -> dict[str, object]:
    if len(data) < 8 or data[:4] != MAGIC:
        raise CorruptRecord("bad magic")
    crc = int.from_bytes(data[4:8], "big")
    payload = data[8:]
    if binascii.crc32(payload) != crc:
        raise CorruptRecord("checksum mismatch")
    try:
        record = marshal.loads(payload)
    except (EOFError, ValueError, TypeError) as exc:
        raise CorruptRecord(str(exc)) from None
    if not isinstance(record, dict):
        raise CorruptRecord("not a mapping")
    return record


def append_many(home: str, records: Sequence[Mapping[str, object]], now_ns: int) -> list[str]:
    """Publish several records (each atomically), with the directory checks and the random part of the
    names done once: per record, only its temp file's open, write, close and rename. Why: a busy
    service's export thread waits a switch interval (5 ms) for the interpreter lock after every system
    call while its program is on the CPU. ValueError (nothing written) when a record is too large."""
    datas = [encode(record) for record in records]
    directories: dict[int, str] = {}
    for record in records:
        v = _version(record)
        if v not in directories:
            directories[v] = ensure_own_dir(journal_dir(home, v))  # a stray file there: moved aside
    if not os.path.lexists(os.path.join(home, DROPPED_FILE)):
        _counter_add(home, 0)
    token, pid = random_id(6), os.getpid()
    paths = []
    for i, (record, data) in enumerate(zip(records, datas, strict=True)):
        directory = directories[_version(record)]
        path = os.path.join(directory, f"{now_ns + i:020d}-{pid}-{token}{i:x}~{len(data):x}{SUFFIX}")
        write_private(path, data, token=token)
        paths.append(path)
    return paths


def dropped(home: str) -> int:
    """Runs dropped and not yet handed to the spool (see :func:`forget_dropped`)."""
    if not os.path.lexists(os.path.join(home, DROPPED_FILE)):
        return 0
    try:
        return _counter_add(home, 0)
    except OSError:
        return 0


def forget_dropped(home: str, n: int) -> None:
    """Subtract ``n`` once the spool has stored them: a failure in between loses no count."""
    if n > 0:
        _counter_add(home, -n)


def take_dropped(home: str) -> int:
    """The runs dropped since the last call; resets the count (prefer dropped + forget_dropped)."""
    n = dropped(home)
    try:
        forget_dropped(home, n)
    except OSError:
        return 0
    return n


def pending(home: str) -> list[str]:
    """Published record files, oldest first (names start with a zero-padded timestamp)."""
    return [os.path.join(d, n) for d, n in sorted(_entries(home), key=lambda entry: entry[1])]


def read(path: str) -> Record:
    """Read one record, upgraded to the version this package writes; WaitingRecord for a whole record of a
    newer version, CorruptRecord (or OSError) for anything else (never through a link)."""
    fd = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC)
    try:
        chunks = []
        size = 0
        while size <= MAX_RECORD_BYTES + 8:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    from otel_expansion.journal.record import NewerRecord, UnsupportedRecord, check  # the reading side only

    try:
        return check(decode(b"".join(chunks)))
    except NewerRecord as exc:
        raise WaitingRecord(str(exc)) from None
    except UnsupportedRecord as exc:
        raise CorruptRecord(str(exc)) from None


def remove(paths: list[str]) -> list[str]:
    """Delete record files, each only inside a verified journal directory (never through a link).

    Returns the paths that are gone (deleted now or already), so their ingest marks can be dropped.
    """
    gone: list[str] = []
    by_dir: dict[str, list[str]] = {}
    for p in paths:
        by_dir.setdefault(os.path.dirname(p), []).append(os.path.basename(p))
    for directory, batch in by_dir.items():
        try:
            check_dir(os.path.dirname(directory))
            fd = open_dir(directory)
        except OSError:
            continue
        try:
            for name in batch:
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
                gone.append(os.path.join(directory, name))
        finally:
            os.close(fd)
    return gone


def sweep_temp(home: str, older_than_s: float, now_s: float) -> int:
    """Delete ``.tmp`` leftovers of runs killed mid-write, in the journal and the home itself."""
    return sum(_sweep(os.path.join(home, sub), older_than_s, now_s) for sub in DIRECTORIES) + _sweep(
        home, older_than_s, now_s)
