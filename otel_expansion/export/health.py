"""Self-health that measures the telemetry's own cost, current as of the end of each sender round.

:class:`MeteredTransport` wraps the real transport: it counts every request (attempts, failures by class),
times it (latency by outcome) and keeps accepted requests in the recently-sent history. :func:`round_points`
turns what a round measured (its wall and CPU time, spool size, journal backlog, request latencies) into
delta histogram points for the spool. Counters live in the spool (they survive crashes); samples live here.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping, Sequence
from typing import Any

from otel_expansion.config.otlp import OtlpConfig, masked_url
from otel_expansion.export import history
from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM, HISTOGRAM, Attrs, MetricPoint, SeriesKey
from otel_expansion.sdk import signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_expansion.config import Settings
    from otel_expansion.export.ports import DeliverySpool
    from otel_expansion.export.transport import SendResult, Transport


def failure_class(result: SendResult) -> str:
    """``http_<status>`` when the collector answered, else the network-level cause."""
    if result.status is not None:
        return f"http_{result.status}"
    error = (result.error or "").lower()
    for needle, name in (("timed out", "timeout"), ("timeout", "timeout"), ("deadline", "timeout"),
                         ("refused", "refused"), ("tls", "tls"), ("ssl", "tls"), ("certificate", "tls"),
                         ("reset", "connection"), ("broken pipe", "connection"), ("connect", "connection"),
                         ("name or service", "dns"), ("resolution", "dns"), ("unreachable", "connection")):
        if needle in error:
            return name
    return "other"


class MeteredTransport:
    """A transport that measures itself and remembers what the collector accepted."""

    def __init__(self, inner: Transport, spool: DeliverySpool, home: str, settings: Settings,
                 config: OtlpConfig) -> None:
        self.inner = inner
        self.spool = spool
        self.home = home
        self.settings = settings
        self.config = config
        self.latencies: dict[str, list[float]] = {}  # not reported yet, by outcome
        self.all_latencies: list[float] = []  # this round's requests, for the last-round summary

    def send(self, signal: str, body: bytes, batch_id: str, deadline_s: float | None = None) -> SendResult:
        from otel_expansion.export.transport import Outcome

        self.spool.incr("export.attempts")
        result = self.inner.send(signal, body, batch_id, deadline_s=deadline_s)
        outcome = result.outcome.value
        self.latencies.setdefault(outcome, []).append(result.elapsed_s)
        self.all_latencies.append(result.elapsed_s)
        if result.outcome is not Outcome.SUCCESS:
            self.spool.incr("export.failures." + failure_class(result))
        else:
            sc = self.config.for_signal(signal)
            entry = history.SentEntry(time.time(), masked_url(sc.url), batch_id, signal,
                                      _items(signal, body, sc.protocol), result.sent_bytes, sc.protocol,
                                      result.status, body, "")
            history.record(self.home, entry, self.settings.sent_max_batches, self.settings.sent_max_bytes)
        return result

    def latency_summary(self) -> dict[str, float | int] | None:
        """Requests this round, median and slowest latency in seconds (None when nothing was sent)."""
        samples = sorted(self.all_latencies)
        if not samples:
            return None
        return {"requests": len(samples), "p50_s": samples[len(samples) // 2], "max_s": samples[-1]}

    def close(self) -> None:
        self.inner.close()


def _items(signal: str, body: bytes, protocol: str) -> int:
    """Spans or data points in an encoded request (cheap enough for one accepted request)."""
    try:
        if protocol == "http/json":
            import json

            data = json.loads(body)
        else:
            from otel_expansion.otlp.encode import to_dict

            data = to_dict(history._message(signal, body))
    except Exception:
        return 0
    return items_in(signal, data)


def items_in(signal: str, data: Mapping[str, object]) -> int:
    """Spans, or metric data points, in one OTLP/JSON request. Every member of a metric that holds
    ``dataPoints`` is counted (sum, gauge, histogram, exponentialHistogram...), so no kind can be missed."""
    return _count_items(signal, data)


def _count_items(signal: str, data: Any) -> int:
    if signal == "traces":
        return sum(len(ss.get("spans", [])) for rs in data.get("resourceSpans", [])
                   for ss in rs.get("scopeSpans", []))
    return sum(len(body.get("dataPoints", [])) for rm in data.get("resourceMetrics", [])
               for sm in rm.get("scopeMetrics", []) for m in sm.get("metrics", [])
               for body in m.values() if isinstance(body, dict))


def histogram_point(resource: Attrs, name: str, samples: Sequence[float], now_ns: int,
                    attributes: Attrs = ()) -> MetricPoint:
    """One delta histogram point of ``samples`` for a declared self-health metric."""
    from otel_expansion._version import __version__

    declared = signals.METRICS_BY_NAME[name]
    if declared.exponential:  # the same base-2 buckets the views give the SDK's histograms
        from otel_expansion.otlp.exponential import from_values

        e = from_values(samples)
        key = SeriesKey(resource, signals.SCOPE_NAME, __version__, name, EXPONENTIAL_HISTOGRAM, declared.unit,
                        declared.description, attributes, True)
        return MetricPoint(key, now_ns, now_ns, count=len(samples), sum=float(sum(samples)),
                           min=float(min(samples)), max=float(max(samples)), bucket_counts=e.counts, scale=e.scale,
                           zero_count=e.zero_count, offset=e.offset, negative_offset=e.negative_offset,
                           negative_counts=e.negative_counts)
    bounds = tuple(float(b) for b in declared.buckets)
    counts = [0] * (len(bounds) + 1)
    for value in samples:
        counts[bisect.bisect_left(bounds, value)] += 1  # upper-inclusive buckets, as OTel defines them
    key = SeriesKey(resource, signals.SCOPE_NAME, __version__, name, HISTOGRAM, declared.unit,
                    declared.description, attributes, True, bounds)
    return MetricPoint(key, now_ns, now_ns, count=len(samples), sum=float(sum(samples)), min=float(min(samples)),
                       max=float(max(samples)), bucket_counts=tuple(counts))


def round_points(resource: Mapping[str, object], transport: MeteredTransport | None, wall_s: float, cpu_s: float,
                 spool_bytes: int, backlog: int, now_ns: int) -> list[MetricPoint]:
    """What one sender round cost, as histogram points on the data's resource (SDK keys added)."""
    from otel_expansion.otlp.model import attrs_of
    from otel_expansion.sdk.pipeline import sdk_resource

    res = attrs_of(sdk_resource(resource).attributes)
    points = [
        histogram_point(res, signals.SENDER_DURATION, [wall_s], now_ns),
        histogram_point(res, signals.SENDER_CPU_TIME, [cpu_s], now_ns),
        histogram_point(res, signals.SPOOL_SIZE, [float(spool_bytes)], now_ns),
        histogram_point(res, signals.JOURNAL_BACKLOG, [float(backlog)], now_ns),
    ]
    if transport is not None:
        for outcome, samples in sorted(transport.latencies.items()):
            if samples:
                points.append(histogram_point(res, signals.EXPORT_DURATION, samples, now_ns,
                                              (("outcome", outcome),)))
        transport.latencies.clear()
    return points
