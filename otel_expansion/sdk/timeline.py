"""Items (features, handled exceptions) indexed by time, so a command finds its own in O(log n).

Why: a replayed command's span carries the events that happened during it; scanning every item of the
body for every command made replay quadratic in the number of commands buffered. Pure Python.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any


class Timeline:
    """Indices of ``items`` by their ``t`` (nanoseconds); ``between`` keeps the items' own order."""

    __slots__ = ("_order", "_times")

    def __init__(self, items: Sequence[Mapping[str, Any]]) -> None:
        times = [int(item.get("t", 0)) for item in items]
        ordered = all(a <= b for a, b in pairwise(times))
        self._order: list[int] | None = None
        if not ordered:  # a clock step backwards: index a sorted copy (stable, so ties keep their order)
            self._order = sorted(range(len(times)), key=times.__getitem__)
            times = [times[i] for i in self._order]
        self._times = times

    def between(self, start: int, end: int) -> Sequence[int]:
        """Indices of the items with ``start <= t <= end``, in the order the items were given."""
        times = self._times
        lo = bisect_left(times, start)
        hi = bisect_right(times, end, lo)
        if lo >= hi:
            return ()
        if self._order is None:
            return range(lo, hi)
        return sorted(self._order[lo:hi])
