"""Usage metrics of a long-running program, aggregated in its own process as commands end.

Why: a service's commands used to become metrics only when the export thread replayed them, so every
command the thread could not keep up with (buffer overflow, a full journal) was missing from the counts a
product owner reads. Here each finished command is an O(1) add on the host thread (a count per series, a
value appended per histogram series), whatever happens to its span later. The export thread takes the
aggregate with each drain and the pipeline records it through the SDK instruments, so the metric Views
decide the aggregation (explicit or exponential buckets): histogram values are handed over raw, in batch.

Memory: counts are per series (bounded by the names' vocabularies); raw histogram values are held only
between two drains, at most ``MAX_VALUES`` of them (8 bytes each). Values past that bound are counted
(``dropped.usage_values``), never silently lost, and the counts stay exact.
"""

from __future__ import annotations

import _thread
import time
from array import array

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from otel_expansion.journal.record import CommandEntry

MAX_VALUES = 1 << 20  # raw histogram values held between two drains (~8 MiB): far past any drain interval
_QUARTER_HOUR_NS = 900 * 10**9  # every UTC offset and DST switch is a multiple of 15 minutes
_INF = float("inf")


def hour_of_week(ns: int) -> int:
    t = time.localtime(ns / 1e9)
    return t.tm_wday * 24 + t.tm_hour


