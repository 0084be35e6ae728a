"""Service mode counts: usage aggregated in process (exact whatever happens to spans), spans sampled with
OpenTelemetry's threshold, and every branch where the journal refuses something counted.

The branch tests drive ``ServiceRuntime`` step by step (no export thread) against a real home: journal
files, the journal's drop counter and the SQLite spool, replayed by a real sender round.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.collect import Recorder
from otel_expansion.config import resolve
from otel_expansion.journal import store as journal
from otel_expansion.workers.sender import open_spool, run_round, sender_lock
from otel_expansion.workers.service import ServiceRuntime, _Slice

T0 = 1_764_480_000 * 10**9


def runtime(home: Path, level: str = "full", ample: bool = False) -> ServiceRuntime:
    """``ample``: each command earns far more span CPU than a span costs (the span budget keeps every span),
    for a test of something else (the host's sample, the journal's branches) that counts spans exactly."""
    settings = resolve("svc", environ={}, home=str(home), level=level, send=False)
    rt = ServiceRuntime(settings, Recorder(settings))
    rt.retire()  # no export thread: the test plays its part, step by step
    rt._thread.join(5)
    rt._spawned_at = 1e18  # no detached sender from inside a test
    if ample:
        rt.span_budget.per_command_s = 1.0
    return rt


def run(rt: ServiceRuntime, n: int, name: str = "job", fail: bool = False) -> None:
    rec = rt.recorder
    for _ in range(n):
        r = rec.begin(name, "svc", origin="literal")
        rec.feature("step")
        rec.end(r, exit_code=2 if fail else 0)


def ingest(home: Path, rt: ServiceRuntime) -> None:
    """A sender round here, after the one a shutdown may have started (it waits for the lock)."""
    from otel_expansion.export.launcher import sender_running
    from tests.conftest import wait_until

    rt._close_spool()
    wait_until(lambda: not sender_running(str(home)), 60, what="the exit's sender done")
    run_round(str(home), rt.settings, send=False, force=True, lock_wait_s=30)


def spool(home: Path, rt: ServiceRuntime) -> tuple[dict[str, float], int, dict[str, int]]:
    """(metric name -> total of its sums / histogram counts, spans, counters) pending in the spool."""
    s = open_spool(str(home), rt.settings)
    try:
        points, spans = s.pending(limit=1_000_000)
        totals: dict[str, float] = {}
        for p in points:
            value = p.count or p.value
            totals[p.key.name] = totals.get(p.key.name, 0) + float(value or 0)
        return totals, len(spans), dict(s.counters())
    finally:
        s.close()


def fill_journal(home: Path, monkeypatch: Any, bound: int = 3) -> None:
    """A journal at its record bound (a sender that cannot run)."""
    monkeypatch.setattr(journal, "MAX_PENDING", bound)
    for i in range(bound):
        journal.append(str(home), {"v": 1, "level": 1, "heartbeats": 0}, T0 + i)


def cmds(n: int, start: int = T0) -> list[dict[str, Any]]:
    return [{"name": "job", "exe": "svc", "start": start + i * 1000, "end": start + i * 1000 + 500, "exit": 0}
            for i in range(n)]


# -- usage is aggregated where the command ends --------------------------------------------------------------

def test_usage_counts_every_command_even_past_the_buffer() -> None:
    from otel_expansion.collect.usage import Usage

    settings = resolve("svc", environ={}, level="enhanced", send=False)
    rec = Recorder(settings, max_commands=10)
    rec.usage = Usage()
    for i in range(100):
        r = rec.begin("job", "svc", origin="literal")
        rec.feature("step")
        rec.end(r, exit_code=1 if i % 4 == 0 else 0)
    assert len(rec.commands) == 10 and rec.overflow == 90  # the spans: 10 kept, 90 counted
    snap = rec.usage.take()
    assert snap is not None
    runs = {(n, f): (c, len(v)) for n, f, _, c, v in snap["runs"]}
    assert runs == {("job", False): (75, 75), ("job", True): (25, 25)}
    assert dict((n, c) for n, c in snap["features"]) == {"step": 100}
    assert rec.overflow_features == 0  # the features were counted in the aggregate, not lost
    assert rec.usage.take() is None  # taken once


def test_basic_level_buffers_nothing_in_a_service() -> None:
    """No spans at basic: the aggregate is the whole record, nothing waits in the buffer."""
    from otel_expansion.collect.usage import Usage

    settings = resolve("svc", environ={}, level="basic", send=False)
    rec = Recorder(settings)
    rec.usage = Usage(activity=False)
    for _ in range(50):
        rec.end(rec.begin("job", "svc", origin="literal"))
    assert rec.commands == [] and rec.overflow == 0
    snap = rec.usage.take()
    assert snap is not None and snap["runs"][0][3] == 50


def test_usage_snapshot_merges_back_and_splits_by_values() -> None:
    from otel_expansion.collect.usage import Usage, split_usage

    u = Usage()
    for i in range(10):
        u.command({"name": "a", "exe": "x", "start": T0 + i, "end": T0 + i + 5, "exit": 0, "rec": 100})
    snap = u.take()
    assert snap is not None
    u.merge(snap)
    u.merge(snap)
    again = u.take()
    assert again is not None and again["runs"][0][3] == 20 and len(again["runs"][0][4]) == 20
    parts = split_usage(again, max_values=7)
    assert sum(r[3] for p in parts for r in p.get("runs", ())) == 20  # counts once
    assert sum(len(r[4]) for p in parts for r in p.get("runs", ())) == 20  # every value once
    assert sum(len(p.get("costs", ())) for p in parts) == 20
    assert all(sum(len(r[4]) for r in p.get("runs", ())) + len(p.get("costs", ())) <= 7 for p in parts)


def test_values_past_the_bound_are_counted_and_counts_stay_exact(monkeypatch: Any) -> None:
    from otel_expansion.collect import usage

    monkeypatch.setattr(usage, "MAX_VALUES", 5)
    monkeypatch.setattr(usage, "PENDING_MAX", 0)  # the locked aggregate's bound (the lock-free list has its own)
    u = usage.Usage()
    for i in range(8):
        u.command({"name": "a", "exe": "x", "start": T0 + i, "end": T0 + i + 5, "exit": 0})
    snap = u.take()
    assert snap is not None and snap["runs"][0][3] == 8 and len(snap["runs"][0][4]) == 5 and snap["lost"] == 3


def _usage_commands() -> list[dict[str, Any]]:
    """Successes of two commands over two quarter hours, failures, an unknown outcome and a first command."""
    out: list[dict[str, Any]] = []
    for i in range(600):
        start = T0 + i * 3 * 10**9  # 30 minutes in all: two or three quarter hours
        cmd: dict[str, Any] = {"name": "a" if i % 3 else "b", "exe": "x", "start": start, "end": start + 1000 + i,
                               "exit": 0, "cpu": i * 1e-6, "mem": 1000 + i, "rec": 500 + i}
        if i % 7 == 0:
            cmd.update(exit=2, error="ValueError")
        if i == 0:
            cmd["startup"] = 0.25
        if i == 5:
            del cmd["exit"]
        out.append(cmd)
    return out


def _sorted_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot with each series' values sorted (their order across the two paths is not a result)."""
    out = {}
    for key, rows in snap.items():
        if isinstance(rows, list) and rows and isinstance(rows[0], list):
            out[key] = sorted([[*r[:-1], sorted(r[-1])] if isinstance(r[-1], list) else r for r in rows], key=repr)
        else:
            out[key] = sorted(rows) if isinstance(rows, list) else rows
    return out


