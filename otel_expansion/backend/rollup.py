"""Rollups kept at ingest: what one request adds to the per-day aggregates the report reads.

Pure functions over decoded rows, no SQL. The keys are the report's dimensions, every value a string
('' when absent), spelled as the collector's ClickHouse exporter spells attribute values (``AsString``:
``true``/``false``, integers in decimal), so both engines group by identical values:
- metric rollup: (metric, UTC day, service, version, command, outcome, error type, label) -> value
  (sum of deltas; a gauge keeps its latest value), errors (the part of value whose outcome is
  ``error``), count, sum, min, max of histograms. Invocations and durations, by far the biggest
  series, are kept without outcome and error type (``errors`` carries the outcome; error types come
  from ``cli.command.errors``), which divides their groups by the number of outcomes;
- bucket rollup: (metric, day, service, version, command, label, bounds) -> counts per bucket, one
  row per bucket layout (``BUCKET_SLOTS`` columns), so percentiles merge few rows;
- exponential rollup: (metric, day, service, version, command, label) -> base-2 exponential buckets
  (scale, zero count, offsets and counts; see otel_expansion.otlp.exponential), merged at the coarser
  scale, so durations keep their bounded relative error however many runs and days are merged;
- environment rollup: (day, service, version, key, value) -> invocations;
- error rollup: (metric, day, service, version, command, error type, signature) -> count, for the error
  counters (``ERROR_METRICS``) by their privacy-safe stack signature (``cli.error.signature``, '' when the
  sender had none), so errors group by where they were raised, per version; also kept for all time
  (grain 0, day 0: the store adds it at flush), which an unbounded report reads instead of every week.
Each is kept twice: per day (grain 1) and per Monday-based week (grain 7). A report over a range reads
the weeks it fully covers from the weekly tier and only the days at its edges from the daily one, so an
all-time report reads about a seventh of the rows. A day joins its week's rows once it is over (the store
adds its daily rows then; until then its points write the daily tier only and readers read it there).
``label`` is the one extra attribute a metric is grouped by (feature name, drop reason, hour of week...).
"""

from __future__ import annotations

import json
import marshal
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from otel_expansion.backend.ingest import PointRow, ResourceData
from otel_expansion.backend.limits import Limits, clip_value
from otel_expansion.otlp import exponential
from otel_expansion.sdk import signals

__all__ = [
    "ALL",
    "BUCKET_SLOTS",
    "DAY_NS",
    "ENVIRONMENT_KEYS",
    "ERROR_METRICS",
    "INVOCATIONS",
    "LABELS",
    "ROLLUP_SCALE",
    "SESSION_BOUNDS",
    "SESSION_SCALE",
    "SIGNATURE",
    "WITHOUT_OUTCOME",
    "Rolled",
    "Rollup",
    "as_string",
    "bucket_of",
    "decode_exponential",
    "encode_exponential",
    "expand",
    "exponential_of",
    "fold",
    "layout",
    "roll",
    "roll_ahead",
    "session_bucket",
    "week_of",
    "weekly",
]

DAY_NS = 86_400 * 10**9
INVOCATIONS = signals.INVOCATIONS
DURATION = signals.DURATION
WITHOUT_OUTCOME = frozenset({INVOCATIONS, DURATION})
"""Metrics rolled up without outcome and error type (see the module docstring)."""
ERROR_METRICS = (signals.ERRORS, signals.HANDLED)
"""Counters also rolled up by stack signature (the error rollup): failed commands and handled exceptions."""
SIGNATURE = "cli.error.signature"
"""Point attribute holding an error's stack signature: ``module:function`` frames, outermost first."""
BUCKET_SLOTS = 32
"""Buckets kept per histogram layout; a layout with more bounds folds its tail into the last bucket."""
ENVIRONMENT_KEYS = ("os.type", "host.arch", "process.runtime.version", "ci.detected", "container.detected")
LABELS = {
    signals.FEATURE_USAGE: "feature.name",
    signals.ACTIVITY: "activity.hour_of_week",
    signals.HANDLED: "exception.handled",
    signals.SPOOL_DROPPED: "reason",
    signals.EXPORT_FAILURES: "reason",
}
"""The attribute each metric is grouped by besides command, outcome and error type."""

