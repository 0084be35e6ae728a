"""The run journal: one small file per finished CLI run, in the format ``record`` declares.

What a CLI's exit path needs to write a record is here, in the package itself: the format's version,
where each version's records live, the encoding, the bounds, the drop counter and whether a sender is
due. That process loads this package anyway, and each module more costs it ~0.2 M instructions; the
reading side (``store``: decoding, listing oldest first, removing, sweeping; ``record``: the types,
``check`` and the upgrades) stays out of it. ``store`` gives both sides under one name. Nothing here
imports ``store`` or ``record``.

Why not SQLite here: the CLI's exit path must cost well under 10 ms and import nothing heavy. A record is
``marshal``-encoded (a builtin, no import cost), framed with a magic and a CRC, and published with an
atomic rename, so a crash mid-write leaves at most a ``.tmp`` file that readers ignore (and the sender
sweeps). The detached sender ingests records into the SQLite spool and deletes them.

Bounds: at most ``MAX_PENDING`` records and ``MAX_PENDING_BYTES`` on disk, and never when the disk has
less than ``RESERVE_BYTES`` free. Each file is counted as the whole allocation blocks its size takes (what
it costs on ext4); the size is part of the file's name (``~<hex>``), so the bound is checked from one
directory listing, without a stat per file. On a 4 KiB-block filesystem a CLI run's record (well under
4 KiB) takes one block: 10,000 of them take 39 MiB, so the record bound binds; a long-running program's
records (up to 1 MiB each) reach the byte bound first. A run refused by these bounds is counted in a
fixed-size counter file that is created ahead and then updated in place, so counting a drop needs no free
space.
"""

from __future__ import annotations

import binascii
import marshal
import os
import time

from otel_expansion.config.paths import (
    SENDER_STATE,
    check_dir,
    ensure_own_dir,
    open_dir,
    open_private,
    random_id,
    read_small,
    write_private,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

VERSION = 2
"""Bump when a field changes meaning (see ``journal.record``: an upgrade in UPGRADES, a new directory).

2 (0.3): a command may have no exit code (outcome ``unknown``: an exit nobody could observe), and a body
may carry a long-running program's usage aggregate (``usage``; its commands, ``metered``, are spans only).
A 0.2 sender would read the first as success and count the second's sampled commands as all there were,
so such records are version 2, in ``journal-v2``, where 0.2 never looks. Every other record is still
written as version 1 (:func:`version_of`): an older release keeps reading what it can read right.

The error signature (``sig`` of a command or handled exception, 0.3 round 3; in a usage aggregate the extra
lists ``error_signatures`` and ``handled_signatures`` beside the unchanged totals ``errors`` and ``handled``)
is an added field, not a changed meaning: it refines a count an older release already counts exactly (by
command and error type), so it does not raise a record's version. An older release replays such a record
with every count right and without the signature; a newer version would keep the record from it (left
in ``journal-v3`` until an upgrade), which would lose its errors from the counts of a downgraded install."""


def version_of(record: Mapping[str, object]) -> int:
    """The oldest version that can carry ``record``'s meaning: 2 when it has a command without an exit
    code or a service's usage aggregate (see :data:`VERSION`), else 1."""
    if record.get("metered") or record.get("usage"):
        return 2
    commands = record.get("commands")
    if isinstance(commands, (list, tuple)):
        for cmd in commands:
            if isinstance(cmd, dict) and "exit" not in cmd:
                return 2
    return 1


def directory_for(version: int) -> str:
    """The journal directory (inside the home) holding records of ``version`` (see the module docstring)."""
    return "journal" if version <= 1 else f"journal-v{version:d}"


# -- the write side (see the module docstring) --------------------------------------------------------
MAGIC = b"OXJ1"
SUFFIX = ".rec"
MAX_RECORD_BYTES = 1 << 20  # a bigger record is a bug or an attack: refuse to write or read it
MAX_PENDING = 10_000  # records waiting for a sender; past it new runs are dropped and counted
MAX_PENDING_BYTES = 64 * 2**20  # ... and bytes on disk (a 200-byte record still takes a 4 KiB block)
RESERVE_BYTES = 1 << 20  # leave this much of the disk free: the spool and the host need it more
DROPPED_FILE = "journal.dropped"
_COUNTER_WIDTH = 20


def encode(record: Mapping[str, object]) -> bytes:
    payload = marshal.dumps(dict(record))
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"journal record too large ({len(payload)} bytes)")
    return MAGIC + binascii.crc32(payload).to_bytes(4, "big") + payload  # int.to_bytes: no ``struct`` import


DIRECTORIES = tuple(directory_for(v) for v in range(1, VERSION + 1))
"""Where records of each version this release reads live (``journal``, ``journal-v2``...): a record is
written where the oldest release that reads it right looks (see otel_expansion.journal.VERSION)."""


def journal_dir(home: str, version: int = 1) -> str:
    return os.path.join(home, directory_for(version))


def _version(record: Mapping[str, object]) -> int:
    v = record.get("v")
    return v if type(v) is int and 1 <= v <= VERSION else 1


def append(home: str, record: Mapping[str, object], now_ns: int) -> str:
    """Publish one record atomically; returns its path."""
    data = encode(record)
    directory = ensure_own_dir(journal_dir(home, _version(record)))  # a stray file there: moved aside
    counter = os.path.join(home, DROPPED_FILE)
    if not os.path.lexists(counter):  # the reserve for counting drops, made while there is room
        _counter_add(home, 0)
    path = os.path.join(directory, f"{now_ns:020d}-{os.getpid()}-{random_id(4)}~{len(data):x}{SUFFIX}")
    write_private(path, data)
    return path