def test_lock_free_successes_aggregate_exactly_as_the_locked_path(monkeypatch: Any) -> None:
    """Successes appended without the lock and folded at take give the snapshot the locked path gives,
    value for value; past PENDING_MAX the locked path takes them, and nothing is counted twice."""
    from otel_expansion.collect import usage

    snaps = []
    for pending_max in (0, 10**9, 50):
        monkeypatch.setattr(usage, "PENDING_MAX", pending_max)
        u = usage.Usage()
        for cmd in _usage_commands():
            u.command(cmd)  # type: ignore[arg-type]
            u.feature("f" if cmd["start"] % 2 else "g")
        snap = u.take()
        assert snap is not None and usage.commands_in(snap) == 600 and u.take() is None
        snaps.append(_sorted_snapshot(snap))
    assert snaps[0] == snaps[1] == snaps[2]
    assert sum(len(r[4]) for r in snaps[0]["runs"]) == 600 and sum(c for _, c in snaps[0]["features"]) == 600


def test_lock_free_appends_lose_nothing_to_a_concurrent_take() -> None:
    """With take() looping on another thread (the export thread's drains), every success and feature use
    appended without the lock is in exactly one snapshot."""
    import threading

    from otel_expansion.collect import usage

    u = usage.Usage()
    done = threading.Event()
    snaps: list[dict[str, Any]] = []

    def take_loop() -> None:
        while not done.is_set():
            snap = u.take()
            if snap is not None:
                snaps.append(snap)

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows: appends meet takes
    thread = threading.Thread(target=take_loop)
    thread.start()
    try:
        for i in range(20_000):
            u.command({"name": "a", "exe": "x", "start": T0 + i, "end": T0 + i + 5, "exit": 0, "rec": 1})
            u.feature("f")
            if i % 500 == 499:  # at least one take lands every 500 appends, by construction, not by scheduling
                seen, deadline = len(snaps), time.monotonic() + 30
                while len(snaps) == seen and time.monotonic() < deadline:
                    time.sleep(0.0005)
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert len(snaps) >= 40  # the takes did interleave with the appends
    last = u.take()
    if last is not None:
        snaps.append(last)
    assert sum(usage.commands_in(s) for s in snaps) == 20_000
    assert sum(len(r[4]) for s in snaps for r in s.get("runs") or ()) == 20_000
    assert sum(len(s.get("costs") or ()) for s in snaps) == 20_000
    assert sum(c for s in snaps for _, c in s.get("features") or ()) == 20_000


