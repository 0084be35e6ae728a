"""A long-running program's span budget: each recorded command earns a fixed amount of replay CPU, and a
slice whose spans would cost more than what its commands earned keeps a sample of them, decided before
its replay.

Why per command and not a share of the wall time: the budget the package is held to is CPU per command
against stock OpenTelemetry (<= 0.3x its span + counter + histogram). A share of the wall time keeps every
span of a short burst (the thread is never behind during it), and a kept span costs about a quarter of
stock's whole command to replay, encode and store, so a burst alone broke the budget. Here what a slice may
spend on spans is what its commands earned (plus what earlier ones left unspent, bounded): whatever the
command rate, the spans' CPU stays within ``SPAN_CPU_PER_COMMAND_S`` per command by construction.

Sampling after the fact keeps OpenTelemetry's terms: a command of the slice keeps its span with
probability ``2**-j`` (an independent draw per command), and a kept span's sampling threshold gains
``j`` (its ``th`` shift: the adjusted count a backend reads from ``ot=th`` doubles per step). Features and
handled exceptions recorded inside a command whose span is left out go with it (they were counted in the
usage aggregate already; they exist here only as its span's events). The commands left out are counted
in ``sampled_out``, so spans stored + sampled out + dropped == commands run stays exact.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from operator import itemgetter
from typing import Any

SPAN_CPU_PER_COMMAND_S = 3e-6
"""Replay CPU each recorded command earns for spans. Derived from the budget, not tuned to a row:
0.3 x stock (71-108 us per command in bench_service's runs on the development box: 21.3 us at the lowest)
minus the host thread's own added CPU (up to ~14 us per command at full, beside a CPU-bound neighbour)
minus the usage metrics' aggregation and commits and a first slice's one-time work (~4 us per command in a
burst of 1,000): about 3 us left for spans. A kept span costs ~20-25 us, so a burst keeps about 1 span in
8 (more where the host's own sample already left most out)."""

SPAN_COST_PRIOR_S = 25e-6
"""A kept span's replay CPU (replay, OTLP encoding, spool insert) assumed until measured: slightly above
what this box measured (20-23 us), so the first slice does not overspend."""

QUIET_SHARE = 0.1  # of the wall time between two slices, span CPU a quiet program's slice may have instead
QUIET_CREDIT_S = 0.002  # at most: ~80 spans per slice; steps come at least every commit interval (5 s by
# default), so a program of a few commands a second keeps every span, while a burst (thousands of commands
# within a second, after any idle time) gets no more than this on top of what its commands earn

LEARN_FROM = 256  # kept spans a slice needs for its CPU per span to update the estimate (fixed costs
# of a slice, a collection and a transaction, are amortised there; they make the estimate cautious)
MAX_CREDIT_COMMANDS = 4 * 2_048  # unspent credit carried over, in commands' worth (a bound: a long quiet
# stretch, or a host sample that left most spans out, does not fund an unbounded later burst)
MAX_THIN = 24  # the largest shift a slice's sample adds (1 span in 2**24: practically none)


class SpanBudget:
    """The credit of span CPU the export thread holds (seconds), and its estimate of a kept span's cost.

    ``earn`` per command recorded (kept, sampled out by the host or dropped: stock pays for each; a quiet
    program's slice earns a share of the wall time instead, when that is more), ``plan``
    the fraction of a slice's spans its credit affords, ``charge`` what the kept spans cost: the estimate
    per span (not the slice's whole CPU, so a quiet program's per-step fixed costs, the same at basic,
    cannot starve its spans), refined from measured slices by ``learn``."""

    __slots__ = ("_clock", "_earned_at", "cost_s", "credit_s", "per_command_s")

    def __init__(self, per_command_s: float = SPAN_CPU_PER_COMMAND_S, cost_s: float = SPAN_COST_PRIOR_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_command_s = per_command_s
        self.cost_s = cost_s
        self.credit_s = 0.0
        self._clock = clock
        self._earned_at = clock()

    def earn(self, commands: int) -> None:
        """A slice of ``commands`` earns their span CPU, or, when more, a share of the wall time since the
        last slice up to ``QUIET_CREDIT_S`` (a quiet program: a few commands over seconds)."""
        now = self._clock()
        quiet = min(QUIET_CREDIT_S, QUIET_SHARE * max(0.0, now - self._earned_at))
        self._earned_at = now
        cap = max(MAX_CREDIT_COMMANDS * self.per_command_s, QUIET_CREDIT_S)
        self.credit_s = min(self.credit_s + max(commands * self.per_command_s, quiet), cap)

    def plan(self, spans: int) -> float:
        """The fraction of ``spans`` (0 to 1) the credit affords at the estimated cost per span."""
        if spans <= 0:
            return 1.0
        return max(0.0, min(1.0, self.credit_s / (spans * self.cost_s)))

    def charge(self, kept: int) -> None:
        self.credit_s -= kept * self.cost_s

    def learn(self, kept: int, cpu_s: float) -> None:
        """A replayed slice's measured CPU: the estimate moves halfway to its CPU per kept span."""
        if kept >= LEARN_FROM and cpu_s > 0:
            self.cost_s = (self.cost_s + cpu_s / kept) / 2


def shifts_for(fraction: float) -> tuple[int, float]:
    """``(j, a)``: keeping a share ``a`` of the commands at ``2**-(j-1)`` and the rest at ``2**-j`` keeps
    ``fraction`` of them in expectation. ``j`` is 0 for a fraction of 1 (keep all)."""
    if fraction >= 1.0:
        return 0, 0.0
    if fraction <= 2.0**-MAX_THIN:
        return MAX_THIN, 0.0
    j = min(MAX_THIN, max(1, math.ceil(-math.log2(fraction))))
    return j, max(0.0, min(1.0, fraction * 2**j - 1.0))


def thin(body: dict[str, Any], fraction: float, bits: Callable[[int], int]) -> tuple[dict[str, Any], int]:
    """``body`` with a sample of its commands' spans: each command kept with probability ``2**-s`` (``s``
    from :func:`shifts_for`; ``bits(s)`` nonzero leaves it out), a kept one's ``th`` raised by ``s``;
    features and exceptions inside left-out commands go with them; the left-out commands are added to
    ``sampled_out``. Returns the new body (``body`` itself is not changed) and the spans kept."""
    commands = body.get("commands") or []
    j, a = shifts_for(fraction)
    if not j or not commands:
        return body, len(commands)
    split = round(a * len(commands))  # the first ``split`` commands at j - 1, the rest at j
    kept: list[Any] = []
    for i, cmd in enumerate(commands):
        s = j - 1 if i < split else j
        if s:
            if bits(s):
                continue
            cmd = dict(cmd)
            cmd["th"] = int(cmd.get("th") or 0) + s
        kept.append(cmd)
    out = dict(body)
    out["commands"] = kept
    left_out = len(commands) - len(kept)
    out["sampled_out"] = int(body.get("sampled_out") or 0) + left_out
    if left_out:
        starts = [int(c["start"]) for c in kept]
        ends = [int(c["end"]) for c in kept]
        for key in ("features", "exceptions"):
            items = body.get(key)
            if items:
                out[key] = _within(items, starts, ends)
    return out, len(kept)


def _within(items: list[Any], starts: list[int], ends: list[int]) -> list[Any]:
    """The items whose time falls within a kept command, in their order. The usual slice (items in time
    order, kept commands disjoint: one process runs one command at a time) is cut by two bisections per
    kept command, a few of them after a thin sample, not one per item; anything else item by item."""
    try:
        times = list(map(_TIME, items))  # the recorder's items: C-level loops for the common case
    except (KeyError, TypeError):
        times = []
    if not times or set(map(type, times)) != {int} or times != sorted(times) or not (
            all(s <= e for s, e in zip(starts, ends, strict=True))
            and all(e < s for e, s in zip(ends, starts[1:], strict=False))):
        return [item for item in items if _inside(int(item.get("t", 0)), starts, ends)]
    out: list[Any] = []
    for s, e in zip(starts, ends, strict=True):
        lo = bisect_left(times, s)
        hi = bisect_right(times, e, lo)
        if hi > lo:
            out.extend(items[lo:hi])
    return out


_TIME = itemgetter("t")


def _inside(t: int, starts: list[int], ends: list[int]) -> bool:
    """Whether ``t`` falls within a kept command (commands of one process do not overlap)."""
    i = bisect_right(starts, t) - 1
    return i >= 0 and t <= ends[i]