SESSION_BOUNDS = {
    "length_s": (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0),
    "commands": (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0),
}
"""Bucket layouts of the session rollup before schema 3 (kept for reading old benchmarks' data only)."""
ROLLUP_SCALE = 3
"""Finest scale the exponential rollup keeps: every quantile within 4.33% (exponential.relative_error(3)),
and a row holds 8 buckets per doubling at most, so a report merges few buckets per row."""
ALL = "*"
"""Service, version or command of the exponential rollup's pre-merged rows: (app, version, ALL) holds all
commands of an app version, (ALL, ALL, command) a command over every app, so the report's overall, per
version and per command (all apps) percentiles read one row per app version or per command and period."""
SESSION_SCALE = 3
"""Scale of the session-length rollup's base-2 buckets; the report then reads exact values inside one."""


def session_bucket(kind: str, value: float) -> tuple[float, float]:
    """The session rollup's (lo, hi] for a session's value: the exact value for commands (lo == hi), the
    base-2 exponential bucket at SESSION_SCALE for lengths (0 has its own (0, 0] bucket)."""
    if kind != "length_s" or value <= 0:
        return value, value
    return exponential.bucket_bounds(exponential.index_of(value, SESSION_SCALE), SESSION_SCALE)


def as_string(value: Any) -> str:
    """An attribute value as the ClickHouse exporter stores it in its String maps."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def bucket_of(value: float, bounds: tuple[float, ...]) -> tuple[float, float]:
    """The (lower, upper] explicit-bounds bucket holding ``value`` (OTel: upper bound inclusive)."""
    lower = -math.inf
    for bound in bounds:
        if value <= bound:
            return lower, bound
        lower = bound
    return lower, math.inf


MetricKey = tuple[str, int, str, str, str, str, str, str]
BucketKey = tuple[str, int, str, str, str, str, str]
ExpKey = tuple[str, int, str, str, str, str]
EnvKey = tuple[int, str, str, str, str]
ErrorKey = tuple[str, int, str, str, str, str, str]


@dataclass(slots=True)
class Rollup:
    """Aggregates of one request, merged in memory before one upsert per key."""

    metrics: dict[MetricKey, list[Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    buckets: dict[BucketKey, list[int]] = field(default_factory=dict)
    exp: dict[ExpKey, exponential.Buckets] = field(default_factory=dict)
    env: dict[EnvKey, float] = field(default_factory=dict)
    active: set[tuple[int, str, str, str]] = field(default_factory=set)
    errors: dict[ErrorKey, float] = field(default_factory=dict)

    def add_error(self, key: ErrorKey, value: float) -> None:
        """An error counter's delta by (metric, day, service, version, command, error type, signature)."""
        self.errors[key] = self.errors.get(key, 0.0) + value

    def add_number(self, key: MetricKey, kind: str, value: float, end_ns: int, errors: float = 0.0) -> None:
        self.kinds[key[0]] = kind
        acc = self.metrics.get(key)
        if acc is None:
            self.metrics[key] = [value, errors, 0, 0.0, None, None, end_ns]
        elif kind == "gauge":
            if end_ns >= acc[6]:
                acc[0], acc[6] = value, end_ns
        else:
            acc[0] += value
            acc[1] += errors
            acc[6] = max(acc[6], end_ns)

    def add_histogram(
        self,
        key: MetricKey,
        count: int,
        total: float | None,
        minimum: float | None,
        maximum: float | None,
        bounds: list[float],
        counts: list[int],
        end_ns: int,
        bounds_layout: str | None = None,
    ) -> None:
        self.kinds[key[0]] = "histogram"
        acc = self.metrics.get(key)
        if acc is None:
            acc = self.metrics[key] = [0.0, 0.0, 0, 0.0, None, None, end_ns]
        acc[2] += count
        acc[3] += total or 0.0
        if minimum is not None:
            acc[4] = minimum if acc[4] is None else min(acc[4], minimum)
        if maximum is not None:
            acc[5] = maximum if acc[5] is None else max(acc[5], maximum)
        acc[6] = max(acc[6], end_ns)
        if not counts:
            return
        if len(counts) > BUCKET_SLOTS or bounds_layout is None:
            bounds, counts = fold(bounds, counts)
            bounds_layout = layout(bounds)
        else:
            counts = counts[: len(bounds) + 1]
        metric, day, service, version, command, _outcome, _error, label = key
        bkey = (metric, day, service, version, command, label, bounds_layout)
        slots = self.buckets.get(bkey)
        if slots is None:
            slots = self.buckets[bkey] = [0] * BUCKET_SLOTS
        for i, n in enumerate(counts):
            slots[i] += n

    def add_exponential(
        self,
        key: MetricKey,
        count: int,
        total: float | None,
        minimum: float | None,
        maximum: float | None,
        buckets: exponential.Buckets,
        end_ns: int,
        parts: dict[ExpKey, list[exponential.Buckets]] | None = None,
    ) -> None:
        """A base-2 exponential point: its stats like any histogram's, its buckets into the exponential rollup
        (or, given ``parts``, onto each key's list there, for :meth:`settle` to merge at once)."""
        self.add_histogram(key, count, total, minimum, maximum, [], [], end_ns)
        metric, day, service, version, command, _outcome, _error, label = key
        buckets = exponential.downscale(buckets, ROLLUP_SCALE)
        exp = self.exp
        # the exact row, all commands of this app version, and this command over all apps (see ALL)
        for ekey in ((metric, day, service, version, command, label), (metric, day, service, version, ALL, label),
                     (metric, day, ALL, ALL, command, label)):
            if parts is not None:
                have_parts = parts.get(ekey)
                if have_parts is None:
                    parts[ekey] = [buckets]
                else:
                    have_parts.append(buckets)
                continue
            have = exp.get(ekey)
            exp[ekey] = buckets if have is None else exponential.merge(have, buckets)

    def settle(self, parts: dict[ExpKey, list[exponential.Buckets]]) -> None:
        """Merge the buckets :meth:`add_exponential` set aside, once per key (exponential.merge_all: the same
        buckets as merging each in turn, one pass instead of a merged copy per point)."""
        exp = self.exp
        for ekey, bs in parts.items():
            have = exp.get(ekey)
            exp[ekey] = exponential.merge_all(bs if have is None else [have, *bs])

    @classmethod
    def combined(cls, rollups: Sequence[Rollup]) -> Rollup:
        """The aggregates of several requests (what :meth:`absorb` of each in turn gives), their exponential
        rows merged once per key (exponential.merge_all) instead of once per request and key: the group
        writer's merges were a third of its Python. Empty rollups (a traces request's) are left out first: a group
        of one metrics request and some traces requests, the commonest at 8 senders, then passes that request's
        rollup through as it is instead of copying it."""
        rollups = [r for r in rollups if r.metrics or r.buckets or r.exp or r.env or r.active or r.errors]
        if len(rollups) == 1:
            return rollups[0]
        out = cls()
        parts: dict[ExpKey, list[exponential.Buckets]] = {}
        for rollup in rollups:
            out.absorb(rollup, exp=False)
            for xkey, b in rollup.exp.items():
                have = parts.get(xkey)
                if have is None:
                    parts[xkey] = [b]
                else:
                    have.append(b)
        out.exp = {xkey: exponential.merge_all(bs) for xkey, bs in parts.items()}
        return out

    def absorb(self, other: Rollup, exp: bool = True) -> None:
        """Add another request's aggregates (same keys, same grain): what two upserts in a row would store
        (``exp=False``: all but the exponential rows, which :meth:`combined` merges itself)."""
        self.kinds.update(other.kinds)
        _merge_metrics(self.metrics, other.metrics.items(), self.kinds)
        buckets = self.buckets
        for bkey, slots in other.buckets.items():
            have = buckets.get(bkey)
            if have is None:
                buckets[bkey] = list(slots)
            else:
                for i, n in enumerate(slots):
                    have[i] += n
        exp_rows = self.exp
        for xkey, b in other.exp.items() if exp else ():
            have_exp = exp_rows.get(xkey)
            exp_rows[xkey] = b if have_exp is None else exponential.merge(have_exp, b)
        env = self.env
        for ekey, runs in other.env.items():
            env[ekey] = env.get(ekey, 0.0) + runs
        self.active |= other.active
        errors = self.errors
        for rkey, seen in other.errors.items():
            errors[rkey] = errors.get(rkey, 0.0) + seen