def test_a_service_stores_exact_usage_while_its_spans_are_dropped(tmp_path: Path) -> None:
    """The buffer overflows (the thread did not drain): every command is still in the metrics; the spans
    stored plus those counted dropped are every command."""
    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    rt.recorder.max_commands = 100
    run(rt, 700)
    run(rt, 300, fail=True)
    rt.step()
    totals, spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == 1000
    assert totals["cli.command.duration"] == 1000  # histogram count: every value, through the View
    assert totals["cli.command.errors"] == 300
    assert totals["cli.feature.usage"] == 1000
    assert spans == 100 and counters["dropped.overflow"] == 900


def test_sampled_spans_carry_the_threshold_and_the_rest_are_counted(tmp_path: Path) -> None:
    """Keep 1 span in 4: kept spans say ``ot=th:c`` (adjusted count 4) in their tracestate, their trace
    ids' randomness is at or above the threshold, and stored + sampled out == commands run."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    home = tmp_path / "home"
    rt = runtime(home, "enhanced", ample=True)
    rt.recorder.sample_shift = 2
    run(rt, 2000)
    rt.step()
    totals, n_spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == 2000
    assert n_spans + counters["spans.sampled_out"] == 2000
    assert 300 < n_spans < 700  # ~500
    s = open_spool(str(home), rt.settings)
    try:
        _, rows = s.pending(limit=10_000)
    finally:
        s.close()
    threshold = 0xC0000000000000
    for row in rows:
        span = Span.FromString(row.data)
        assert span.trace_state == "ot=th:c"
        assert int.from_bytes(span.trace_id, "big") & ((1 << 56) - 1) >= threshold


def test_a_burst_keeps_what_its_commands_earned_and_counts_the_rest(tmp_path: Path) -> None:
    """The old behaviour kept every span of a burst (the thread was not behind), ~20-30 us of CPU each
    against ~80-100 us for stock's whole command: over 0.3x stock by construction. A burst of 2,000
    commands now keeps the sample its commands' credit affords; the counts still add up exactly, each kept
    span says its sampling in ``ot=th`` and carries its own feature event."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from otel_expansion.sdk.pipeline import trace_state

    home = tmp_path / "home"
    rt = runtime(home, "full")
    run(rt, 2000)
    rt._budget, rt._budget_at = 1.0, time.monotonic()  # the pacing allows it: the span budget decides
    rt.step()
    totals, n_spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == 2000 and totals["cli.feature.usage"] == 2000
    assert n_spans + counters.get("spans.sampled_out", 0) == 2000
    assert 0 < n_spans <= 2000 // 2  # a kept span costs several times what a command earns for spans
    s = open_spool(str(home), rt.settings)
    try:
        _, rows = s.pending(limit=10_000)
    finally:
        s.close()
    spans = [Span.FromString(row.data) for row in rows]
    for span in spans:
        k = next(k for k in range(1, 25) if trace_state(k) == span.trace_state)  # sampled, and says so
        assert int.from_bytes(span.trace_id, "big") & ((1 << 56) - 1) >= ((1 << k) - 1) << (56 - k)
        assert [e.name for e in span.events] == ["feature"]