class Usage:
    """The aggregate of commands, features and handled exceptions since the last :meth:`take`.

    ``take`` returns a plain snapshot (lists, ints, floats: marshal-able, so it can travel in a journal
    record when the thread hands its slice over); :meth:`merge` adds one back.
    """

    __slots__ = ("_activity", "_hours_memo", "_lock", "costs", "counts", "cpu", "durations", "errors",
                 "features", "handled", "handled_signatures", "held", "hours", "lost", "mem", "signatures",
                 "startups")

    def __init__(self, activity: bool = True) -> None:
        self._activity = activity
        self._lock = _thread.allocate_lock()
        self._hours_memo: dict[int, int] = {}
        self._reset()

    def _reset(self) -> None:
        self.counts: dict[tuple[str, bool | None, str | None], int] = {}  # invocation series -> commands
        self.durations: dict[tuple[str, bool | None, str | None], array[float]] = {}
        self.errors: dict[tuple[str, str], int] = {}  # (command, error type) -> failed commands, all of them
        # (command, error type, cli.error.signature) -> those of them with a signature: part of the key, so
        # each signature's count is exact; the totals stay in ``errors`` for a release that reads only those
        self.signatures: dict[tuple[str, str, str], int] = {}
        self.cpu: dict[str, array[float]] = {}
        self.mem: dict[str, array[float]] = {}
        self.startups: dict[str, array[float]] = {}
        self.costs: array[float] = array("d")
        self.hours: dict[int, int] = {}
        self.features: dict[str, int] = {}
        self.handled: dict[str, int] = {}
        self.handled_signatures: dict[tuple[str, str], int] = {}  # (error type, signature) -> of ``handled``
        self.held = 0  # raw values held
        self.lost = 0  # raw values past MAX_VALUES (counted; their commands are still counted)

    # -- host thread -----------------------------------------------------------------------------------
    def command(self, cmd: CommandEntry) -> None:
        """One finished command: a handful of dict and array operations under an uncontended lock."""
        name = cmd["name"]
        code = cmd.get("exit")
        if code is None:  # outcome unknown (an exit nobody could observe): neither success nor a failure
            error = cmd.get("error")
            series: tuple[str, bool | None, str | None] = (name, None, error)
        else:
            error = cmd.get("error") if code else None
            series = (name, code != 0, error)
        with self._lock:
            counts = self.counts
            counts[series] = counts.get(series, 0) + 1
            if code:
                ekey = (name, error or str(code))
                self.errors[ekey] = self.errors.get(ekey, 0) + 1
                sig = cmd.get("sig")
                if sig is not None:
                    skey = (name, error or str(code), sig)
                    self.signatures[skey] = self.signatures.get(skey, 0) + 1
            if self._activity:
                quarter = cmd["start"] // _QUARTER_HOUR_NS
                hour = self._hours_memo.get(quarter)
                if hour is None:
                    if len(self._hours_memo) > 4096:
                        self._hours_memo.clear()
                    hour = self._hours_memo[quarter] = hour_of_week(cmd["start"])
                self.hours[hour] = self.hours.get(hour, 0) + 1
            if self.held >= MAX_VALUES:
                self.lost += 1
                return
            values = self.durations.get(series)
            if values is None:
                values = self.durations[series] = array("d")
            values.append(max(0, cmd["end"] - cmd["start"]) / 1e9)
            held = 1
            c = cmd.get("cpu")
            if c is not None and 0 <= c < _INF:
                _add(self.cpu, name, c)
                held += 1
            m = cmd.get("mem")
            if m and m >= 0:
                _add(self.mem, name, float(m))
                held += 1
            up = cmd.get("startup")
            if up is not None and 0 <= up < _INF:
                _add(self.startups, name, up)
                held += 1
            rec = cmd.get("rec")
            if rec is not None and rec >= 0:
                self.costs.append(rec / 1e9)
                held += 1
            self.held += held

    def feature(self, name: str) -> None:
        with self._lock:
            self.features[name] = self.features.get(name, 0) + 1

    def exception(self, etype: str, sig: str | None = None) -> None:
        with self._lock:
            self.handled[etype] = self.handled.get(etype, 0) + 1
            if sig is not None:
                self.handled_signatures[(etype, sig)] = self.handled_signatures.get((etype, sig), 0) + 1

    # -- export thread ---------------------------------------------------------------------------------
    def take(self) -> dict[str, Any] | None:
        """Everything aggregated since the last take, as a plain snapshot (None when nothing was)."""
        with self._lock:
            if not (self.counts or self.features or self.handled or self.lost):
                return None
            counts, durations, errors = self.counts, self.durations, self.errors
            signatures, handled_signatures = self.signatures, self.handled_signatures
            cpu, mem, startups, costs = self.cpu, self.mem, self.startups, self.costs
            hours, features, handled, lost = self.hours, self.features, self.handled, self.lost
            self._reset()
        snap: dict[str, Any] = {}
        if counts:
            snap["runs"] = [[n, f, e, c, durations.get((n, f, e), array("d")).tolist()]
                            for (n, f, e), c in counts.items()]
        if errors:
            snap["errors"] = [[n, e, c] for (n, e), c in errors.items()]
        if signatures:  # of the counts above, those with a signature (see collect.usage.error_series)
            snap["error_signatures"] = [[n, e, g, c] for (n, e, g), c in signatures.items()]
        for key, series in (("cpu", cpu), ("mem", mem), ("startup", startups)):
            if series:
                snap[key] = [[n, v.tolist()] for n, v in series.items()]
        if costs:
            snap["costs"] = costs.tolist()
        if hours:
            snap["hours"] = [[h, c] for h, c in hours.items()]
        if features:
            snap["features"] = [[n, c] for n, c in features.items()]
        if handled:
            snap["handled"] = [[t, c] for t, c in handled.items()]
        if handled_signatures:
            snap["handled_signatures"] = [[t, g, c] for (t, g), c in handled_signatures.items()]
        if lost:
            snap["lost"] = lost
        return snap

    def merge(self, snap: dict[str, Any]) -> None:
        """Add a snapshot back (what could not be stored nor journaled waits for the next drain)."""
        with self._lock:
            for n, f, e, c, values in snap.get("runs") or ():
                series = (n, bool(f), e)
                self.counts[series] = self.counts.get(series, 0) + int(c)
                self.durations.setdefault(series, array("d")).extend(values)
                self.held += len(values)
            for n, e, c in snap.get("errors") or ():
                self.errors[(n, e)] = self.errors.get((n, e), 0) + int(c)
            for n, e, g, c in snap.get("error_signatures") or ():
                self.signatures[(n, e, g)] = self.signatures.get((n, e, g), 0) + int(c)
            for key, series_of in (("cpu", self.cpu), ("mem", self.mem), ("startup", self.startups)):
                for n, values in snap.get(key) or ():
                    series_of.setdefault(n, array("d")).extend(values)
                    self.held += len(values)
            self.costs.extend(snap.get("costs") or ())
            for h, c in snap.get("hours") or ():
                self.hours[h] = self.hours.get(h, 0) + int(c)
            for n, c in snap.get("features") or ():
                self.features[n] = self.features.get(n, 0) + int(c)
            for t, c in snap.get("handled") or ():
                self.handled[t] = self.handled.get(t, 0) + int(c)
            for t, g, c in snap.get("handled_signatures") or ():
                self.handled_signatures[(t, g)] = self.handled_signatures.get((t, g), 0) + int(c)
            self.lost += int(snap.get("lost") or 0)


