"""The run journal: one small file per finished CLI run, written by the run itself.

Why not SQLite here: the CLI's exit path must cost well under 10 ms and import nothing heavy. A record is
``marshal``-encoded (a builtin, no import cost), framed with a magic and a CRC, and published with an
atomic rename, so a crash mid-write leaves at most a ``.tmp`` file that readers ignore. The detached
sender ingests records into the SQLite spool and deletes them.
"""

from __future__ import annotations

import binascii
import contextlib
import marshal
import os
import struct

from otel_expansion.config.paths import JOURNAL_DIR, ensure_dir, random_id, write_private
from otel_expansion.journal.record import UnsupportedRecord, check

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from otel_expansion.journal.record import Record

MAGIC = b"OXJ1"
SUFFIX = ".rec"
MAX_RECORD_BYTES = 1 << 20  # a bigger record is a bug or an attack: refuse to write or read it
MAX_PENDING = 10_000  # records waiting for a sender (~10 MB); past it new runs are dropped and counted
DROPPED_FILE = "journal.dropped"


class CorruptRecord(ValueError):
    """A journal file that is not a whole, valid record."""


def encode(record: Mapping[str, object]) -> bytes:
    payload = marshal.dumps(dict(record))
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"journal record too large ({len(payload)} bytes)")
    return MAGIC + struct.pack(">I", binascii.crc32(payload)) + payload


def decode(data: bytes) -> dict[str, object]:
    if len(data) < 8 or data[:4] != MAGIC:
        raise CorruptRecord("bad magic")
    (crc,) = struct.unpack(">I", data[4:8])
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


def journal_dir(home: str) -> str:
    return os.path.join(home, JOURNAL_DIR)


def append(home: str, record: Mapping[str, object], now_ns: int) -> str:
    """Publish one record atomically; returns its path."""
    directory = ensure_dir(journal_dir(home))
    path = os.path.join(directory, f"{now_ns:020d}-{os.getpid()}-{random_id(4)}{SUFFIX}")
    write_private(path, encode(record))
    return path


def full(home: str) -> bool:
    """True when MAX_PENDING records already wait (a sender that cannot run must not fill the disk)."""
    return count(home) >= MAX_PENDING


def note_dropped(home: str) -> None:
    """Count one run dropped because the journal was full (read back by the sender as self-health)."""
    from otel_expansion.config.paths import read_small

    path = os.path.join(home, DROPPED_FILE)
    raw = read_small(path, 32)
    try:
        n = int(raw or b"0") + 1
    except ValueError:
        n = 1
    write_private(path, str(n).encode())


def take_dropped(home: str) -> int:
    """The runs dropped since the last call; resets the count."""
    from otel_expansion.config.paths import read_small

    path = os.path.join(home, DROPPED_FILE)
    raw = read_small(path, 32)
    if raw is None:
        return 0
    try:
        os.unlink(path)
        return max(0, int(raw))
    except (OSError, ValueError):
        return 0


def pending(home: str) -> list[str]:
    """Published record files, oldest first (names start with a zero-padded timestamp)."""
    try:
        names = os.listdir(journal_dir(home))
    except OSError:
        return []
    return [os.path.join(journal_dir(home), n) for n in sorted(names) if n.endswith(SUFFIX)]


def count(home: str) -> int:
    try:
        return sum(1 for n in os.listdir(journal_dir(home)) if n.endswith(SUFFIX))
    except OSError:
        return 0


def read(path: str) -> Record:
    """Read one record; raises CorruptRecord (or OSError) for anything but a whole valid record of the
    version this package writes."""
    with open(path, "rb") as f:
        data = f.read(MAX_RECORD_BYTES + 16)
    try:
        return check(decode(data))
    except UnsupportedRecord as exc:
        raise CorruptRecord(str(exc)) from None


def remove(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def sweep_temp(home: str, older_than_s: float, now_s: float) -> int:
    """Delete ``.tmp`` leftovers of runs killed mid-write."""
    removed = 0
    try:
        entries = list(os.scandir(journal_dir(home)))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.endswith(".tmp"):
            try:
                if now_s - entry.stat().st_mtime > older_than_s:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed
