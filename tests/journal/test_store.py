"""Journal: atomic, checksummed, one file per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otel_expansion.journal import store
from otel_expansion.journal.record import VERSION

V = {"v": VERSION}


def test_roundtrip_and_order(tmp_path: Path) -> None:
    """Records come back intact, oldest first, with private permissions."""
    a = store.append(str(tmp_path), {**V, "n": 1, "t": (1, 2)}, 10)
    b = store.append(str(tmp_path), {**V, "n": 2}, 5)
    assert store.pending(str(tmp_path)) == [b, a]
    assert store.read(a) == {**V, "n": 1, "t": (1, 2)}
    assert os.stat(a).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(a)).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_records_are_detected(tmp_path: Path, damage: str) -> None:
    """A damaged file raises CorruptRecord instead of yielding wrong data."""
    path = store.append(str(tmp_path), {**V, "commands": [{"name": "x" * 100}]}, 1)
    data = Path(path).read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data = data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:]
    elif damage == "garbage":
        data = os.urandom(300)
    else:
        data = b""
    Path(path).write_bytes(data)
    with pytest.raises(store.CorruptRecord):
        store.read(path)


@pytest.mark.parametrize("version", [None, 0, "1", 1.0, True])
def test_records_without_a_valid_version_are_refused(tmp_path: Path, version: object) -> None:
    """A record without a valid version (missing, malformed) is refused whole, never half-read."""
    record = {"commands": []} if version is None else {"v": version, "commands": []}
    path = store.append(str(tmp_path), record, 1)
    with pytest.raises(store.CorruptRecord, match="version"):
        store.read(path)


def test_records_of_a_newer_version_wait(tmp_path: Path) -> None:
    """A newer release's record is not corrupt: it is left for a release that reads it (issue 24)."""
    path = store.append(str(tmp_path), {"v": VERSION + 1, "commands": []}, 1)
    with pytest.raises(store.WaitingRecord, match="newer"):
        store.read(path)
    assert os.path.exists(path)


def test_records_of_an_older_version_are_upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every older version is read, upgraded step by step to the one this release writes."""
    from otel_expansion.journal import record as rec

    monkeypatch.setattr(rec, "VERSION", 3)
    monkeypatch.setattr(rec, "UPGRADES", {1: lambda r: {**r, "a": 1}, 2: lambda r: {**r, "b": r.get("a", 0) + 1}})
    path = store.append(str(tmp_path), {"v": 1, "commands": []}, 1)
    assert dict(store.read(path)) == {"v": 3, "commands": [], "a": 1, "b": 2}
    monkeypatch.setattr(rec, "UPGRADES", {2: lambda r: r})  # a missing step is refused, not guessed
    with pytest.raises(store.CorruptRecord, match="upgrade"):
        store.read(path)


def test_newer_formats_live_where_older_releases_do_not_look() -> None:
    """Releases up to 0.2 read ``journal`` only and delete other versions found there: version 1 stays there,
    any later version gets a directory of its own."""
    from otel_expansion.journal.record import directory_for

    assert directory_for(1) == "journal" and directory_for(2) == "journal-v2"


def test_the_sender_leaves_newer_records_in_place(tmp_path: Path) -> None:
    """Ingest skips a newer record: not deleted, not counted as corrupt; its neighbours are ingested."""
    from otel_expansion.config import resolve
    from otel_expansion.spool.store import Spool
    from otel_expansion.workers.sender import ingest_journal

    home = str(tmp_path)
    newer = store.append(home, {"v": VERSION + 1, "commands": []}, 1)
    ours = store.append(home, {"v": VERSION, "level": 2, "resource": {}, "commands": []}, 2)
    settings = resolve("app", home=home, file_values={})
    with Spool.open(tmp_path / "spool.sqlite") as spool:
        ingested, corrupt = ingest_journal(home, spool, settings, deadline=1e18)
        assert (ingested, corrupt) == (1, 0)
        assert "dropped.corrupt" not in spool.counters()
    assert os.path.exists(newer) and not os.path.exists(ours)


def test_temp_files_are_ignored_and_swept(tmp_path: Path) -> None:
    """A run killed mid-write leaves only a .tmp file, never listed, later removed."""
    d = tmp_path / "journal"
    d.mkdir()
    (d / "0001-1-aa.rec.1.tmp").write_bytes(b"partial")
    assert store.pending(str(tmp_path)) == []
    assert store.sweep_temp(str(tmp_path), older_than_s=-1, now_s=0) == 0  # mtime is in the future of 0
    assert store.sweep_temp(str(tmp_path), older_than_s=0, now_s=2e10) == 1


def test_oversized_record_refused(tmp_path: Path) -> None:
    """A record over the size limit is refused rather than written."""
    with pytest.raises(ValueError):
        store.append(str(tmp_path), {"x": "y" * (store.MAX_RECORD_BYTES + 1)}, 1)


def test_full_journal_drops_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_PENDING records new runs are dropped, and the drops are counted once."""
    import otel_expansion.journal

    monkeypatch.setattr(otel_expansion.journal, "MAX_PENDING", 2)  # the write side's own bound
    store.append(str(tmp_path), {"n": 1}, 1)
    assert not store.full(str(tmp_path))
    store.append(str(tmp_path), {"n": 2}, 2)
    assert store.full(str(tmp_path))
    store.note_dropped(str(tmp_path))
    store.note_dropped(str(tmp_path))
    assert store.take_dropped(str(tmp_path)) == 2 and store.take_dropped(str(tmp_path)) == 0


def test_the_write_side_crc_is_binascii_crc32_at_every_length() -> None:
    """The CLI's exit path checksums a record without loading ``binascii`` (a shared library); its CRC-32
    must be the very value ``binascii`` gives, or every release's reader would call the record corrupt."""
    import binascii
    import random

    from otel_expansion import journal

    rng = random.Random(7)
    for n in (0, 1, 2, 3, 7, 64, 255, 256, 550, 4097, 20_000):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert journal.crc32(data) == binascii.crc32(data), n
    assert journal.crc32(b"\xff" * 1000) == binascii.crc32(b"\xff" * 1000)


def test_a_small_record_is_written_without_loading_binascii(tmp_path: Path) -> None:
    """In a fresh interpreter (the CLI's situation), publishing a record loads no ``binascii``, and the
    file it writes is read back whole by the reading side (which checks with ``binascii``)."""
    import subprocess
    import sys

    code = ("import sys\nfrom otel_expansion import journal\n"
            f"p = journal.append({str(tmp_path)!r}, {{'v': 1, 'commands': [{{'name': 'sync', 'exit': 0}}]}}, 5)\n"
            "print(p)\nprint('binascii' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"
    assert store.read(out[0])["commands"] == [{"name": "sync", "exit": 0}]  # read back (upgraded to the
    # reader's version), through binascii's check
