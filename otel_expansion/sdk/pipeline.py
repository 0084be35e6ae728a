"""The OpenTelemetry SDK pipeline both ways in share: recorded runs become spans and metrics here.

Providers are built per (resource, level): the level filter processor and the metric views enforce the
level the data was recorded under, and the redaction processor runs before anything is staged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_expansion import config as levels
from otel_expansion._version import __version__
from otel_expansion.collect.usage import error_series, handled_series
from otel_expansion.config import Level
from otel_expansion.otlp.exponential import MAX_SCALE, MAX_SIZE
from otel_expansion.sdk import signals
from otel_expansion.sdk.aggregation import ValueBatch
from otel_expansion.sdk.otel_internals import (
    BatchingExponentialHistogramAggregation,
    BatchingHistogramAggregation,
    active_span_processor,
    batch_handler,
    span_limits,
    span_processors,
    trace_flags,
)
from otel_expansion.sdk.processors import LevelFilterSpanProcessor, RedactingSpanProcessor
from otel_expansion.sdk.spanbatch import SpanBatch, SpanRow, SpanTemplate
from otel_expansion.sdk.staging import Staging, StagingMetricReader, StagingSpanProcessor
from otel_expansion.sdk.timeline import Timeline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_expansion.journal.record import Record
    from otel_expansion.privacy.redaction import Redactor


def views_for(level: Level, batched: bool = True) -> list[View]:
    """Metric views that drop instruments above the level and attributes the level does not allow.

    ``batched`` histograms also accept a :class:`~otel_expansion.sdk.aggregation.ValueBatch` (the replay
    records a series' values at once); ``False`` gives the SDK's plain aggregation, for comparisons.
    The only place that decides a histogram's aggregation: durations (``Metric.exponential``) get the SDK's
    base-2 exponential buckets (``MAX_SIZE`` buckets: scale >= 3, <= 4.4% error, from 10 us to 60 s),
    the others their declared explicit bounds.
    """
    histogram = BatchingHistogramAggregation if batched else ExplicitBucketHistogramAggregation
    exponential = BatchingExponentialHistogramAggregation if batched else ExponentialBucketHistogramAggregation
    views = []
    for m in signals.METRICS:
        if m.level > level:
            views.append(View(instrument_name=m.name, aggregation=DropAggregation()))
            continue
        keys = set(signals.allowed_attributes(level, m.attributes))
        if m.exponential:
            views.append(View(instrument_name=m.name, attribute_keys=keys,
                              aggregation=exponential(max_size=MAX_SIZE, max_scale=MAX_SCALE)))
        elif m.kind == "histogram":
            views.append(View(instrument_name=m.name, attribute_keys=keys,
                              aggregation=histogram(m.buckets)))
        else:
            views.append(View(instrument_name=m.name, attribute_keys=keys))
    return views


def sdk_resource(attributes: Mapping[str, object]) -> Resource:
    """The run's resource plus SDK and distro identity; deliberately no host or process detectors."""
    from opentelemetry.sdk.version import __version__ as sdk_version

    attrs: dict[str, Any] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
        "telemetry.distro.name": "otel-expansion",
        "telemetry.distro.version": __version__,
    }
    attrs.update(attributes)
    return Resource(attrs)


def privacy_chain(level: Level, redactor: Redactor, inner: SpanProcessor,
                  count_withheld: Callable[[int], None] | None = None) -> SpanProcessor:
    """Level filter first (cheapest, drops most), then redaction, then the exporting processor.
    ``count_withheld`` counts other instrumentations' span attributes the filter keeps back."""
    return LevelFilterSpanProcessor(level, RedactingSpanProcessor(redactor, inner), count_withheld)


def span_name(exe: str, command: str) -> str:
    """``{process.executable.name}`` per the CLI span conventions, plus the subcommand path when there is
    one (``git remote add``; low cardinality): a single-command tool's span is ``black``, not ``black black``."""
    if not command or command in (exe, "(root)"):
        return exe or command or "(root)"
    return f"{exe} {command}".strip()


def hour_of_week(ns: int) -> int:
    t = time.localtime(ns / 1e9)
    return t.tm_wday * 24 + t.tm_hour


_QUARTER_HOUR_NS = 900 * 10**9
"""Every UTC offset and DST switch is a multiple of 15 minutes: the local hour is constant inside one."""


