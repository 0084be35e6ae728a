"""The span budget of a long-running program: each recorded command earns a fixed amount of span CPU, and a
slice whose spans would cost more keeps a sample, with OpenTelemetry's threshold and exact counts.

The rule is tested with an injected clock and CPU meter (no timing asserts); the runtime tests replay real
bursts into a real SQLite spool, and the adjusted counts are read back by both backend engines.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.workers import budget
from otel_expansion.workers.budget import SpanBudget, shifts_for, thin
from otel_expansion.workers.service import ServiceRuntime
from tests.sdk.test_service_counts import run, runtime, spool

T0 = 1_764_480_000 * 10**9


class Clock:
    """A clock (or CPU meter) the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stored_spans(home: Path, rt: ServiceRuntime) -> list[Any]:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from otel_expansion.workers.sender import open_spool

    s = open_spool(str(home), rt.settings)
    try:
        _, rows = s.pending(limit=1_000_000)
    finally:
        s.close()
    return [Span.FromString(row.data) for row in rows]


def shift_of(trace_state: str) -> int:
    """The shift k of ``ot=th`` (threshold (2**k - 1) << (56 - k)); 0 without one."""
    from otel_expansion.sdk.pipeline import trace_state as state_of

    if not trace_state:
        return 0
    return next(k for k in range(1, 57) if state_of(k) == trace_state)


def within_budget(rt: ServiceRuntime) -> None:
    """The thread's pacing (its share of the wall time) allows a replay now: the span budget alone decides."""
    rt._budget, rt._budget_at = 1.0, time.monotonic()


# -- the rule ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.99, 0.5, 0.3, 0.16, 0.07, 0.01, 1e-4])
def test_two_adjacent_shifts_keep_the_planned_fraction(fraction: float) -> None:
    """A share ``a`` at 2**-(j-1) and the rest at 2**-j keeps ``fraction`` in expectation."""
    j, a = shifts_for(fraction)
    assert 1 <= j <= budget.MAX_THIN and 0 <= a < 1
    assert math.isclose(a / 2 ** (j - 1) + (1 - a) / 2**j, fraction, rel_tol=1e-9)
    assert shifts_for(1.0) == (0, 0.0) and shifts_for(0.0) == (budget.MAX_THIN, 0.0)


def test_commands_earn_span_cpu_and_a_quiet_program_a_share_of_the_wall_time() -> None:
    """A burst earns its commands' per-command credit, however long the program was idle before; a quiet
    program's slice earns the wall-time share (bounded) when that is more; credit is bounded."""
    clock = Clock()
    b = SpanBudget(per_command_s=4e-6, cost_s=25e-6, clock=clock)
    clock.now += 0.03  # a burst of 1,000 commands within 30 ms
    b.earn(1000)
    assert math.isclose(b.credit_s, 4e-3)  # 1,000 x 4 us (more than 10% of 30 ms)
    assert math.isclose(b.plan(1000), 0.16)  # 4 ms / (1,000 x 25 us)
    b.charge(160)
    assert abs(b.credit_s) < 1e-12
    clock.now += 5.0  # quiet: one command in 5 s
    b.earn(1)
    assert math.isclose(b.credit_s, budget.QUIET_CREDIT_S) and b.plan(1) == 1.0
    b.charge(1)
    clock.now += 3600.0  # an hour idle, then a burst: no more than the quiet share on top
    b.earn(2000)
    assert math.isclose(b.credit_s, budget.QUIET_CREDIT_S - 25e-6 + 2000 * 4e-6)  # 8 ms beats the 2 ms share
    b.earn(10**9)  # bounded
    assert b.credit_s <= budget.MAX_CREDIT_COMMANDS * 4e-6
    b.credit_s = -1e-3  # overdrawn (a slice kept more than its expectation): nothing kept until earned back
    assert b.plan(100) == 0.0


def test_the_cost_per_span_is_learned_from_large_slices_only() -> None:
    b = SpanBudget(per_command_s=4e-6, cost_s=25e-6)
    b.learn(budget.LEARN_FROM - 1, 1.0)  # a small slice: its fixed costs would dominate
    assert b.cost_s == 25e-6
    b.learn(1000, 0.035)  # 35 us a span measured: halfway there
    assert math.isclose(b.cost_s, 30e-6)


def test_thin_counts_add_up_raises_thresholds_and_takes_features_with_their_commands() -> None:
    commands = [{"name": "job", "exe": "svc", "start": T0 + i * 1000, "end": T0 + i * 1000 + 500, "exit": 0,
                 **({"th": 2} if i % 3 == 0 else {})} for i in range(1000)]
    features = [{"name": "f", "t": c["start"] + 10} for c in commands] + [{"name": "late", "t": T0 + 10**9}]
    exceptions = [{"type": "E", "t": c["start"] + 20} for c in commands[::7]]
    body = {"commands": commands, "features": features, "exceptions": exceptions, "sampled_out": 5,
            "metered": 1}
    before = repr(body)
    out, kept = thin(body, 0.16, random.Random(3).getrandbits)
    assert repr(body) == before  # the body shutdown may still hand over is not changed
    j, a = shifts_for(0.16)
    assert kept == len(out["commands"]) and out["sampled_out"] == 5 + 1000 - kept
    assert 100 < kept < 220  # ~160
    by_start = {c["start"]: c for c in commands}
    split = round(a * 1000)
    for cmd in out["commands"]:
        i = (cmd["start"] - T0) // 1000
        assert cmd["th"] == int(by_start[cmd["start"]].get("th") or 0) + (j - 1 if i < split else j)
    kept_starts = {c["start"] for c in out["commands"]}
    assert sorted(f["t"] - 10 for f in out["features"]) == sorted(kept_starts)  # theirs only, all of them
    assert {e["t"] - 20 for e in out["exceptions"]} == {e["t"] - 20 for e in exceptions} & kept_starts
    assert thin(body, 1.0, random.Random(3).getrandbits) == (body, 1000)  # within budget: untouched


