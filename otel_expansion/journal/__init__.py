"""The run journal: one small file per finished CLI run, in the format ``record`` declares.

What a CLI's exit path needs to write a record is here, in the package itself: the format's version,
where each version's records live, the encoding, the bounds, the drop counter and whether a sender is
due. That process loads this package anyway, and each module more costs it ~0.2 M instructions; the
reading side (``store``: decoding, listing oldest first, removing, sweeping; ``record``: the types,
``check`` and the upgrades) stays out of it. ``store`` gives both sides under one name. Nothing here
imports ``store`` or ``record``.

Why not SQLite here: the CLI's exit path must cost well under 10 ms and import nothing heavy. A record is
``marshal``-encoded (a builtin, no import cost), framed with a magic and a CRC-32 (computed here, see
:func:`crc32`), and published with an atomic rename, so a crash mid-write leaves at most a ``.tmp`` file
that readers ignore (and the sender sweeps). The detached sender ingests records into the SQLite spool and deletes them.

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

import marshal
import os
import sys
import time

from otel_expansion.config import (
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
    if len(payload) > _PY_CRC_MAX or "binascii" in sys.modules:
        import binascii

        crc = binascii.crc32(payload)
    else:
        crc = crc32(payload)
    return MAGIC + crc.to_bytes(4, "big") + payload  # int.to_bytes: no ``struct`` import


_PY_CRC_MAX = 8192
"""Records up to this size are checksummed by :func:`crc32` unless ``binascii`` is loaded already."""


def crc32(data: bytes) -> int:
    """``binascii.crc32(data)``, in Python: the same value, so every release reads every record.

    Why: ``binascii`` is a shared library, and a CLI's exit path that loads it pays the dynamic loader,
    ~0.35 ms of wall time on a 2-core box (a fresh process after ``import click``), where this loop costs
    ~50 us for a hello-world run's ~550-byte record. Bigger records (a long-running program's, up to
    1 MiB) and processes that have ``binascii`` already use it. tests/journal holds the two equal."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# the reflected CRC-32 (IEEE 802.3, polynomial 0xEDB88320) of each byte value, as zlib and binascii use it
_CRC_TABLE = (
    0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f, 0xe963a535, 0x9e6495a3,
    0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988, 0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91,
    0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de, 0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
    0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec, 0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5,
    0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172, 0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b,
    0x35b5a8fa, 0x42b2986c, 0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
    0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f,
    0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924, 0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d,
    0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
    0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb, 0x086d3d2d, 0x91646c97, 0xe6635c01,
    0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e, 0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457,
    0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
    0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb,
    0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0, 0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9,
    0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
    0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81, 0xb7bd5c3b, 0xc0ba6cad,
    0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a, 0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683,
    0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
    0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe, 0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7,
    0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc, 0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5,
    0xd6d6a3e8, 0xa1d1937e, 0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
    0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55, 0x316e8eef, 0x4669be79,
    0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236, 0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f,
    0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
    0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a, 0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713,
    0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38, 0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21,
    0x86d3d2d4, 0xf1d4e242, 0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
    0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45,
    0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2, 0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db,
    0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
    0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605, 0xcdd70693, 0x54de5729, 0x23d967bf,
    0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94, 0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
)


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
