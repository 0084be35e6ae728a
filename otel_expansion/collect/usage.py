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

PENDING_MAX = 1 << 14  # successes (and feature uses) appended without the lock between two takes; past it,
# the locked aggregate (bounded by MAX_VALUES) takes them: a take normally comes every ~1,000 commands
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

    __slots__ = ("_activity", "_hours_memo", "_last_quarter", "_lock", "costs", "counts", "cpu", "durations",
                 "errors", "features", "handled", "handled_signatures", "held", "hours", "lost", "mem", "pending",
                 "pending_features", "signatures", "startups")

    def __init__(self, activity: bool = True) -> None:
        self._activity = activity
        self._lock = _thread.allocate_lock()
        self._hours_memo: dict[int, int] = {}
        self._last_quarter: tuple[int, int] = (-1, 0)  # (quarter hour, its hour of the week), last looked up
        # appended by the host without the lock, taken by count (never swapped: see take)
        self.pending: list[tuple[Any, ...]] = []  # successes: (name, start, end, cpu, mem, rec)
        self.pending_features: list[str] = []
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
        self.held = 0  # raw values held (under the lock; the lock-free lists hold at most PENDING_MAX each)
        self.lost = 0  # raw values past MAX_VALUES (counted; their commands are still counted)

    # -- host thread -----------------------------------------------------------------------------------
    def command(self, cmd: CommandEntry) -> None:
        """One finished command. A success (the usual command) is one list append of a tuple, without the
        lock: :meth:`take` takes the list's items by count (an append racing with it lands after them and
        stays for the next take) and folds them into the snapshot on the export thread. Anything else (a
        failure, an unknown outcome, a first command's startup time, or more than ``PENDING_MAX`` successes
        waiting) is a handful of dict and array operations under an uncontended lock."""
        code = cmd.get("exit")
        pending = self.pending
        if code == 0 and type(code) is int and len(pending) < PENDING_MAX and "startup" not in cmd:
            pending.append((cmd["name"], cmd["start"], cmd["end"], cmd.get("cpu"), cmd.get("mem"), cmd.get("rec")))
            return
        name = cmd["name"]
        if code is None:  # outcome unknown (an exit nobody could observe): neither success nor a failure
            error = cmd.get("error")
            series: tuple[str, bool | None, str | None] = (name, None, error)
        elif code:
            error = cmd.get("error")
            series = (name, True, error)
        else:
            error = None
            series = (name, False, None)
        start = cmd["start"]
        duration = max(0, cmd["end"] - start) / 1e9
        c = cmd.get("cpu")
        m = cmd.get("mem")
        rec = cmd.get("rec")
        with self._lock:
            counts = self.counts
            counts[series] = counts.get(series, 0) + 1
            if code:
                self._failed(name, error or str(code), cmd.get("sig"))
            if self._activity:
                quarter = start // _QUARTER_HOUR_NS
                last = self._last_quarter
                if last[0] == quarter:  # the same quarter hour as the previous command (nearly always)
                    hour = last[1]
                else:
                    known = self._hours_memo.get(quarter)
                    if known is None:
                        if len(self._hours_memo) > 4096:
                            self._hours_memo.clear()
                        known = self._hours_memo[quarter] = hour_of_week(start)
                    hour = known
                    self._last_quarter = (quarter, hour)
                hours = self.hours
                hours[hour] = hours.get(hour, 0) + 1
            held = self.held
            if held >= MAX_VALUES:
                self.lost += 1
                return
            values = self.durations.get(series)
            if values is None:
                values = self.durations[series] = array("d")
            values.append(duration)
            held += 1
            if c is not None and 0 <= c < _INF:
                values = self.cpu.get(name)
                if values is None:
                    values = self.cpu[name] = array("d")
                values.append(c)
                held += 1
            if m and m >= 0:
                values = self.mem.get(name)
                if values is None:
                    values = self.mem[name] = array("d")
                values.append(m)
                held += 1
            up = cmd.get("startup")
            if up is not None and 0 <= up < _INF:
                _add(self.startups, name, up)
                held += 1
            if rec is not None and rec >= 0:
                self.costs.append(rec / 1e9)
                held += 1
            self.held = held

    def _failed(self, name: str, error: str, sig: str | None) -> None:
        """A failed command's error series (and its signature's), lock held."""
        ekey = (name, error)
        self.errors[ekey] = self.errors.get(ekey, 0) + 1
        if sig is not None:
            skey = (name, error, sig)
            self.signatures[skey] = self.signatures.get(skey, 0) + 1

    def feature(self, name: str) -> None:
        """One use of a feature: appended without the lock (counted at :meth:`take`), as a success is."""
        pending = self.pending_features
        if len(pending) < PENDING_MAX:
            pending.append(name)
            return
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
            # the lock-free appends, taken by count (the host only appends: what lands meanwhile stays)
            pending, uses = self.pending, self.pending_features
            n, m = len(pending), len(uses)
            ran, used = pending[:n], uses[:m]
            del pending[:n], uses[:m]
            if not (self.counts or self.features or self.handled or self.lost or ran or used):
                return None
            counts, durations, errors = self.counts, self.durations, self.errors
            signatures, handled_signatures = self.signatures, self.handled_signatures
            cpu, mem, startups, costs = self.cpu, self.mem, self.startups, self.costs
            hours, features, handled, lost = self.hours, self.features, self.handled, self.lost
            self._reset()
        if ran:
            self._fold(ran, counts, durations, cpu, mem, costs, hours)
        if used:
            from collections import Counter

            for fname, c in Counter(used).items():
                features[fname] = features.get(fname, 0) + c
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

    def _fold(self, ran: list[tuple[Any, ...]], counts: dict[tuple[str, bool | None, str | None], int],
              durations: dict[tuple[str, bool | None, str | None], array[float]], cpu: dict[str, array[float]],
              mem: dict[str, array[float]], costs: array[float], hours: dict[int, int]) -> None:
        """Successes appended by the host (name, start, end, cpu, mem, rec) into a taken aggregate: the
        same values :meth:`command`'s locked path adds, per command name, in a few list comprehensions."""
        names = {item[0] for item in ran}
        groups: dict[str, list[tuple[Any, ...]]]
        if len(names) == 1:
            groups = {ran[0][0]: ran}
        else:
            groups = {name: [] for name in names}
            for item in ran:
                groups[item[0]].append(item)
        for name, items in groups.items():
            series = (name, False, None)
            counts[series] = counts.get(series, 0) + len(items)
            # max(0, end - start) / 1e9, as the locked path computes it
            values = array("d", [(e - s) / 1e9 if e > s else 0.0 for _, s, e, _, _, _ in items])
            if series in durations:
                durations[series].extend(values)
            else:
                durations[series] = values
            for taken, of in ((cpu, [c for _, _, _, c, _, _ in items if c is not None and 0 <= c < _INF]),
                              (mem, [m for _, _, _, _, m, _ in items if m and m >= 0])):
                if of:
                    if name in taken:
                        taken[name].extend(array("d", of))
                    else:
                        taken[name] = array("d", of)
            costs.extend(array("d", [r / 1e9 for _, _, _, _, _, r in items if r is not None and r >= 0]))
            if self._activity:
                starts = [s for _, s, _, _, _, _ in items]
                first, last = min(starts) // _QUARTER_HOUR_NS, max(starts) // _QUARTER_HOUR_NS
                if first == last:  # all in one quarter hour (one hour of the week): the usual drain
                    quarters = {first: len(starts)}
                else:
                    quarters = {}
                    for q in (s // _QUARTER_HOUR_NS for s in starts):
                        quarters[q] = quarters.get(q, 0) + 1
                for quarter, c in quarters.items():
                    hour = hour_of_week(quarter * _QUARTER_HOUR_NS)
                    hours[hour] = hours.get(hour, 0) + c

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
