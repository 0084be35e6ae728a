"""The service runtime's exit: whatever is not committed goes to the journal, exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otel_expansion.collect import Recorder
from otel_expansion.config import Level, resolve
from otel_expansion.journal import store as journal
from otel_expansion.workers.sender import open_spool, sender_lock
from otel_expansion.workers.service import ServiceRuntime, _Slice, split_body

T0 = 1_764_480_000 * 10**9


def runtime(home: Path, ample: bool = False) -> ServiceRuntime:
    """``ample``: the span budget keeps every span (the test counts what is journaled, command by command)."""
    settings = resolve("svc", environ={}, home=str(home), level="full", send=False)
    rt = ServiceRuntime(settings, Recorder(settings))
    rt.retire()  # no export thread: the test plays its part, step by step
    rt._thread.join(5)
    if ample:
        rt.span_budget.per_command_s = 1.0
    return rt


def body(n: int, start: int = T0) -> dict[str, Any]:
    commands = [{"name": "job", "exe": "svc", "start": start + i * 1000, "end": start + i * 1000 + 500, "exit": 0}
                for i in range(n)]
    features = [{"name": "f", "t": c["start"] + 1} for c in commands]
    return {"commands": commands, "features": features, "exceptions": [], "level": 3, "session": None}


def journaled(home: Path) -> list[dict[str, Any]]:
    return [journal.read(p) for p in journal.pending(str(home))]


def spool_commands(home: Path, rt: ServiceRuntime) -> int:
    spool = open_spool(str(home), rt.settings)
    try:
        points, _ = spool.pending(limit=100_000)
    finally:
        spool.close()
    return int(sum(p.value for p in points if p.key.name == "cli.command.invocations"))


def test_split_keeps_features_with_their_commands() -> None:
    b = body(10)
    b["features"].append({"name": "late", "t": T0 + 10**9})
    b["features"].insert(0, {"name": "early", "t": T0 - 1})
    parts = split_body(b, 4)
    assert [len(p["commands"]) for p in parts] == [4, 4, 2]
    for p in parts:
        for f in p["features"]:
            if f["name"] == "f":
                assert any(c["start"] < f["t"] < c["end"] for c in p["commands"])
    assert parts[0]["features"][0]["name"] == "early" and parts[-1]["features"][-1]["name"] == "late"
    assert sum(len(p["features"]) for p in parts) == 12 and all(p["level"] == 3 for p in parts)
    shuffled = dict(b, features=list(reversed(b["features"])))  # out of time order: same assignment
    assert [sorted(f["t"] for f in p["features"]) for p in split_body(shuffled, 4)] == \
        [sorted(f["t"] for f in p["features"]) for p in parts]


def test_exit_hands_an_unclaimed_slice_to_the_journal_and_the_thread_drops_its_copy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rt = runtime(home)
    in_replay = _Slice(body(300))
    rt._current = in_replay  # the export thread is replaying this slice when the program exits
    rt._backlog.append(_Slice(body(50, T0 + 10**9)))
    with sender_lock(str(home)):  # held: exit starts no detached sender, the records stay to be read
        rt.shutdown()
    assert in_replay.handed
    assert sum(len(r["commands"]) for r in journaled(home)) == 350
    # the thread finishes its replay afterwards: the claim fails, nothing reaches the spool twice
    rt.pipeline.ingest(in_replay.body)
    rt.pipeline.collect()
    points, spans = rt.staging.take()
    assert points and spans
    assert rt._commit(in_replay, points, spans) == 0
    assert spool_commands(home, rt) == 0


def test_a_claimed_slice_is_committed_and_not_journaled(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rt = runtime(home)
    sl = _Slice(body(200))
    rt._current = sl
    rt.pipeline.ingest(sl.body)
    rt.pipeline.collect()
    points, spans = rt.staging.take()
    assert rt._commit(sl, points, spans) == len(points) + len(spans)  # claimed inside the transaction
    sl.done.set()
    rt._close_spool()
    with sender_lock(str(home)):
        rt.shutdown()
    assert not sl.handed and journaled(home) == []
    assert spool_commands(home, rt) == 200


def spool_spans(home: Path, rt: ServiceRuntime) -> int:
    spool = open_spool(str(home), rt.settings)
    try:
        return len(spool.pending(limit=100_000)[1])
    finally:
        spool.close()


def test_flush_persists_the_buffer_as_journal_records(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rt = runtime(home)
    rec = rt.recorder
    for _ in range(2500):
        rec.end(rec.begin("job", "svc", origin="literal"))
    assert rt.flush() == 2500
    records = [r for r in journaled(home) if r.get("commands")]  # (and the usage aggregate's record)
    assert [len(r["commands"]) for r in records] == [1000, 1000, 500]
    assert all(r["level"] == int(Level.FULL) and r["resource"] == rt.resource for r in records)


def record(rt: ServiceRuntime, n: int) -> None:
    rec = rt.recorder
    for _ in range(n):
        rec.end(rec.begin("job", "svc", origin="literal"))


def ingest(home: Path, rt: ServiceRuntime) -> None:
    from otel_expansion.workers.sender import run_round

    rt._close_spool()
    run_round(str(home), rt.settings, send=False, force=True)


def counters(home: Path, rt: ServiceRuntime) -> dict[str, int]:
    spool = open_spool(str(home), rt.settings)
    try:
        return dict(spool.counters())
    finally:
        spool.close()


def test_over_its_replay_budget_the_backlog_waits_in_memory_for_the_share(tmp_path: Path) -> None:
    """A program busier than the thread's share of the time, within the memory bound: the slices wait in
    the backlog (no journal round trip) and are replayed once the share allows, each command once."""
    home = tmp_path / "home"
    rt = runtime(home)
    record(rt, 5000)
    rt._budget = -10.0  # the thread has used more than its share (a busy program)
    rt.step()
    assert rt.spilled == 0 and not journaled(home) and spool_commands(home, rt) == 0
    assert sum(len(sl.body.get("commands") or ()) for sl in rt._backlog) == 5000
    steps = 0
    while rt._backlog:  # the share refills (a slice at least each time it is positive)
        rt._budget = 1.0
        rt.step()
        steps += 1
        assert steps < 10
    assert spool_commands(home, rt) == 5000 and rt.spilled == 0


def test_past_the_memory_bound_the_thread_spills_and_replays_what_it_spilled_itself(tmp_path: Path) -> None:
    """Past the memory bound the backlog goes to the journal (marked as spilled), none is dropped, and the
    thread replays those records itself with its spare share (no sender process): each command once."""
    from otel_expansion.workers import service

    home = tmp_path / "home"
    rt = runtime(home)
    rt._spawned_at = 1e18  # no detached sender from inside a test
    n = service.SPILL_AT + 808
    record(rt, n)
    rt._budget = -10.0
    rt.step()
    assert rt.spilled == n and spool_commands(home, rt) == 0 and rt._catch_up
    records = journaled(home)
    assert sum(len(r.get("commands", ())) for r in records) == n == sum(r.get("spilled", 0) for r in records)
    steps = 0
    while rt._catch_up:  # one record a step, while the share allows
        rt._budget = 1.0
        rt.step()
        steps += 1
        assert steps < 50
    assert steps >= 2 and not journaled(home)
    assert spool_commands(home, rt) == n
    assert counters(home, rt).get("service.spilled") == n
    assert not [k for k in counters(home, rt) if k.startswith("dropped.")]
    assert spool_spans(home, rt) == n


def test_a_busy_spool_sends_the_slice_to_the_journal_instead_of_dropping_it(tmp_path: Path) -> None:
    """A sender holding the spool's write lock longer than the thread waits: the replayed slice's commands
    are journaled as recorded (the staged copy is discarded), then stored once."""
    import sqlite3

    home = tmp_path / "home"
    rt = runtime(home, ample=True)
    rt._spawned_at = 1e18
    record(rt, 10)
    rt.step()  # creates the spool
    assert spool_commands(home, rt) == 10
    record(rt, 700)
    other = sqlite3.connect(str(home / "spool.sqlite"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a writer holds the lock
        rt._budget = 1.0  # within its share: the slice is replayed, and its commit refused
        rt.step()
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert sum(len(r.get("commands", ())) for r in journaled(home)) == 700 and rt.spilled == 700
    ingest(home, rt)
    assert spool_commands(home, rt) == 710
    assert not [k for k in counters(home, rt) if k.startswith("dropped.")]


def test_a_sender_that_cannot_start_leaves_spilled_slices_in_the_journal_only(tmp_path: Path,
                                                                              monkeypatch: Any) -> None:
    """The interpreter was replaced under a running service (no executable to start a sender with): the
    spill is not undone, nothing is replayed a second time, and whoever replays the records (the thread,
    then a sender) stores each command once."""
    import sys

    from otel_expansion.workers import service

    home = tmp_path / "home"
    rt = runtime(home)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "gone" / "python3"))
    monkeypatch.setattr(service, "SPAWN_AFTER", 1)  # the thread asks for help at once
    n = service.SPILL_AT + 808
    record(rt, n)
    rt._budget = -10.0
    rt.step()  # spills: the sender start fails (logged), the backlog is already cleared
    assert rt.spilled == n and not rt._backlog
    for _ in range(2):  # the thread replays a spilled record a step itself (the usage's, then commands)
        rt._budget = 1.0
        rt.step()
    monkeypatch.undo()
    assert 0 < spool_spans(home, rt) < n and journaled(home)
    ingest(home, rt)
    assert spool_commands(home, rt) == n == spool_spans(home, rt)
