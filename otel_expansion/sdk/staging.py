"""SDK-native sinks that turn spans and metric points into spool rows, held until one commit.

The exporter and the reader only convert and stage; the caller commits the staged rows to the spool in
one transaction together with the journal ids they came from, so a crash can neither lose nor double them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.metrics.export import ExponentialHistogram as ExponentialHistogramData
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.export import Sum as SumData
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_expansion.config import Level
from otel_expansion.otlp.encode import span_to_proto
from otel_expansion.otlp.exponential import trimmed
from otel_expansion.otlp.model import (
    EXPONENTIAL_HISTOGRAM,
    HISTOGRAM,
    SUM,
    Attrs,
    MetricPoint,
    SeriesKey,
    SpanRecord,
    attrs_of,
)
from otel_expansion.privacy import foreign
from otel_expansion.sdk.signals import SCOPE_NAME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_expansion.privacy.redaction import Redactor
    from otel_expansion.sdk.spanbatch import SpanBatch

log = logging.getLogger("otel_expansion.sdk")

MAX_STAGED_SPANS = 50_000


class Staging:
    """Thread-safe holding area between the SDK and the spool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.points: list[MetricPoint] = []
        self.spans: list[SpanRecord] = []
        self.dropped = 0
        self.withheld = 0

    def add_spans(self, spans: list[SpanRecord]) -> None:
        with self._lock:
            room = MAX_STAGED_SPANS - len(self.spans)
            self.spans.extend(spans[: max(room, 0)])
            self.dropped += max(0, len(spans) - max(room, 0))

    def add_span(self, span: SpanRecord) -> None:
        with self._lock:
            if len(self.spans) < MAX_STAGED_SPANS:
                self.spans.append(span)
            else:
                self.dropped += 1

    def count_dropped(self, n: int) -> None:
        with self._lock:
            self.dropped += n

    def count_withheld(self, n: int) -> None:
        """Other instrumentations' metric points and attributes not sent (``dropped.foreign``)."""
        with self._lock:
            self.withheld += n

    def take_withheld(self) -> int:
        with self._lock:
            n, self.withheld = self.withheld, 0
        return n

    def take_dropped(self) -> int:
        """Spans dropped at the staging bound since the last call (reported as ``dropped.staging``)."""
        with self._lock:
            n, self.dropped = self.dropped, 0
            return n

    def add_points(self, points: list[MetricPoint]) -> None:
        with self._lock:
            self.points.extend(points)

    def take(self) -> tuple[list[MetricPoint], list[SpanRecord]]:
        with self._lock:
            points, spans = self.points, self.spans
            self.points, self.spans = [], []
            return points, spans


class StagingSpanExporter(SpanExporter):
    """Encodes finished (already filtered and redacted) spans into spool rows."""

    def __init__(self, staging: Staging) -> None:
        self.staging = staging

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        records = []
        for span in spans:
            try:
                resource = attrs_of(span.resource.attributes)
                scope = span.instrumentation_scope
                records.append(
                    SpanRecord(
                        resource,
                        scope.name if scope else "",
                        (scope.version or "") if scope else "",
                        span_to_proto(span),
                        span.end_time or 0,
                    )
                )
            except Exception:
                log.exception("could not encode span %r; dropped", getattr(span, "name", "?"))
        self.staging.add_spans(records)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class StagingSpanProcessor(SpanProcessor):
    """The pipeline's last SpanProcessor: encodes each finished span straight into staging.

    Replaces SimpleSpanProcessor + StagingSpanExporter on the hot path: no per-span context attach/detach
    or one-item export call, a cached resource/scope conversion, and the direct wire encoder.
    """

    def __init__(self, staging: Staging) -> None:
        from otel_expansion.sdk.spanwire import SpanEncoder

        self.staging = staging
        self.encoder = SpanEncoder()
        self._resources: dict[int, tuple[Any, Attrs]] = {}

    def _resource(self, resource: Any) -> Attrs:
        hit = self._resources.get(id(resource))
        if hit is not None and hit[0] is resource:
            return hit[1]
        attrs = attrs_of(resource.attributes)
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, attrs)
        return attrs

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if not span.context.trace_flags.sampled:
                return
            try:
                data = self.encoder.encode(span)
            except (ValueError, UnicodeError):  # let the protobuf classes decide (and raise) as before
                data = span_to_proto(span)
            scope = span.instrumentation_scope
            self.staging.add_span(SpanRecord(self._resource(span.resource), scope.name if scope else "",
                                             (scope.version or "") if scope else "", data, span.end_time or 0))
        except Exception:
            log.exception("could not encode span %r; dropped", getattr(span, "name", "?"))

    def on_end_batch(self, batch: SpanBatch) -> None:
        """A :class:`~otel_expansion.sdk.spanbatch.SpanBatch` encoded at once: resource and scope converted
        once, each span's bytes from the encoder's batch path (the protobuf classes for what it leaves)."""
        try:
            if not batch.flags.sampled:
                return
            resource = self._resource(batch.resource)
            scope = batch.scope
            name, version = scope.name, scope.version or ""
            records = []
            for row, data in zip(batch.rows, self.encoder.encode_batch(batch), strict=True):
                if data is None:
                    try:
                        data = span_to_proto(batch.span(row))
                    except Exception as exc:  # a value OTLP cannot carry: this span only, counted
                        log.warning("could not encode span %r (%s); dropped", batch.templates[row.template].name, exc)
                        self.staging.count_dropped(1)
                        continue
                records.append(SpanRecord(resource, name, version, data, row.end))
            self.staging.add_spans(records)
        except Exception:
            log.exception("could not encode %d spans; dropped", len(batch))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