# -- the runtime ---------------------------------------------------------------------------------------------

def test_the_threads_span_cpu_stays_within_what_commands_earned(tmp_path: Path) -> None:
    """With an injected CPU meter (a kept span costs 30 us, a slice 0.5 ms more), bursts of 2,000 commands:
    the meter's total stays within what the commands earned, plus the first slice's error (the prior
    estimate) and the binomial spread; the estimate learns the measured cost."""
    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    rt._bits = random.Random(11).getrandbits
    meter = Clock()
    rt._cpu_time = meter
    replay = rt._replay

    def metered(sl: Any) -> int:
        meter.now += 0.0005 + 30e-6 * sl.kept
        return replay(sl)

    rt._replay = metered  # type: ignore[method-assign]
    start, total = meter.now, 0
    for _ in range(8):
        run(rt, 2000)
        total += 2000
        within_budget(rt)
        rt.step()
    spent = meter.now - start
    earned = total * rt.span_budget.per_command_s
    assert spent <= earned * 1.25, (spent, earned)
    assert 28e-6 < rt.span_budget.cost_s < 32e-6  # 30 us plus the slice's fixed 0.5 ms over its spans
    _, n_spans, counters = spool(home, rt)
    assert n_spans + counters["spans.sampled_out"] == total and rt.thinned == counters["spans.sampled_out"]


def test_a_quiet_program_keeps_every_span(tmp_path: Path) -> None:
    """A few commands a second: each slice earns the wall-time share, and every span is kept."""
    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    clock = Clock()
    rt.span_budget = SpanBudget(clock=clock)
    for _ in range(20):
        clock.now += 1.0
        run(rt, 3)
        within_budget(rt)
        rt.step()
    _, n_spans, counters = spool(home, rt)
    assert n_spans == 60 and not counters.get("spans.sampled_out")


@pytest.mark.parametrize("engine_name", ["embedded", "clickhouse"])
def test_the_backend_reconstructs_the_command_count_from_a_thinned_burst(tmp_path: Path, engine_name: str) -> None:
    """The kept spans' adjusted counts (1/p from ``ot=th``), as each engine reads them for a session's
    commands, add up to the commands run within the estimator's statistical bound (5 standard deviations,
    the variance estimated from the kept spans: sum of 2**k (2**k - 1))."""
    from otel_expansion.backend.ingest import adjusted_count
    from otel_expansion.backend.query import Filter
    from otel_expansion.backend.report import report_from
    from tests.backend.conftest import traces_request
    from tests.backend.engines import engine_for

    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    rt._bits = random.Random(5).getrandbits
    n = 0
    for size in (1000, 2000, 2000):
        run(rt, size)
        n += size
        within_budget(rt)
        rt.step()
    spans = stored_spans(home, rt)
    _, n_spans, counters = spool(home, rt)
    assert n_spans + counters["spans.sampled_out"] == n and 0 < n_spans < n
    estimate = sum(adjusted_count(s.trace_state) for s in spans)
    variance = sum(2 ** shift_of(s.trace_state) * (2 ** shift_of(s.trace_state) - 1) for s in spans)
    assert abs(estimate - n) <= 5 * math.sqrt(variance), (estimate, n, variance)
    res = {"service.name": "svc", "service.version": "1.0", "otel_expansion.installation.id": "i1"}
    request = traces_request((res, spans))
    with engine_for(engine_name, "traces", request, tmp_path) as engine:
        sessions = report_from(engine, Filter(), now_ns=time.time_ns() + 10**9)["sessions"]
    assert sessions["count"] == 1 and sessions["max_commands"] == estimate


def test_items_within_kept_commands_match_the_per_item_rule() -> None:
    """Cutting a slice's features by two bisections per kept command keeps exactly the items the per-item
    rule keeps, in order: ordered or not, on the boundaries, and with overlapping or odd commands."""
    import random

    from otel_expansion.workers import budget

    rng = random.Random(3)
    for case in range(300):
        bounds = sorted(rng.sample(range(10_000), 2 * rng.randint(1, 20)))
        starts, ends = bounds[0::2], bounds[1::2]
        if case % 5 == 0 and len(starts) > 1:  # overlapping: not what one process records, still handled
            ends[0] = starts[1] + 3
        times = sorted(rng.randint(0, 10_000) for _ in range(rng.randint(0, 80)))
        times += [starts[0], ends[-1]]  # on the boundaries
        times.sort()
        if case % 7 == 0:
            rng.shuffle(times)
        items: list[dict[str, object]] = [{"name": f"f{i}", "t": t} for i, t in enumerate(times)]
        if case % 11 == 0 and items:
            items[0] = {"name": "untimed"}  # no time: the per-item rule reads 0
        expected = [item for item in items if budget._inside(int(item.get("t", 0)), starts, ends)]  # type: ignore[call-overload]
        assert budget._within(items, starts, ends) == expected