def test_the_sample_shrinks_while_the_thread_is_behind_and_grows_back(tmp_path: Path) -> None:
    rt = runtime(tmp_path / "home", "enhanced")
    rt._shift_at = 0.0
    rt._behind = True
    rt._sample()
    assert rt.recorder.sample_shift == 1
    rt._shift_at = 0.0
    rt._budget = 0.01
    rt._sample()
    assert rt.recorder.sample_shift == 0


def test_the_sample_grows_back_after_a_step_that_overdrew_the_budget(tmp_path: Path) -> None:
    """The drift at a million commands: a step replays a whole slice (~25 ms) while the budget saves at most
    10 ms, so after every step the budget was negative and the sample could only shrink (1 in 35-56 where
    the share affords 1 in 5). What decides now is the share used over the window: under half of it,
    twice the spans fit, and the sample doubles back; over half, it stays."""
    rt = runtime(tmp_path / "home", "enhanced")
    rt.recorder.sample_shift = 5
    rt._budget = -0.015  # after a 25 ms slice
    rt._window_cpu, rt._shift_at = 0.025, time.monotonic() - 1.0  # 25 ms of replays in a 1 s window
    rt._sample()
    assert rt.recorder.sample_shift == 4
    rt._window_cpu, rt._shift_at = 0.08, time.monotonic() - 1.0  # 80 ms: twice as much would pass the share
    rt._sample()
    assert rt.recorder.sample_shift == 4


def test_a_sender_holding_the_lock_and_the_spool_is_not_falling_behind(tmp_path: Path) -> None:
    """Round 3's first policy counted "a sender holds the lock" as falling behind, so under sustained load
    (the program's own senders holding it) it kept 1 span in 43-63. Behind means over the CPU share or the
    memory bound: with the share available, a sender holding the lock all along and the spool's write
    lock now and then, every span is kept (a refused commit goes to the journal, stored once later)."""
    import sqlite3

    from otel_expansion.workers import service

    home = tmp_path / "home"
    rt = runtime(home, "enhanced", ample=True)
    run(rt, 1)
    rt.step()  # creates the spool
    rounds, per_round = 12, 150
    shifts = []
    with sender_lock(str(home)):  # another process's sender round, all along
        for i in range(rounds):
            run(rt, per_round)
            rt._budget, rt._budget_at = service.REPLAY_BURST_S, time.monotonic()  # within its share
            rt._shift_at = 0.0  # the sample is reconsidered at every step
            writer = None
            if i % 3 == 1:  # the sender is writing: the spool's write lock is taken too
                writer = sqlite3.connect(str(home / "spool.sqlite"), isolation_level=None)
                writer.execute("BEGIN IMMEDIATE")
            try:
                rt.step()
            finally:
                if writer is not None:
                    writer.execute("ROLLBACK")
                    writer.close()
            shifts.append(rt.recorder.sample_shift)
            assert not rt._backlog and len(rt.recorder.commands) == 0  # memory: nothing held back
    assert shifts == [0] * rounds  # never sampled: the thread kept up within its share
    assert rt.spilled > 0  # the refused commits went to the journal (the thread could not take the lock)
    ingest(home, rt)
    totals, n_spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == 1 + rounds * per_round
    assert n_spans == 1 + rounds * per_round and not counters.get("spans.sampled_out")
    assert not [k for k in counters if k.startswith("dropped.")]