def _add(series: dict[str, array[float]], name: str, value: float) -> None:
    values = series.get(name)
    if values is None:
        values = series[name] = array("d")
    values.append(value)


def error_series(snap: Mapping[str, Any]) -> list[tuple[str, str, str | None, int]]:
    """(command, error type, signature or None, failed commands) of a snapshot, each failure once: the
    signed counts of ``error_signatures``, and of each total in ``errors`` what they leave (a release
    before signatures reads ``errors`` alone, every count still exact)."""
    out: list[tuple[str, str, str | None, int]] = []
    signed: dict[tuple[str, str], int] = {}
    for n, e, g, c in snap.get("error_signatures") or ():
        out.append((n, e, g, int(c)))
        signed[(n, e)] = signed.get((n, e), 0) + int(c)
    for n, e, c in snap.get("errors") or ():
        rest = int(c) - signed.get((n, e), 0)
        if rest > 0:
            out.append((n, e, None, rest))
    return out


def handled_series(snap: Mapping[str, Any]) -> list[tuple[str, str | None, int]]:
    """(error type, signature or None, handled exceptions) of a snapshot; see :func:`error_series`."""
    out: list[tuple[str, str | None, int]] = []
    signed: dict[str, int] = {}
    for t, g, c in snap.get("handled_signatures") or ():
        out.append((t, g, int(c)))
        signed[t] = signed.get(t, 0) + int(c)
    for t, c in snap.get("handled") or ():
        rest = int(c) - signed.get(t, 0)
        if rest > 0:
            out.append((t, None, rest))
    return out


def commands_in(snap: dict[str, Any] | None) -> int:
    """Commands a snapshot counts."""
    return sum(int(r[3]) for r in (snap or {}).get("runs") or ())


def split_usage(snap: dict[str, Any], max_values: int = 1 << 16) -> list[dict[str, Any]]:
    """A snapshot cut into snapshots of at most ``max_values`` raw values each (a journal record holds at
    most 1 MiB: ~9 bytes a value); counts go with the first, later parts carry values only."""
    total = sum(len(r[4]) for r in snap.get("runs") or ()) + len(snap.get("costs") or ())
    total += sum(len(v) for key in ("cpu", "mem", "startup") for _, v in snap.get(key) or ())
    if total <= max_values:
        return [snap]
    first = {k: v for k, v in snap.items() if k not in ("runs", "cpu", "mem", "startup", "costs")}
    parts: list[dict[str, Any]] = [first]
    room = [max_values]

    def place(key: str, head: list[Any], values: list[float]) -> None:
        while values:
            if room[0] <= 0:
                parts.append({})
                room[0] = max_values
            take, values = values[:room[0]], values[room[0]:]
            parts[-1].setdefault(key, []).append([*head, take])
            room[0] -= len(take)

    for n, f, e, c, values in snap.get("runs") or ():
        first.setdefault("runs", []).append([n, f, e, c, []])  # the count, once
        place("runs", [n, f, e, 0], list(values))
    for key in ("cpu", "mem", "startup"):
        for n, values in snap.get(key) or ():
            place(key, [n], list(values))
    costs = list(snap.get("costs") or ())
    while costs:
        if room[0] <= 0:
            parts.append({})
            room[0] = max_values
        take, costs = costs[:room[0]], costs[room[0]:]
        parts[-1].setdefault("costs", []).extend(take)
        room[0] -= len(take)
    return parts