def _entries(home: str) -> list[tuple[str, str]]:
    """Published records as (directory, name), unsorted, from every version's directory this release
    reads; none from a journal that is absent, a link or not ours."""
    try:
        check_dir(home)  # a home that is a link or not ours is not read, let alone cleaned
    except OSError:
        return []
    found: list[tuple[str, str]] = []
    for sub in DIRECTORIES:
        directory = os.path.join(home, sub)
        try:
            fd = open_dir(directory)
        except OSError:
            continue
        try:
            found.extend((directory, n) for n in os.listdir(fd) if n.endswith(SUFFIX))
        except OSError:
            pass
        finally:
            os.close(fd)
    return found


def names(home: str) -> list[str]:
    """Published record names (unsorted; unique: a time, a pid and a random part)."""
    return [name for _, name in _entries(home)]


def full(home: str, listed: Sequence[str] | None = None) -> bool:
    """True when the journal is at its record or byte bound, or the disk is nearly full.

    A sender that cannot run must not fill the disk, and a full disk must not wedge the host's exit.
    ``listed``: the record names, when the caller has just listed them (:func:`names`): a run's exit
    lists the journal once for this bound and for :func:`should_start`.
    """
    found = names(home) if listed is None else listed
    n = len(found)
    if n >= MAX_PENDING:
        return True
    try:
        vfs = os.statvfs(home)
    except (OSError, AttributeError):  # Windows: records and bytes are bounded by count only
        return False
    block = max(512, vfs.f_frsize or vfs.f_bsize or 4096)
    if (blocks_of(found, block) + 1) * block > MAX_PENDING_BYTES:
        return True
    return vfs.f_bavail * block < RESERVE_BYTES


def blocks_of(names: Sequence[str], block: int) -> int:
    """Allocation blocks the named records take: their sizes are in their names (``~<hex>.rec``); a name
    without one (an older record) counts one block."""
    total = len(names)
    for name in names:
        i = name.rfind("~")
        if i > 0:
            try:
                size = int(name[i + 1:-len(SUFFIX)], 16)
            except ValueError:
                continue
            if size > block:
                total += (size - 1) // block
    return total


def _counter_add(home: str, delta: int) -> int:
    """Add ``delta`` to the fixed-width drop counter in place (flock-guarded); returns the old value.

    The file keeps its size, so updating it on a full disk needs no new block.
    """
    fd = open_private(os.path.join(home, DROPPED_FILE), os.O_RDWR | os.O_CREAT)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: rare lost increments accepted
            pass
        raw = os.pread(fd, 64, 0) if hasattr(os, "pread") else os.read(fd, 64)
        try:
            old = max(0, int(raw.strip() or b"0"))
        except ValueError:
            old = 0
        new = max(0, old + delta)
        data = str(new).rjust(_COUNTER_WIDTH).encode()
        if hasattr(os, "pwrite"):
            os.pwrite(fd, data, 0)
        else:  # pragma: no cover - Windows
            os.lseek(fd, 0, 0)
            os.write(fd, data)
        return old
    finally:
        os.close(fd)  # closing releases the lock


def note_dropped(home: str, n: int = 1) -> None:
    """Count ``n`` runs (commands) dropped because the journal was full (read back by the sender as
    self-health)."""
    _counter_add(home, n)


def count(home: str) -> int:
    return len(names(home))


# -- is a sender due? Decided on every recorded run's exit, so it lives here, beside the records it drains,
# and not in export/launcher.py (which starts the sender, a rarer branch: importing it costs a CLI two
# modules). It reads one tiny state file written by the sender: ``<next-send> <last-start> <written-at>``.
INGEST_THRESHOLD = 64
"""Journal records that justify a sender even while sending is deferred (keeps the journal small)."""
MIN_SPAWN_INTERVAL_S = 10.0
"""At most one sender start per this many seconds, even if senders keep dying (no spawn storms)."""

MAX_DEFER_S = 86400.0
"""The furthest ahead a next-send time may lie: the longest Retry-After honoured (the backoff cap is 1 h)."""
CLOCK_SLACK_S = 5.0
"""A state written more than this "in the future" means the clock moved back since: its times are void."""


def _state(home: str, now: float | None = None) -> tuple[float, float]:
    """(next send due, last sender start), epoch seconds, clamped to what the policy allows from now.

    Zeros when unknown. A time written after ``now`` (clock moved back) or beyond ``MAX_DEFER_S`` is void.
    """
    raw = read_small(os.path.join(home, SENDER_STATE), 128)
    values = [0.0, 0.0, 0.0]
    if raw:
        for i, field in enumerate(raw.split()[:3]):
            try:
                value = float(field)
            except ValueError:
                continue
            if value - value == 0.0:  # finite: nan and inf (a damaged or hand-edited file) count as unknown
                values[i] = value
    next_send, last_spawn, written = values
    now = time.time() if now is None else now
    if written > now + CLOCK_SLACK_S or next_send > now + MAX_DEFER_S:
        return 0.0, 0.0
    return next_send, last_spawn


def next_send_at(home: str, now: float | None = None) -> float:
    """When the next send is due (0: now); never further than ``MAX_DEFER_S`` from ``now``."""
    return _state(home, now)[0]


def should_start(home: str, send: bool, now: float | None = None, pending: int | None = None) -> bool:
    """Whether this run should start a sender. ``pending``: the records waiting, when the caller counted
    them already (its own listing plus the record it wrote); else the journal is listed."""
    now = time.time() if now is None else now
    next_send, last_spawn = _state(home, now)
    if abs(now - last_spawn) < MIN_SPAWN_INTERVAL_S:  # abs: the state keeps milliseconds, rounded
        return False
    if send and now >= next_send:
        return True
    return (count(home) if pending is None else pending) >= INGEST_THRESHOLD