def test_over_its_share_the_thread_samples_and_memory_stays_bounded(tmp_path: Path) -> None:
    """Over the CPU share (a busy program), the backlog waits in memory up to the bound, then goes to the
    journal; the sample shrinks; nothing is held past the bound and every span is accounted for."""
    from otel_expansion.workers import service

    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    total = 0
    for _ in range(8):
        run(rt, 5000)
        total += 5000
        rt._budget, rt._budget_at = -1.0, time.monotonic()  # over its share
        rt._shift_at = 0.0
        rt.step()
        held = len(rt.recorder.commands) + sum(len(sl.body.get("commands") or ()) for sl in rt._backlog)
        assert held < service.SPILL_AT
    assert rt.recorder.sample_shift >= 4 and rt.spilled > 0
    rt.shutdown()
    ingest(home, rt)
    totals, n_spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == total
    assert n_spans + counters.get("spans.sampled_out", 0) == total
    assert not [k for k in counters if k.startswith("dropped.")]


# -- every branch where the journal refuses something is counted ---------------------------------------------

def test_full_journal_counts_the_overflow_tally_of_a_refused_slice(tmp_path: Path, monkeypatch: Any) -> None:
    """The defect of round 2: a slice refused by a full journal carried the tally of the commands the
    buffer had dropped before it; only the slice's own commands were counted."""
    home = tmp_path / "home"
    rt = runtime(home)
    fill_journal(home, monkeypatch)
    rt._to_journal([{"commands": cmds(5), "overflow": 7}], spilled=True)
    assert journal.dropped(str(home)) == 12


def test_full_journal_keeps_usage_and_tallies_in_process_for_the_next_drain(tmp_path: Path,
                                                                            monkeypatch: Any) -> None:
    home = tmp_path / "home"
    rt = runtime(home)
    run(rt, 40)
    bodies = rt._drain(heartbeat=True)
    bodies[0]["overflow_features"] = 3
    fill_journal(home, monkeypatch)
    assert rt._to_journal(bodies, spilled=True) == 0
    assert journal.dropped(str(home)) == 40  # the spans
    assert rt._counts == {"dropped.overflow_features": 3}
    assert rt._heartbeats == 1
    again = rt.usage.take()
    assert again is not None and again["runs"][0][3] == 40  # waits for the next drain


def test_counters_waiting_for_a_commit_at_exit_are_written_with_the_exit(tmp_path: Path, monkeypatch: Any) -> None:
    """A spill refused by a full journal leaves its tallies (spans sampled out) waiting for the thread's
    next commit; the program exits first and its hand-over fits: the tallies still reach the spool."""
    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    rt.recorder.sample_shift = 16
    run(rt, 50)  # (nearly) all sampled out: the tally travels with the body
    bodies = rt._drain()
    fill_journal(home, monkeypatch)
    rt._to_journal(bodies, spilled=True)  # refused: the commands' spans to the journal's counter,
    assert rt._counts.get("spans.sampled_out", 0) > 0  # the tally kept in the process
    monkeypatch.undo()  # room again for the exit's hand-over
    rt.shutdown()
    ingest(home, rt)
    _, n_spans, counters = spool(home, rt)
    assert n_spans == 0
    assert counters.get("spans.sampled_out", 0) + counters.get("dropped.journal_full", 0) == 50


def test_full_journal_at_exit_writes_the_usage_past_the_bound(tmp_path: Path, monkeypatch: Any) -> None:
    """At exit nothing of the process outlives it but files: the usage and tallies go into a small record
    past the journal's bound; a sender stores every command's metrics once."""
    home = tmp_path / "home"
    rt = runtime(home)
    run(rt, 250)
    rt.recorder.overflow += 5  # five more the buffer had dropped (their usage is in the aggregate too)
    fill_journal(home, monkeypatch)
    with sender_lock(str(home)):
        rt.shutdown()
        assert journal.dropped(str(home)) == 255  # 250 spans refused + 5 overflowed
    monkeypatch.undo()
    ingest(home, rt)
    totals, spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == 250
    assert counters["dropped.journal_full"] == 255 and spans == 0


def test_a_record_too_large_for_the_journal_is_counted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rt = runtime(home)
    big = cmds(1)
    big[0]["args"] = tuple(f"--flag-{i}-{'x' * 200}" for i in range(6000))  # > 1 MiB as one record
    assert rt._to_journal([{"commands": big}]) == 0
    assert journal.dropped(str(home)) == 1


