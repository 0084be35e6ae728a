"""The OpenTelemetry SDK pipeline both ways in share: recorded runs become spans and metrics here.

Providers are built per (resource, level): the level filter processor and the metric views enforce the
level the data was recorded under, and the redaction processor runs before anything is staged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import DropAggregation, ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_expansion._version import __version__
from otel_expansion.config import levels
from otel_expansion.config.levels import Level
from otel_expansion.sdk import signals
from otel_expansion.sdk.processors import LevelFilterSpanProcessor, RedactingSpanProcessor
from otel_expansion.sdk.staging import Staging, StagingMetricReader, StagingSpanExporter


def views_for(level: Level) -> list[View]:
    """Metric views that drop instruments above the level and attributes the level does not allow."""
    views = []
    for m in signals.METRICS:
        if m.level > level:
            views.append(View(instrument_name=m.name, aggregation=DropAggregation()))
            continue
        keys = set(signals.allowed_attributes(level, m.attributes))
        if m.kind == "histogram":
            views.append(View(instrument_name=m.name, attribute_keys=keys,
                              aggregation=ExplicitBucketHistogramAggregation(m.buckets)))
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


def privacy_chain(level: Level, redactor: Any, inner: SpanProcessor) -> SpanProcessor:
    """Level filter first (cheapest, drops most), then redaction, then the exporting processor."""
    return LevelFilterSpanProcessor(level, RedactingSpanProcessor(redactor, inner))


def hour_of_week(ns: int) -> int:
    t = time.localtime(ns / 1e9)
    return t.tm_wday * 24 + t.tm_hour


class Pipeline:
    """TracerProvider + MeterProvider for one resource and level, staging into ``staging``."""

    def __init__(
        self,
        resource: Mapping[str, object],
        level: Level,
        redactor: Any,
        staging: Staging,
        span_processor: SpanProcessor | None = None,
    ) -> None:
        self.level = level
        self.staging = staging
        self.resource = sdk_resource(redactor.attributes(resource, max_count=64))
        inner = span_processor or SimpleSpanProcessor(StagingSpanExporter(staging))
        self.tracer_provider = TracerProvider(resource=self.resource)
        self.tracer_provider.add_span_processor(privacy_chain(level, redactor, inner))
        self.reader = StagingMetricReader(staging, redactor)
        self.meter_provider = MeterProvider(
            metric_readers=[self.reader], resource=self.resource, views=views_for(level)
        )
        self.tracer = self.tracer_provider.get_tracer(signals.SCOPE_NAME, __version__)
        meter = self.meter_provider.get_meter(signals.SCOPE_NAME, __version__)
        self.instruments: dict[str, Any] = {}
        for m in signals.METRICS:
            if m.kind == "counter":
                self.instruments[m.name] = meter.create_counter(m.name, unit=m.unit, description=m.description)
            else:
                self.instruments[m.name] = meter.create_histogram(
                    m.name, unit=m.unit, description=m.description,
                    explicit_bucket_boundaries_advisory=list(m.buckets),
                )

    def ingest(self, body: Mapping[str, Any]) -> None:
        """Replay one recorded body (commands, features, exceptions, sessions) through the SDK."""
        level = min(self.level, Level(int(body.get("level", self.level))))
        inst = self.instruments
        features = list(body.get("features") or ())
        exceptions = list(body.get("exceptions") or ())
        session_id = body.get("session")
        previous_id = body.get("session_previous")
        for cmd in body.get("commands") or ():
            name = str(cmd.get("name") or "(root)")
            start, end = int(cmd["start"]), int(cmd["end"])
            code = int(cmd.get("exit", 0))
            error = cmd.get("error")
            attrs: dict[str, Any] = {
                "cli.command.name": name,
                "cli.command.outcome": "success" if code == 0 else "error",
            }
            if code != 0 and error:
                attrs["error.type"] = str(error)
            duration = max(0, end - start) / 1e9
            inst["cli.command.invocations"].add(1, attrs)
            inst["cli.command.duration"].record(duration, attrs)
            if code != 0:
                error_attrs = {"cli.command.name": name, "error.type": attrs.get("error.type", str(code))}
                inst["cli.command.errors"].add(1, error_attrs)
            if cmd.get("cpu") is not None:
                inst["cli.command.cpu_time"].record(float(cmd["cpu"]), {"cli.command.name": name})
            if cmd.get("mem"):
                inst["cli.command.memory.peak"].record(int(cmd["mem"]), {"cli.command.name": name})
            if level >= levels.ACTIVITY:
                inst["cli.activity"].add(1, {"activity.hour_of_week": hour_of_week(start)})
            if level >= levels.SPANS:
                self._span(cmd, name, attrs, start, end, code, (session_id, previous_id), features, exceptions)
                previous_id = None  # only the session's first command carries it
        for feat in features:
            inst["cli.feature.usage"].add(1, {"feature.name": str(feat.get("name", ""))})
        for exc in exceptions:
            inst["cli.exceptions.handled"].add(1, {"error.type": str(exc.get("type", "")), "exception.handled": True})
        for ended in body.get("sessions_ended") or ():
            inst["cli.session.duration"].record(float(ended["duration"]))
            inst["cli.session.commands"].record(int(ended["commands"]))
        if body.get("heartbeats"):
            inst["cli.session.heartbeats"].add(int(body["heartbeats"]))

    def _span(self, cmd: Mapping[str, Any], name: str, attrs: dict[str, Any], start: int, end: int, code: int,
              session: tuple[object, object], features: list[Any], exceptions: list[Any]) -> None:
        exe = str(cmd.get("exe") or "")
        span_attrs: dict[str, Any] = dict(attrs)
        span_attrs["process.executable.name"] = exe
        span_attrs["process.exit.code"] = code
        session_id, previous_id = session
        if session_id:
            span_attrs["session.id"] = str(session_id)
        if previous_id:
            span_attrs["session.previous_id"] = str(previous_id)
        if cmd.get("cpu") is not None:
            span_attrs["cli.command.cpu_time"] = float(cmd["cpu"])
        if cmd.get("mem"):
            span_attrs["cli.command.memory.peak"] = int(cmd["mem"])
        if cmd.get("args"):
            span_attrs["cli.command.args"] = [str(a) for a in cmd["args"]]
        span = self.tracer.start_span(f"{exe} {name}".strip(), kind=SpanKind.INTERNAL, attributes=span_attrs,
                                      start_time=start)
        for feat in features:
            t = int(feat.get("t", 0))
            if start <= t <= end:
                ev: dict[str, Any] = {"feature.name": str(feat.get("name", ""))}
                ev.update(feat.get("attrs") or {})
                span.add_event("feature", ev, timestamp=t)
        details = cmd.get("exception")
        if details:
            span.add_event("exception", {"exception.type": attrs.get("error.type", ""),
                                         "exception.message": details.get("message", ""),
                                         "exception.stacktrace": details.get("stack", "")}, timestamp=end)
        for exc in exceptions:
            t = int(exc.get("t", 0))
            if start <= t <= end and exc.get("message") is not None:
                span.add_event("exception", {"exception.type": exc.get("type", ""),
                                             "exception.message": exc.get("message", ""),
                                             "exception.stacktrace": exc.get("stack", ""),
                                             "exception.handled": True}, timestamp=t)
        if code != 0:
            span.set_status(Status(StatusCode.ERROR, attrs.get("error.type")))
        span.end(end_time=end)

    def collect(self, start_ns: int | None = None, end_ns: int | None = None) -> None:
        """Pull the aggregated deltas into staging, stamped with the replayed runs' time range."""
        self.reader.time_override = (start_ns, end_ns) if start_ns and end_ns else None
        self.reader.collect()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
