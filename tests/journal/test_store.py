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


@pytest.mark.parametrize("version", [None, VERSION + 1, "1"])
def test_records_of_another_version_are_refused(tmp_path: Path, version: object) -> None:
    """A record without this package's version (older, newer, malformed) is refused whole, never half-read."""
    record = {"commands": []} if version is None else {"v": version, "commands": []}
    path = store.append(str(tmp_path), record, 1)
    with pytest.raises(store.CorruptRecord, match="version"):
        store.read(path)


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
    monkeypatch.setattr(store, "MAX_PENDING", 2)
    store.append(str(tmp_path), {"n": 1}, 1)
    assert not store.full(str(tmp_path))
    store.append(str(tmp_path), {"n": 2}, 2)
    assert store.full(str(tmp_path))
    store.note_dropped(str(tmp_path))
    store.note_dropped(str(tmp_path))
    assert store.take_dropped(str(tmp_path)) == 2 and store.take_dropped(str(tmp_path)) == 0