DELTA_EVERYWHERE: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    ObservableUpDownCounter: AggregationTemporality.DELTA,
}


class StagingMetricReader(MetricReader):
    """An aggregating reader: delta points per collection, merged across runs by the spool.

    ``collect()`` is pull-based: the sender calls it after replaying a chunk of journal records, and
    long-running programs call it on their export interval.
    """

    def __init__(self, staging: Staging, redactor: Redactor | None = None, level: Level = Level.FULL) -> None:
        super().__init__(preferred_temporality=DELTA_EVERYWHERE)
        self.staging = staging
        self.redactor = redactor
        self.level = level  # other instrumentations' metrics fail closed per level (privacy.foreign)
        self.time_override: tuple[int, int] | None = None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        try:
            self.staging.add_points(self.to_points(metrics_data))
        except Exception:
            log.exception("could not convert collected metrics; dropped")

    def to_points(self, metrics_data: MetricsData) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        clean = self.redactor.attributes if self.redactor is not None else dict
        for rm in metrics_data.resource_metrics:
            resource = attrs_of(rm.resource.attributes)
            for sm in rm.scope_metrics:
                scope_name, scope_version = sm.scope.name, sm.scope.version or ""
                ours = scope_name == SCOPE_NAME
                for metric in sm.metrics:
                    if not ours and not foreign.metric_allowed(metric.name, self.level):
                        self.staging.count_withheld(len(getattr(metric.data, "data_points", ())) or 1)
                        continue
                    data = metric.data
                    if isinstance(data, SumData):
                        kind, monotonic = SUM, data.is_monotonic
                    elif isinstance(data, HistogramData):
                        kind, monotonic = HISTOGRAM, True
                    elif isinstance(data, ExponentialHistogramData):
                        kind, monotonic = EXPONENTIAL_HISTOGRAM, True
                    else:  # gauges have no cross-run merge we trust
                        continue
                    for dp in data.data_points:
                        raw: Mapping[str, Any] = dp.attributes or {}
                        if not ours:  # an allow-list of keys with value rules: never a URL, path or header
                            raw, withheld = foreign.attributes(raw, self.level)
                            if withheld:
                                self.staging.count_withheld(withheld)
                        attrs = attrs_of(clean(raw))
                        start, end = dp.start_time_unix_nano, dp.time_unix_nano
                        if self.time_override is not None:
                            start, end = self.time_override
                        if isinstance(dp, NumberDataPoint):
                            if dp.value == 0 and monotonic:
                                continue
                            key = SeriesKey(resource, scope_name, scope_version, metric.name, kind,
                                            metric.unit or "", metric.description or "", attrs, monotonic)
                            points.append(MetricPoint(key, start, end, value=float(dp.value)))
                        elif isinstance(dp, HistogramDataPoint):
                            if dp.count == 0:
                                continue
                            key = SeriesKey(resource, scope_name, scope_version, metric.name, kind,
                                            metric.unit or "", metric.description or "", attrs, True,
                                            tuple(float(b) for b in dp.explicit_bounds))
                            points.append(MetricPoint(key, start, end, count=dp.count, sum=float(dp.sum),
                                                      min=float(dp.min), max=float(dp.max),
                                                      bucket_counts=tuple(dp.bucket_counts)))
                        elif isinstance(dp, ExponentialHistogramDataPoint):
                            if dp.count == 0:
                                continue
                            key = SeriesKey(resource, scope_name, scope_version, metric.name, kind,
                                            metric.unit or "", metric.description or "", attrs, True)
                            offset, counts = trimmed(dp.positive.offset, dp.positive.bucket_counts)
                            n_offset, n_counts = trimmed(dp.negative.offset, dp.negative.bucket_counts)
                            points.append(MetricPoint(
                                key, start, end, count=dp.count, sum=float(dp.sum), min=float(dp.min),
                                max=float(dp.max), bucket_counts=counts, scale=dp.scale, zero_count=dp.zero_count,
                                offset=offset, negative_offset=n_offset, negative_counts=n_counts,
                            ))
        return points

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None