def test_a_failed_journal_write_is_counted(tmp_path: Path, monkeypatch: Any) -> None:
    """The disk fails the write (injected: EIO cannot be produced on demand here): the spans are counted
    and the usage waits in the process."""
    home = tmp_path / "home"
    rt = runtime(home)
    run(rt, 30)
    bodies = rt._drain()

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal, "append_many", failing)
    assert rt._to_journal(bodies) == 0
    monkeypatch.undo()
    assert journal.dropped(str(home)) == 30
    again = rt.usage.take()
    assert again is not None and again["runs"][0][3] == 30


def test_a_failed_replay_is_counted(tmp_path: Path, monkeypatch: Any) -> None:
    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    sl = _Slice({"commands": cmds(3), "metered": 1})

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(rt.pipeline, "ingest", broken)
    rt._replay(sl)
    monkeypatch.undo()
    _, _, counters = spool(home, rt)
    assert counters["dropped.replay"] == 3


def test_drop_counts_from_the_host_and_the_export_thread_add_up_exactly(tmp_path: Path, monkeypatch: Any) -> None:
    """flush() on the host meeting a full journal and the export thread committing its own drop counts,
    at the same time, many times over: every count reaches the spool or the journal's counter, none is
    lost to a read-modify-write of the shared counters (a switch interval of a microsecond makes the
    threads interleave inside them)."""
    import sys
    import threading

    home = tmp_path / "home"
    rt = runtime(home, "enhanced", ample=True)
    run(rt, 1)
    rt.step()  # creates the spool
    fill_journal(home, monkeypatch)
    rt.recorder.sample_shift = 16  # nearly every command sampled out: a tally each flush() sends back

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(rt.pipeline, "ingest", broken)
    rounds, per_slice = 300, 7
    host_commands = 0

    def export_thread() -> None:
        for i in range(rounds):
            rt._replay(_Slice({"commands": cmds(per_slice, T0 + i * 10**6), "metered": 1}))

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        worker = threading.Thread(target=export_thread)
        worker.start()
        while worker.is_alive() or host_commands < 3 * rounds:
            run(rt, 3)
            host_commands += 3
            rt.flush()
        worker.join()
    finally:
        sys.setswitchinterval(previous)
    monkeypatch.setattr(rt.pipeline, "ingest", type(rt.pipeline).ingest.__get__(rt.pipeline))
    rt._commit(_Slice({}), [], [])  # whatever the last commit could not take
    assert rt._counts == {}
    _, _, counters = spool(home, rt)
    assert counters["dropped.replay"] == rounds * per_slice
    # every host command: its span sampled out (counted in the process, then the spool) or, kept by the
    # sample, refused by the full journal (the journal's own drop counter)
    assert counters.get("spans.sampled_out", 0) + journal.dropped(str(home)) == host_commands


