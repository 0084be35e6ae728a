"""Self-health: the spool's running counters (drops, export attempts, failures) as delta metric points.

The spool keeps totals; this turns what was not reported yet into points of the declared self-health
metrics, under the resource of the data they travel with.
"""

from __future__ import annotations

from typing import Any

from otel_expansion._version import __version__
from otel_expansion.otlp.model import SUM, MetricPoint, SeriesKey, attrs_of
from otel_expansion.sdk import signals
from otel_expansion.sdk.pipeline import sdk_resource

__all__ = ["health_points", "resource_for_health"]


def _metric_of(counter: str) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """The self-health metric and attributes a spool counter is reported as (None: not reported)."""
    if counter.startswith("dropped."):
        return signals.SPOOL_DROPPED, (("reason", counter.split(".", 1)[1]),)
    if counter == "service.spilled":
        return signals.SERVICE_SPILLED, ()
    if counter == "spans.sampled_out":
        return signals.SPANS_SAMPLED_OUT, ()
    if counter == "export.attempts":
        return signals.EXPORT_ATTEMPTS, ()
    if counter.startswith("export.failures."):
        return signals.EXPORT_FAILURES, (("reason", counter.split(".", 2)[2]),)
    return None


def health_points(spool: Any, resource: dict[str, Any], now_ns: int) -> list[MetricPoint]:
    """Self-health counters not reported yet, as delta points (the spool keeps the running totals)."""
    counters = spool.counters()
    reported_raw = spool.get_state("health.reported") or ""
    reported = dict(item.split("=", 1) for item in reported_raw.split(",") if "=" in item)
    res = attrs_of(sdk_resource(resource).attributes)
    points = []
    for name, total in sorted(counters.items()):
        delta = total - int(reported.get(name, 0))
        metric = _metric_of(name)
        if delta <= 0 or metric is None:
            continue
        metric_name, attrs = metric
        declared = signals.METRICS_BY_NAME[metric_name]
        key = SeriesKey(res, signals.SCOPE_NAME, __version__, metric_name, SUM, declared.unit,
                        declared.description, attrs)
        points.append(MetricPoint(key, now_ns, now_ns, value=float(delta)))
        reported[name] = str(total)
    if points:
        spool.set_state("health.reported", ",".join(f"{k}={v}" for k, v in reported.items()))
    return points


def resource_for_health(spool: Any) -> dict[str, Any] | None:
    """A resource for self-health points: the newest pending data's, minus SDK-added keys."""
    points, spans = spool.pending(limit=1)
    rows = [p.key.resource for p in points] + [s.resource for s in spans]
    if not rows:
        # nothing pending (all of it sent): the resource the last data had, so a drop counted after it
        # (a program that stops after a burst) is reported in this round, not when some later data comes
        import json

        try:
            stored = json.loads(spool.get_state("health.resource") or "null")
        except ValueError:
            return None
        if not isinstance(stored, dict):
            return None
        return {str(k): tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    resource = {k: v for k, v in rows[0] if not k.startswith(("telemetry.sdk.", "telemetry.distro."))}
    remember(spool, resource)
    return resource


def remember(spool: Any, resource: dict[str, Any]) -> None:
    """Keep ``resource`` as the one self-health points travel with when nothing else is pending."""
    import json

    try:
        text = json.dumps(resource, sort_keys=True)
        if spool.get_state("health.resource") != text:
            spool.set_state("health.resource", text)
    except (TypeError, ValueError):
        pass
