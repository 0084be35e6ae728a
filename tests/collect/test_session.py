"""Sessions: shared across runs until idle, then a new id linked to the previous one."""

from __future__ import annotations

from pathlib import Path

from otel_expansion import collect as session


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