def _merge_metrics(into: dict[Any, list[Any]], items: Any, kinds: dict[str, str]) -> None:
    """Metric accumulators added key by key, as the upsert does: a gauge keeps its latest value."""
    for key, acc in items:
        have = into.get(key)
        if have is None:
            into[key] = list(acc)
        elif kinds.get(key[0]) == "gauge":
            if acc[6] >= have[6]:
                have[0], have[6] = acc[0], acc[6]
        else:
            have[0] += acc[0]
            have[1] += acc[1]
            have[2] += acc[2]
            have[3] += acc[3]
            have[4] = acc[4] if have[4] is None else (have[4] if acc[4] is None else min(have[4], acc[4]))
            have[5] = acc[5] if have[5] is None else (have[5] if acc[5] is None else max(have[5], acc[5]))
            have[6] = max(have[6], acc[6])


Admit = Callable[[str, str, str, "Counter[str]"], str]
"""``admit(service, dimension, value, counts)``: the value a dimension stores (the value, or ``(other)``
past the cardinality limit, counted); the store's reads and grows its table of known values."""
Delta = Callable[[str, PointRow], "PointRow | None"]
"""``delta(series prefix, cumulative point)``: the point as a delta since its series' last one (None: skip)."""


def roll(
    rollup: Rollup,
    resource: ResourceData,
    service: str,
    version: str,
    counts: Counter[str],
    limits: Limits,
    admit: Admit,
    delta: Delta,
) -> None:
    """Add one resource entry's points to ``rollup``, under the dimension values ``admit`` gives.

    Pure apart from ``admit`` and ``delta`` (the store's database reads): a decoding worker runs it with an
    ``admit`` that keeps every value and records it, the writer checks those values are admitted as they are,
    and only otherwise rolls the entry again itself (see Store).
    """
    attrs = resource.attributes
    installation = as_string(attrs.get("otel_expansion.installation.id"))
    env = [
        (key, admit(service, key, clip_value(as_string(attrs.get(key)), limits, counts, key), counts))
        for key in ENVIRONMENT_KEYS
    ]
    cache: dict[Any, Any] = {}
    parts: dict[ExpKey, list[exponential.Buckets]] = {}
    layouts: dict[str | None, tuple[list[float], str]] = {}
    per_day: dict[int, float] = {}
    series_prefix = json.dumps(attrs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    points = resource.points
    if any(p.temporality == "cumulative" for p in points):  # differencing needs time order
        points = sorted(points, key=lambda p: p.end_ns)
    for row in points:
        if row.kind not in ("sum", "gauge", "histogram", "exponential_histogram"):
            continue
        if row.temporality == "cumulative" and row.kind != "gauge":
            changed = delta(series_prefix, row)
            if changed is None:
                continue
            row = changed
        day = row.end_ns // DAY_NS
        command, outcome, error_type, label = _dims(service, row, cache, counts, limits, admit)
        failed = outcome == "error"
        if row.name in ERROR_METRICS and row.kind == "sum":
            signature = _signature(service, row, cache, counts, limits, admit)
            rollup.add_error((row.name, day, service, version, command, error_type, signature), row.value or 0.0)
        if row.name in WITHOUT_OUTCOME:
            outcome = error_type = ""
        key = (row.name, day, service, version, command, outcome, error_type, label)
        if row.kind == "exponential_histogram":
            decoded = resource.exp.get((row.bounds or "", row.bucket_counts or ""))
            rollup.add_exponential(key, row.samples or 0, row.sum, row.min, row.max,
                                   decoded or exponential_of(row.bounds, row.bucket_counts), row.end_ns, parts)
            continue
        if row.kind == "histogram":
            parsed = layouts.get(row.bounds)
            if parsed is None:
                bounds = json.loads(row.bounds) if row.bounds else []
                parsed = layouts[row.bounds] = (bounds, layout(bounds))
            rollup.add_histogram(
                key,
                row.samples or 0,
                row.sum,
                row.min,
                row.max,
                parsed[0],
                json.loads(row.bucket_counts) if row.bucket_counts else [],
                row.end_ns,
                parsed[1],
            )
            continue
        value = row.value or 0.0
        rollup.add_number(key, row.kind, value, row.end_ns, value if failed else 0.0)
        if row.name == INVOCATIONS:
            per_day[day] = per_day.get(day, 0.0) + value
    rollup.settle(parts)
    for day, value in per_day.items():  # the environment is the resource's: once per day, not per point
        for env_key, env_value in env:
            ekey = (day, service, version, env_key, env_value)
            rollup.env[ekey] = rollup.env.get(ekey, 0.0) + value
        if installation and value > 0:
            rollup.active.add((day, service, version, installation))


@dataclass(slots=True)
class Rolled:
    """One resource entry's rollup as a decoding worker computed it, with every dimension value as received
    (``admitted``: each (service, dimension, value) it was grouped under, for the writer to check)."""

    rollup: Rollup
    service: str
    version: str
    admitted: list[tuple[str, str, str]]
    counts: dict[str, int]


def _no_delta(_prefix: str, _row: PointRow) -> PointRow | None:
    raise LookupError("a cumulative point needs the store's previous point")


def roll_ahead(resource: ResourceData, limits: Limits) -> Rolled | None:
    """The entry's rollup with every value admitted as it is (no database); None when it has a cumulative
    point (differencing needs the store) or no points."""
    if not resource.points or any(p.temporality == "cumulative" and p.kind != "gauge" for p in resource.points):
        return None
    attrs = resource.attributes
    service, version = as_string(attrs.get("service.name")), as_string(attrs.get("service.version"))
    admitted: list[tuple[str, str, str]] = []

    def admit(svc: str, key: str, value: str, _counts: Counter[str]) -> str:
        admitted.append((svc, key, value))
        return value

    counts: Counter[str] = Counter()
    rollup = Rollup()
    roll(rollup, resource, service, version, counts, limits, admit, _no_delta)
    return Rolled(rollup, service, version, admitted, dict(counts))


def _signature(
    service: str, row: PointRow, cache: dict[Any, Any], counts: Counter[str], limits: Limits, admit: Admit
) -> str:
    """An error point's stack signature as stored: cut to ``signature_chars``, admitted like any dimension
    value (past the distinct-values limit it is ``(other)``, counted); '' when the point has none."""
    key = ("signature", row.attributes)
    known = cache.get(key)
    if known is None:
        raw = clip_value(as_string(json.loads(row.attributes).get(SIGNATURE)) or None,
                         replace(limits, value_chars=limits.signature_chars), counts, "error signature")
        known = cache[key] = admit(service, SIGNATURE, raw, counts) if raw else ""
    return str(known)


def _dims(
    service: str, row: PointRow, cache: dict[Any, Any], counts: Counter[str], limits: Limits, admit: Admit
) -> tuple[str, str, str, str]:
    label_key = LABELS.get(row.name)
    if label_key is None:  # most points: the same few (command, outcome, error type) over and over
        whole = (row.command, row.outcome, row.error_type)
        known = cache.get(whole)
        if known is None:
            known = cache[whole] = _admitted(service, row, None, cache, counts, limits, admit)
        return known
    clip_value(as_string(json.loads(row.attributes).get(label_key)), limits, counts, "label")  # counted twice, as ever
    return _admitted(service, row, label_key, cache, counts, limits, admit)


def _admitted(
    service: str,
    row: PointRow,
    label_key: str | None,
    cache: dict[Any, Any],
    counts: Counter[str],
    limits: Limits,
    admit: Admit,
) -> tuple[str, str, str, str]:
    raw_label = ""
    if label_key is not None:
        raw_label = clip_value(as_string(json.loads(row.attributes).get(label_key)), limits, counts, "label")
    out = []
    for key, value in (
        ("command", row.command or ""),
        ("outcome", row.outcome or ""),
        ("error.type", row.error_type or ""),
        (label_key or "", raw_label),
    ):
        if value == "" or not key:
            out.append(value)
            continue
        admitted = cache.get((key, value))
        if admitted is None:
            admitted = cache[(key, value)] = admit(service, key, value, counts)
        out.append(admitted)
    return out[0], out[1], out[2], out[3]


def exponential_of(meta: str | None, counts: str | None) -> exponential.Buckets:
    """Buckets of a stored raw exponential point: ``bounds`` holds scale, zero count and offsets as JSON."""
    info = json.loads(meta) if meta else {}
    return exponential.Buckets(
        int(info.get("scale", 0)), int(info.get("zero_count", 0)), int(info.get("offset", 0)),
        tuple(json.loads(counts)) if counts else (), int(info.get("negative_offset", 0)),
        tuple(info.get("negative_counts", ())),
    )


def encode_exponential(b: exponential.Buckets) -> bytes:
    """The exponential rollup's BLOB (marshal: C-speed to read back at report time)."""
    return marshal.dumps(tuple(b), 2)  # (scale, zero count, offset, counts, negative offset, negative counts)


def decode_exponential(blob: bytes) -> exponential.Buckets:
    return exponential.Buckets._make(marshal.loads(blob))


def week_of(day: int) -> int:
    """The Monday-based week holding a UTC day (week w covers days 7w-3 .. 7w+3)."""
    return (day + 3) // 7


def weekly(rollup: Rollup, before_day: int | None = None) -> Rollup:
    """The same aggregates by Monday-based week ((day + 3) // 7) instead of day: the coarse tier.

    ``before_day``: only the days before it (the store adds later days to their weeks once, from the daily
    rows, when the day is over; see Store._close_days)."""
    out = Rollup(kinds=rollup.kinds)
    if before_day is not None:
        rollup = Rollup(
            {k: v for k, v in rollup.metrics.items() if k[1] < before_day}, rollup.kinds,
            {k: v for k, v in rollup.buckets.items() if k[1] < before_day},
            {k: v for k, v in rollup.exp.items() if k[1] < before_day},
            {k: v for k, v in rollup.env.items() if k[0] < before_day}, set(),
            {k: v for k, v in rollup.errors.items() if k[1] < before_day},
        )
    _merge_metrics(
        out.metrics, (((metric, (day + 3) // 7, *rest), acc) for (metric, day, *rest), acc in rollup.metrics.items()),
        rollup.kinds,
    )
    buckets: dict[Any, list[int]] = out.buckets
    for (metric, day, *rest), slots in rollup.buckets.items():
        bkey = (metric, (day + 3) // 7, *rest)
        have_slots = buckets.get(bkey)
        if have_slots is None:
            buckets[bkey] = list(slots)
        else:
            for i, n in enumerate(slots):
                have_slots[i] += n
    exp: dict[Any, exponential.Buckets] = out.exp
    for (metric, day, *rest), b in rollup.exp.items():
        xkey = (metric, (day + 3) // 7, *rest)
        have_exp = exp.get(xkey)
        exp[xkey] = b if have_exp is None else exponential.merge(have_exp, b)
    env: dict[Any, float] = out.env
    for (day, *erest), runs in rollup.env.items():
        ekey = ((day + 3) // 7, *erest)
        env[ekey] = env.get(ekey, 0.0) + runs
    errors: dict[Any, float] = out.errors
    for (metric, day, *rrest), seen in rollup.errors.items():
        rkey = (metric, (day + 3) // 7, *rrest)
        errors[rkey] = errors.get(rkey, 0.0) + seen
    return out


def fold(bounds: list[float], counts: list[int]) -> tuple[list[float], list[int]]:
    """At most BUCKET_SLOTS buckets: the tail of a longer layout goes into the last (open) bucket."""
    counts = list(counts[: len(bounds) + 1])
    if len(counts) <= BUCKET_SLOTS:
        return bounds, counts
    return bounds[: BUCKET_SLOTS - 1], [*counts[: BUCKET_SLOTS - 1], sum(counts[BUCKET_SLOTS - 1 :])]


def layout(bounds: list[float]) -> str:
    """The bucket layout as stored and compared: JSON of the bounds as floats."""
    return json.dumps([float(b) for b in bounds], separators=(",", ":"))


def expand(bounds: list[float], counts: Sequence[Any]) -> list[tuple[float, float, int]]:
    """(lower, upper, count) per non-empty bucket of one layout; the first and last are open-ended."""
    edges = [-math.inf, *(float(b) for b in bounds), math.inf]
    return [(edges[i], edges[i + 1], int(n)) for i, n in enumerate(counts[: len(edges) - 1]) if n]