def fast_span_settings(provider: TracerProvider) -> tuple[int, int] | None:
    """(max events, max event attributes) when spans may be built directly with the result the tracer
    would give: an always-on sampler and span limits that cannot touch our attributes; else None."""
    try:
        description = provider.sampler.get_description()
        limits = span_limits(provider)  # read only: would the SDK's limits change our spans?
    except Exception:
        return None
    if limits is None or active_span_processor(provider) is None:  # an SDK without these internals: its own path
        return None
    if description != "AlwaysOnSampler" and not description.startswith("ParentBased{root:AlwaysOnSampler,"):
        return None
    if limits.max_attribute_length is not None or limits.max_span_attribute_length is not None:
        return None
    if (limits.max_span_attributes or 0) < len(signals.SPAN_ATTRIBUTES) or not limits.max_events:
        return None
    return int(limits.max_events), int(limits.max_event_attributes or 0)


class Pipeline:
    """TracerProvider + MeterProvider for one resource and level, staging into ``staging``.

    ``ingest`` replays a recorded body in time linear in its size: measurements of one series are
    recorded once per body (a counter add of the count, a histogram batch of the values), features and
    exceptions are indexed by time for the span events, and each command's span is built directly and
    handed to the provider's span processors (our level filter, redaction, staging), with the ids, flags,
    resource and scope the tracer would give it.
    """

    def __init__(
        self,
        resource: Mapping[str, object],
        level: Level,
        redactor: Redactor,
        staging: Staging,
        span_processor: SpanProcessor | None = None,
        batched: bool = True,
    ) -> None:
        self.level = level
        self.staging = staging
        self.resource = sdk_resource(redactor.attributes(resource, max_count=64))
        inner = span_processor or StagingSpanProcessor(staging)
        self.tracer_provider = TracerProvider(resource=self.resource)
        self.tracer_provider.add_span_processor(privacy_chain(level, redactor, inner, staging.count_withheld))
        self.reader = StagingMetricReader(staging, redactor, level)
        self.meter_provider = MeterProvider(
            metric_readers=[self.reader], resource=self.resource, views=views_for(level, batched)
        )
        self.tracer = self.tracer_provider.get_tracer(signals.SCOPE_NAME, __version__)
        self.scope = InstrumentationScope(signals.SCOPE_NAME, __version__)
        meter = self.meter_provider.get_meter(signals.SCOPE_NAME, __version__)
        self.instruments: dict[str, Any] = {}
        for m in signals.METRICS:
            if m.kind == "counter":
                self.instruments[m.name] = meter.create_counter(m.name, unit=m.unit, description=m.description)
            else:
                self.instruments[m.name] = meter.create_histogram(
                    m.name, unit=m.unit, description=m.description,
                    explicit_bucket_boundaries_advisory=list(m.buckets) or None,
                )
        self._fast = fast_span_settings(self.tracer_provider) if batched else None
        ids = self.tracer_provider.id_generator
        self._flags = trace_flags(ids)
        self._hours: dict[int, int] = {}
        # the SDK's RandomIdGenerator draws ids from `random`; so do we, without two calls per span
        self._ids = random.getrandbits if type(ids) is RandomIdGenerator else None

    def warm(self) -> None:
        """Resolve every instrument's views now, not on its first measurement (the SDK matches each view's
        pattern then): a long-running program's first replay then costs what later ones do. Records
        nothing: zero adds and empty batches, collected and discarded."""
        for m in signals.METRICS:
            instrument = self.instruments[m.name]
            if m.kind == "counter":
                instrument.add(0)
            else:
                instrument.record(ValueBatch(()))
        self.reader.collect()
        self.staging.take()

    # -- replay ----------------------------------------------------------------------------------------
    def ingest(self, body: Record, cancelled: Callable[[], bool] | None = None) -> None:
        """Replay one recorded body (commands, features, exceptions, sessions) through the SDK.

        ``cancelled`` is polled every few hundred commands: when it returns True the replay stops part
        way (the caller discards what was staged; a service's exit handed the body to the journal).
        """
        level = min(self.level, Level(int(body.get("level", self.level))))
        inst = self.instruments
        features = body.get("features") or ()
        exceptions = body.get("exceptions") or ()
        commands = body.get("commands") or ()
        usage = body.get("usage")
        if usage:
            self.record_usage(usage, level)
        if body.get("metered"):  # a service's commands: their metrics came in its usage aggregate
            if commands and level >= levels.SPANS:
                self._spans_only(commands, body, features, exceptions, cancelled)
        else:
            if commands and not self._commands(commands, level, body, features, exceptions, cancelled):
                return
            self._uses(features, exceptions)
        for ended in body.get("sessions_ended") or ():
            inst[signals.SESSION_DURATION].record(float(ended["duration"]))
            inst[signals.SESSION_COMMANDS].record(int(ended["commands"]))
        if body.get("exit_ns") is not None:
            inst[signals.EXIT_DURATION].record(int(body["exit_ns"]) / 1e9)
        if body.get("heartbeats"):
            inst[signals.HEARTBEATS].add(int(body["heartbeats"]))

    def record_usage(self, snapshot: Mapping[str, object], level: Level | None = None) -> None:
        """A service's usage aggregate (``collect.usage.Usage.take``) into the instruments: counts as adds,
        histogram values as one batch per series (the View's aggregation folds them in, whatever it is)."""
        inst = self.instruments
        usage: Mapping[str, Any] = snapshot  # a plain marshal-able snapshot: lists of lists, read by position
        for name, failed, error_type, n, durations in usage.get("runs") or ():
            outcome = "unknown" if failed is None else "error" if failed else "success"  # None: no exit code
            attrs: dict[str, Any] = {"cli.command.name": name, "cli.command.outcome": outcome}
            if error_type is not None:
                attrs["error.type"] = error_type
            inst[signals.INVOCATIONS].add(int(n), attrs)
            if durations:
                inst[signals.DURATION].record(ValueBatch(durations), attrs)
        for name, error_type, sig, n in error_series(usage):
            eattrs: dict[str, Any] = {"cli.command.name": name, "error.type": error_type}
            if sig is not None:
                eattrs[_SIGNATURE] = sig
            inst[signals.ERRORS].add(n, eattrs)
        performance = level is None or level >= levels.PERFORMANCE
        for key, metric in (("cpu", signals.CPU_TIME), ("mem", signals.MEMORY_PEAK),
                            ("startup", signals.STARTUP_TIME)):
            if performance:
                for name, values in usage.get(key) or ():
                    if values:
                        inst[metric].record(ValueBatch(values), {"cli.command.name": name})
        if level is None or level >= levels.ACTIVITY:
            for hour, n in usage.get("hours") or ():
                inst[signals.ACTIVITY].add(int(n), {"activity.hour_of_week": int(hour)})
        costs = usage.get("costs")
        if costs:
            inst[signals.RECORD_DURATION].record(ValueBatch(costs))
        for fname, n in usage.get("features") or ():
            inst[signals.FEATURE_USAGE].add(int(n), {"feature.name": fname})
        for etype, sig, n in handled_series(usage):
            hattrs: dict[str, Any] = {"error.type": etype, "exception.handled": True}
            if sig is not None:
                hattrs[_SIGNATURE] = sig
            inst[signals.HANDLED].add(n, hattrs)

    def _uses(self, features: Any, exceptions: Any) -> None:
        """Feature uses and handled exceptions of a recorded (not pre-aggregated) body."""
        inst = self.instruments
        if features:
            uses: dict[str, int] = {}
            for feat in features:
                fname = str(feat.get("name", ""))
                uses[fname] = uses.get(fname, 0) + 1
            for fname, n in uses.items():
                inst[signals.FEATURE_USAGE].add(n, {"feature.name": fname})
        if exceptions:
            handled: dict[tuple[str, str | None], int] = {}
            for exc in exceptions:
                sig = exc.get("sig")
                hkey = (str(exc.get("type", "")), None if sig is None else str(sig))
                handled[hkey] = handled.get(hkey, 0) + 1
            for (etype, sig), n in handled.items():
                attrs: dict[str, Any] = {"error.type": etype, "exception.handled": True}
                if sig is not None:
                    attrs[_SIGNATURE] = sig
                inst[signals.HANDLED].add(n, attrs)

    def _spans_only(self, commands: Any, body: Mapping[str, Any], features: Any, exceptions: Any,
                    cancelled: Callable[[], bool] | None) -> None:
        """One span per command, nothing else (a service's metrics were aggregated as it ran)."""
        events = self.level >= Level.FULL
        feature_times = Timeline(features) if events else None
        exception_times = Timeline(exceptions) if events else None
        session = (body.get("session"), body.get("session_previous"))
        batch = _BatchBuilder()
        for i, cmd in enumerate(commands):
            if cancelled is not None and not i & 255 and cancelled():
                return
            raw_exit = cmd.get("exit")
            unknown = raw_exit is None and cmd.get("outcome") == "unknown"  # left by an unobservable exit
            code = 0 if raw_exit is None else int(raw_exit)
            error = cmd.get("error") if code or unknown else None
            sig = cmd.get("sig") if error else None
            self._span_row(batch, cmd, str(cmd.get("name") or "(root)"), None if unknown else code,
                           str(error) if error else None, None if sig is None else str(sig),
                           int(cmd["start"]), int(cmd["end"]), session, feature_times, exception_times,
                           features, exceptions)
            session = (session[0], None)
        self._emit(batch)

    def _commands(self, commands: Any, level: Level, body: Mapping[str, Any], features: Any,
                  exceptions: Any, cancelled: Callable[[], bool] | None) -> bool:
        """Per-command work: grouping for the metrics, one span each (O(log n) event lookups).
        Returns False when cancelled part way."""
        inst = self.instruments
        runs: dict[tuple[str, str, str | None], list[float]] = {}  # invocation series -> durations
        errors: dict[tuple[str, str, str | None], int] = {}
        cpu: dict[str, list[float]] = {}
        mem: dict[str, list[int]] = {}
        hours: dict[int, int] = {}
        costs: list[float] = []  # self-health: what recording each command cost us (s)
        startups: dict[str, list[float]] = {}
        activity = level >= levels.ACTIVITY
        spans = level >= levels.SPANS
        events = spans and self.level >= Level.FULL  # the level filter drops span events below full
        feature_times = Timeline(features) if events else None
        exception_times = Timeline(exceptions) if events else None
        session = (body.get("session"), body.get("session_previous"))
        batch = _BatchBuilder()
        for i, cmd in enumerate(commands):
            if cancelled is not None and not i & 255 and cancelled():
                return False
            name = str(cmd.get("name") or "(root)")
            start, end = int(cmd["start"]), int(cmd["end"])
            raw_exit = cmd.get("exit")
            unknown = raw_exit is None and cmd.get("outcome") == "unknown"  # left by an unobservable exit
            code = int(raw_exit or 0)
            error = cmd.get("error") if code or unknown else None
            error_type = str(error) if error else None
            outcome = "unknown" if unknown else "error" if code else "success"
            series = (name, outcome, error_type)
            durations = runs.get(series)
            if durations is None:
                durations = runs[series] = []
            durations.append(max(0, end - start) / 1e9)
            sig = None
            if error_type is not None:
                sig = cmd.get("sig")
                if sig is not None:
                    sig = str(sig)
            if code:
                ekey = (name, error_type or str(code), sig)
                errors[ekey] = errors.get(ekey, 0) + 1
            c = cmd.get("cpu")
            if c is not None:
                c = float(c)
                if 0 <= c < _INF:  # what Histogram.record would accept
                    cpu.setdefault(name, []).append(c)
            m = cmd.get("mem")
            if m:
                m = int(m)
                if m >= 0:
                    mem.setdefault(name, []).append(m)
            rec = cmd.get("rec")
            if rec is not None and int(rec) >= 0:
                costs.append(int(rec) / 1e9)
            up = cmd.get("startup")
            if up is not None and 0 <= float(up) < _INF:
                startups.setdefault(name, []).append(float(up))
            if activity:
                quarter = start // _QUARTER_HOUR_NS
                hour = self._hours.get(quarter)
                if hour is None:
                    if len(self._hours) > 4096:
                        self._hours.clear()
                    hour = self._hours[quarter] = hour_of_week(start)
                hours[hour] = hours.get(hour, 0) + 1
            if spans:
                self._span_row(batch, cmd, name, None if unknown else code, error_type, sig, start, end,
                               session, feature_times, exception_times, features, exceptions)
                session = (session[0], None)  # only the session's first command carries the previous id
        self._emit(batch)
        for (name, outcome, error_type), durations in runs.items():
            attrs: dict[str, Any] = {"cli.command.name": name, "cli.command.outcome": outcome}
            if error_type is not None:
                attrs["error.type"] = error_type
            inst[signals.INVOCATIONS].add(len(durations), attrs)
            inst[signals.DURATION].record(ValueBatch(durations), attrs)
        for (name, error_type, sig), n in errors.items():
            eattrs: dict[str, Any] = {"cli.command.name": name, "error.type": error_type}
            if sig is not None:
                eattrs[_SIGNATURE] = sig
            inst[signals.ERRORS].add(n, eattrs)
        for name, values in cpu.items():
            inst[signals.CPU_TIME].record(ValueBatch(values), {"cli.command.name": name})
        for name, ivalues in mem.items():
            inst[signals.MEMORY_PEAK].record(ValueBatch(ivalues), {"cli.command.name": name})
        for hour, n in hours.items():
            inst[signals.ACTIVITY].add(n, {"activity.hour_of_week": hour})
        if costs:
            inst[signals.RECORD_DURATION].record(ValueBatch(costs))
        for name, values in startups.items():
            inst[signals.STARTUP_TIME].record(ValueBatch(values), {"cli.command.name": name})
        return True

    def _span_row(self, batch: _BatchBuilder, cmd: Mapping[str, Any], name: str, code: int | None,
                  error_type: str | None, sig: str | None,
                  start: int, end: int, session: tuple[object, object], feature_times: Timeline | None,
                  exception_times: Timeline | None, features: Any, exceptions: Any) -> None:
        """One command's span: its shared part looked up (or made) once per series, the rest per span.
        Attributes keep the per-span order: name, outcome, error type, signature, executable, exit code, session id
        (shared), then previous session, CPU, memory, start-up, argument shapes (per span)."""
        exe = str(cmd.get("exe") or "")
        session_id, previous_id = session
        shift = cmd.get("th")  # kept by probability sampling, with probability 2**-shift
        key = (name, code, error_type, sig, exe, session_id, shift)
        index = batch.index.get(key)
        if index is None:
            attrs: dict[str, Any] = {"cli.command.name": name, "cli.command.outcome":
                                     "unknown" if code is None else "error" if code else "success"}
            if error_type is not None:
                attrs["error.type"] = error_type
                if sig is not None:
                    attrs[_SIGNATURE] = sig
            attrs["process.executable.name"] = exe
            if code is not None:  # an unknown outcome has no exit code
                attrs["process.exit.code"] = code
            if session_id:
                attrs["session.id"] = str(session_id)
            status = Status(StatusCode.ERROR, error_type) if code else _UNSET
            index = batch.index[key] = len(batch.templates)
            batch.templates.append(SpanTemplate(span_name(exe, name), attrs, status,
                                                trace_state(int(shift)) if shift else ""))
        extra: dict[str, Any] | None = None
        if previous_id:
            extra = {"session.previous_id": str(previous_id)}
        cpu = cmd.get("cpu")
        if cpu is not None:
            if extra is None:
                extra = {}
            extra[signals.CPU_TIME] = float(cpu)
        mem = cmd.get("mem")
        if mem:
            if extra is None:
                extra = {}
            extra[signals.MEMORY_PEAK] = int(mem)
        if cmd.get("startup") is not None:
            if extra is None:
                extra = {}
            extra[signals.STARTUP_TIME] = float(cmd["startup"])
        if cmd.get("args"):
            if extra is None:
                extra = {}
            extra["cli.command.args"] = tuple(str(a) for a in cmd["args"])
        events: list[tuple[str, Any, int]] = []
        if feature_times is not None:
            for i in feature_times.between(start, end):
                feat = features[i]
                ev: dict[str, Any] = {"feature.name": str(feat.get("name", ""))}
                ev.update(feat.get("attrs") or {})
                events.append(("feature", ev, int(feat.get("t", 0))))
            details = cmd.get("exception")
            if details:
                ev = {"exception.type": error_type or "", "exception.message": details.get("message", ""),
                      "exception.stacktrace": details.get("stack", "")}
                if sig is not None:
                    ev[_SIGNATURE] = sig
                events.append(("exception", ev, end))
        if exception_times is not None:
            for i in exception_times.between(start, end):
                exc = exceptions[i]
                if exc.get("message") is not None:
                    ev = {"exception.type": exc.get("type", ""), "exception.message": exc.get("message", ""),
                          "exception.stacktrace": exc.get("stack", ""), "exception.handled": True}
                    if exc.get("sig") is not None:
                        ev[_SIGNATURE] = str(exc["sig"])
                    events.append(("exception", ev, int(exc.get("t", 0))))
        fast = self._fast
        if fast is None or len(events) > fast[0]:  # the SDK's own path decides what a limit drops
            template = batch.templates[index]
            attrs = template.attributes if extra is None else {**template.attributes, **extra}
            self._span_via_tracer(template.name, attrs, events, template.status, start, end)
            return
        limit = fast[1]
        ids = self._ids
        if ids is None:
            gen = self.tracer_provider.id_generator
            trace_id, span_id = gen.generate_trace_id(), gen.generate_span_id()
        else:
            trace_id, span_id = ids(128), ids(64)
            while not trace_id:
                trace_id = ids(128)
            while not span_id:
                span_id = ids(64)
        if shift:  # the trace id's randomness (its low 56 bits) at or above the threshold: consistent sampling
            low = 56 - int(shift)
            trace_id = (trace_id >> 56 << 56) | (threshold(int(shift)) | (trace_id & ((1 << low) - 1)))
        batch.rows.append(SpanRow(index, trace_id, span_id, start, end, extra,
                                  tuple((n, _event_attributes(a, limit), t) for n, a, t in events) if events else ()))

    def _emit(self, batch: _BatchBuilder) -> None:
        """Hand the batch to the provider's span processors, as ``Span.end()`` hands each span."""
        if not batch.rows:
            return
        spans = SpanBatch(self.resource, self.scope, self._flags, batch.templates, batch.rows)
        active = active_span_processor(self.tracer_provider)
        assert active is not None  # checked by fast_span_settings, which is why a batch is built at all
        processors = span_processors(active)
        if processors is None:
            for span in spans.spans():
                active.on_end(span)
            return
        for processor in processors:
            batch_handler(processor)(spans)

    def _span_via_tracer(self, span_name: str, attrs: dict[str, Any], events: list[tuple[str, dict[str, Any], int]],
                         status: Status, start: int, end: int) -> None:
        """The SDK's own path, when a sampler or span limits could change the result."""
        span = self.tracer.start_span(span_name, context=_ROOT, kind=SpanKind.INTERNAL, attributes=attrs,
                                      start_time=start)
        for n, a, t in events:
            span.add_event(n, a, timestamp=t)
        if status is not _UNSET:
            span.set_status(status)
        span.end(end_time=end)

    def collect(self, start_ns: int | None = None, end_ns: int | None = None) -> None:
        """Pull the aggregated deltas into staging, stamped with the replayed runs' time range."""
        self.reader.time_override = (start_ns, end_ns) if start_ns and end_ns else None
        self.reader.collect()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def threshold(shift: int) -> int:
    """The OpenTelemetry sampling threshold (rejection threshold over 56 bits of randomness) that keeps
    a span with probability ``2**-shift``: its adjusted count is ``2**shift``."""
    return ((1 << shift) - 1) << (56 - shift)


