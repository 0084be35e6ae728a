"""Sessions: shared across runs until idle, then a new id linked to the previous one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from otel_expansion import collect as session
from tests.conftest import ROOT


def test_runs_within_idle_share_a_session(tmp_path: Path) -> None:
    """Two runs 10 minutes apart share session.id; the count accumulates."""
    s1, ended1 = session.touch_session(str(tmp_path), 1_000_000_000_000, 1800)
    s2, ended2 = session.touch_session(str(tmp_path), 1_000_000_000_000 + 600 * 10**9, 1800)
    assert s1.id == s2.id and s2.commands == 2 and ended1 is None and ended2 is None


def test_idle_gap_starts_a_new_session_and_reports_the_old(tmp_path: Path) -> None:
    """After 30 idle minutes a new id starts, previous_id links it, and the ended one is reported."""
    t0 = 1_000_000_000_000
    s1, _ = session.touch_session(str(tmp_path), t0, 1800)
    session.touch_session(str(tmp_path), t0 + 60 * 10**9, 1800)
    s3, ended = session.touch_session(str(tmp_path), t0 + 4000 * 10**9, 1800)
    assert s3.id != s1.id and s3.previous_id == s1.id
    assert ended is not None and ended.id == s1.id and ended.commands == 2 and ended.duration_s == 60


def test_damaged_state_starts_fresh(tmp_path: Path) -> None:
    """A garbled session file is replaced, not fatal."""
    (tmp_path / "session").write_bytes(b"\x00garbage")
    s, ended = session.touch_session(str(tmp_path), 5, 1800)
    assert len(s.id) == 32 and ended is None


def test_end_reports_and_clears(tmp_path: Path) -> None:
    """Long-running programs end their session at shutdown."""
    session.touch_session(str(tmp_path), 10**9, 1800)
    ended = session.end_session(str(tmp_path), 3 * 10**9)
    assert ended is not None and ended.duration_s == 2 and session.end_session(str(tmp_path), 4) is None


def test_a_run_updates_the_session_file_in_place(tmp_path: Path) -> None:
    """The second run of a session writes over the file it read (same inode, no temp file): replacing an
    existing file by rename costs ext4 a flush of the new file's blocks inside the rename."""
    session.touch_session(str(tmp_path), 10**18, 1800)
    before = os.stat(tmp_path / "session")
    s, _ = session.touch_session(str(tmp_path), 10**18 + 10**9, 1800)
    after = os.stat(tmp_path / "session")
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert sorted(os.listdir(tmp_path)) == ["session"] and s.commands == 2


def test_an_older_release_file_is_read_then_written_padded(tmp_path: Path) -> None:
    """A session file of an older release (unpadded) continues its session; it is written whole once, padded,
    and the padded text splits into the five fields an older release's parser reads."""
    old = b"0123456789abcdef0123456789abcdef - 1000000000000000000 1000000000000000000 7"
    (tmp_path / "session").write_bytes(old)
    os.chmod(tmp_path / "session", 0o600)
    s, ended = session.touch_session(str(tmp_path), 10**18 + 10**9, 1800)
    assert (s.id, s.commands, ended) == ("0123456789abcdef0123456789abcdef", 8, None)
    sid, prev, start, last, count = (tmp_path / "session").read_bytes().decode("ascii").split()  # 0.2's parser
    assert (sid, prev, int(start), int(last), int(count)) == (s.id, "-", 10**18, 10**18 + 10**9, 8)


CONCURRENT = """
import sys
from otel_expansion import collect
for i in range(int(sys.argv[2])):
    collect.touch_session(sys.argv[1], 10**18 + i, 1800)
"""


def test_concurrent_runs_lose_no_count(tmp_path: Path) -> None:
    """Runs of one home at the same moment read and write the session under a lock: four processes of 60
    runs each leave one session of 240 commands (a read-modify-write race would lose some)."""
    session.touch_session(str(tmp_path), 10**18, 1800, commands=0)
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path), "60"], cwd=ROOT) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    s, _ = session.touch_session(str(tmp_path), 10**18 + 100, 1800, commands=0)
    assert s.commands == 240


def test_end_session_removes_the_file_another_run_updates(tmp_path: Path) -> None:
    """A run that waited for the lock of a file ``end_session`` removed starts a new session rather than
    writing into the removed file."""
    session.touch_session(str(tmp_path), 10**18, 1800)
    ended = session.end_session(str(tmp_path), 10**18 + 10**9)
    assert ended is not None and ended.commands == 1
    s, again = session.touch_session(str(tmp_path), 10**18 + 2 * 10**9, 1800)
    assert again is None and s.id != ended.id and s.commands == 1 and (tmp_path / "session").exists()


HOLD = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
os.lockf(fd, os.F_LOCK, 0)
print("locked", flush=True)
time.sleep(30)
"""


def test_a_session_locked_by_a_stopped_process_does_not_hold_the_run(tmp_path: Path) -> None:
    """Another process keeping the session file locked (stopped mid-update) delays a run by at most ~25 ms:
    the run then writes the file whole, and its command still counts."""
    session.touch_session(str(tmp_path), 10**18, 1800)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "session")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        t0 = time.monotonic()
        s, _ = session.touch_session(str(tmp_path), 10**18 + 10**9, 1800)
        assert time.monotonic() - t0 < 5  # bounded (~25 ms), not the holder's 30 s
        assert s.commands == 2 and session._load_session(str(tmp_path / "session")).commands == 2
    finally:
        holder.kill()
        holder.wait()