def test_a_busy_spool_hands_the_usage_to_the_journal_and_it_is_stored_once(tmp_path: Path) -> None:
    import sqlite3

    home = tmp_path / "home"
    rt = runtime(home, ample=True)
    run(rt, 10)
    rt.step()  # creates the spool
    run(rt, 700)
    other = sqlite3.connect(str(home / "spool.sqlite"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        rt.step()
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert any(r.get("usage") for r in map(journal.read, journal.pending(str(home))))
    ingest(home, rt)
    totals, spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == 710 and spans == 710
    assert not [k for k in counters if k.startswith("dropped.")]


def test_exit_hands_the_slice_in_replay_with_its_usage_exactly_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rt = runtime(home)
    run(rt, 300)
    bodies = rt._drain()
    sl = _Slice(bodies[0])
    rt._current = sl  # the thread is replaying it when the program exits
    run(rt, 20)
    with sender_lock(str(home)):
        rt.shutdown()
    assert sl.handed
    rt._replay(sl)  # the thread finishes afterwards: its claim fails, its copy is discarded
    ingest(home, rt)
    totals, spans, _ = spool(home, rt)
    assert totals["cli.command.invocations"] == 320 and spans == 320


def test_exit_during_the_replay_of_spilled_records_stores_their_usage_once(tmp_path: Path) -> None:
    """The program exits while its thread replays records it spilled, into the pipeline the exit collects:
    the exit must not store what the replay staged (the records stay in the journal when the process ends
    before their commit, and are stored again from there). Found as 129,532 invocations stored for 100,000
    commands in tests/integration/test_service.py once the thread replayed more."""
    home = tmp_path / "home"
    rt = runtime(home, "enhanced", ample=True)
    run(rt, 1)
    rt.step()  # creates the spool
    run(rt, 3000)
    rt._spill(rt._drain(size=4096))  # what the host recorded while the thread was behind: in the journal
    assert rt._catch_up and rt.spilled == 3000
    ingest_record = rt.pipeline.ingest

    class ProcessEnds(BaseException):
        """The daemon thread dies with the process, before the records' commit."""

    def exit_meanwhile(body: Any, cancelled: Any = None) -> None:
        ingest_record(body, cancelled)  # staged: the record's usage, in the shared pipeline
        rt.shutdown()  # the host exits meanwhile
        raise ProcessEnds

    rt.pipeline.ingest = exit_meanwhile  # type: ignore[method-assign]
    with pytest.raises(ProcessEnds):
        rt._replay_spilled(10.0, records=10)
    rt.pipeline.ingest = ingest_record  # type: ignore[method-assign]
    ingest(home, rt)  # the exit's sender (or this round) stores the records left in the journal
    totals, n_spans, counters = spool(home, rt)
    assert totals["cli.command.invocations"] == 3001
    assert n_spans + counters.get("spans.sampled_out", 0) == 3001


# -- drop counters travel in the round they happen in --------------------------------------------------------

def test_drop_counters_are_delivered_with_nothing_else_pending(tmp_path: Path) -> None:
    """A program stops after a burst: its data was sent, then drops were counted. The next round stages
    them as self-health points although no data is pending (before: only with some later data)."""
    from otel_expansion.workers.sender import _stage_health

    home = tmp_path / "home"
    rt = runtime(home)
    run(rt, 5)
    rt.step()
    rt._close_spool()
    s = open_spool(str(home), rt.settings)
    try:
        _stage_health(s)  # a round with data pending (what a send round does before delivering)
        s.clear()  # everything sent
        assert s.pending(limit=10) == ([], [])
        s.incr("dropped.journal_full", 4)
        _stage_health(s)
        points, _ = s.pending(limit=10)
    finally:
        s.close()
    assert [(p.key.name, p.value) for p in points] == [("otel_expansion.spool.dropped", 4.0)]


# -- journal bounds ------------------------------------------------------------------------------------------

def test_an_offline_burst_of_ten_thousand_cli_runs_is_kept(tmp_path: Path) -> None:
    """10,000 small records (one 4 KiB block each) fit the byte bound: the record bound binds, at 10,000."""
    home = str(tmp_path / "home")
    record: dict[str, object] = {"v": 1, "level": 1, "commands": cmds(1)}
    n = 0
    now = time.time_ns()
    while not journal.full(home):
        journal.append(home, record, now + n)
        n += 1
    assert n == journal.MAX_PENDING == 10_000


def test_large_records_reach_the_byte_bound_from_their_names(tmp_path: Path) -> None:
    """Records of ~600 KB: the byte bound binds (counted from the sizes in the names, no stat). It is
    checked before each write: the last record may pass it by its own size."""
    home = str(tmp_path / "home")
    record: dict[str, object] = {"v": 1, "level": 1, "pad": os.urandom(600_000)}
    n = 0
    while not journal.full(home):
        journal.append(home, record, time.time_ns() + n)
        n += 1
    on_disk = sum(os.lstat(p).st_blocks * 512 for p in journal.pending(home))
    assert n < 200 and journal.MAX_PENDING_BYTES - 700_000 < on_disk <= journal.MAX_PENDING_BYTES + 700_000


@pytest.mark.parametrize("block", [512, 4096, 65536])
def test_blocks_are_counted_from_the_names(block: int) -> None:
    names = ["1-1-a~10.rec", f"2-1-b~{3 * block + 1:x}.rec", "3-1-c.rec"]
    assert journal.blocks_of(names, block) == 1 + 4 + 1


def test_handled_exceptions_are_counted_past_the_buffer() -> None:
    from otel_expansion.collect.usage import Usage

    settings = resolve("svc", environ={}, level="full", send=False)
    rec = Recorder(settings, max_commands=2)
    rec.usage = Usage()
    for _ in range(50):
        rec.exception(KeyError("k"))
    assert len(rec.exceptions) == 4 and rec.overflow_exceptions == 46  # the span events: bounded
    snap = rec.usage.take()
    assert snap is not None and snap["handled"] == [["KeyError", 50]]