def trace_state(shift: int) -> str:
    """The ``ot`` tracestate entry of a span kept with probability ``2**-shift`` (``ot=th:8`` for 1/2),
    as the OpenTelemetry specification's probability sampling defines it: the threshold in hex, 14
    digits with trailing zeros removed."""
    return "ot=th:" + (f"{threshold(shift):014x}".rstrip("0") or "0")


class _BatchBuilder:
    """The span batch of one replayed body, being built: templates by series, rows in command order."""

    __slots__ = ("index", "rows", "templates")

    def __init__(self) -> None:
        self.index: dict[tuple[Any, ...], int] = {}
        self.templates: list[SpanTemplate] = []
        self.rows: list[SpanRow] = []


_SIGNATURE = "cli.error.signature"
_INF = float("inf")
_UNSET = Status(StatusCode.UNSET)
_ROOT = Context()
_PLAIN = (str, bool, int, float)


def _event_attributes(attrs: dict[str, Any], limit: int) -> Any:
    """What ``Span.add_event`` would store: plain scalars as they are, anything else cleaned by the SDK."""
    if len(attrs) <= limit and all(type(v) in _PLAIN and type(k) is str and k for k, v in attrs.items()):
        return attrs
    return BoundedAttributes(limit, attrs, immutable=True, max_value_len=None)
