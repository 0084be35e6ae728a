"""The debug stream: every signal, as it enters the spool, shown the way it will leave the machine.

By default each addition is one readable summary sized for a person (a line per span and per metric
series, the resource once); ``OTEL_EXPANSION_DEBUG_JSON=1`` or ``debug on --otlp`` prints the full
OTLP/JSON instead. The ``otel_expansion`` logger always gets the full OTLP/JSON at DEBUG.

Signals reach the spool in one place whichever way they came in (a CLI's journal record replayed by
:mod:`otel_expansion.workers.inline`, a service's in-process pipeline, the sender's self-health points),
so wrapping the spool's ``add`` shows all of them, after the level filter and redaction, encoded by the
same functions the exporter uses. Only the export-time batch id attribute is added later (and metric
points of the same series are summed with earlier pending ones before they go).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from otel_expansion.otlp.model import MetricPoint, SpanRecord

logger = logging.getLogger("otel_expansion")
PREFIX = "otel-expansion debug:"


def requests_of(points: Sequence[MetricPoint], spans: Sequence[SpanRecord]) -> list[tuple[str, dict[str, Any]]]:
    """(signal, OTLP/JSON request) for the rows, exactly as the exporter encodes them (no batch id)."""
    from otel_expansion.otlp.encode import metrics_request, to_dict, traces_request

    out: list[tuple[str, dict[str, Any]]] = []
    if spans:
        out.append(("traces", to_dict(traces_request(spans))))
    if points:
        out.append(("metrics", to_dict(metrics_request(points))))
    return out


def emit(points: Sequence[MetricPoint], spans: Sequence[SpanRecord], where: str = "recorded",
         full: bool = True) -> None:
    """Print the rows to stderr and log them at DEBUG: a summary, or (``full``) readable OTLP/JSON."""
    requests = requests_of(points, spans)
    if full:
        text = ""
        for signal, request in requests:
            count = len(spans) if signal == "traces" else len(points)
            unit = "spans" if signal == "traces" else "metric points"
            text += f"{PREFIX} {where} {signal}: {count} {unit}, as they will be sent (OTLP/JSON)\n"
            text += json.dumps(request, indent=2, sort_keys=True) + "\n"
    else:
        text = "\n".join(summary(requests, where)) + "\n" if requests else ""
    if text:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except Exception:  # a closed stderr must not break the host
            pass
    for signal, request in requests:
        logger.debug("%s %s %s: %s", PREFIX, where, signal, json.dumps(request, sort_keys=True))


def _value(v: dict[str, Any]) -> str:
    if "arrayValue" in v:
        return "[" + ", ".join(_value(x) for x in v["arrayValue"].get("values", [])) + "]"
    return str(next(iter(v.values()), "")) if v else ""


def _attrs(items: list[dict[str, Any]]) -> str:
    return " ".join(f"{kv['key']}={_value(kv.get('value', {}))}" for kv in items)


def _quantity(value: float, unit: str) -> str:
    """A value with its unit, scaled for reading: seconds as ms below one, bytes as KiB/MiB."""
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.3g} ms"
    if unit == "By" and abs(value) >= 1024:
        return f"{value / 1048576:.1f} MiB" if abs(value) >= 1048576 else f"{value / 1024:.1f} KiB"
    if unit.startswith("{") and unit.endswith("}"):  # an annotation: {invocation} -> "1 invocation"
        word = unit[1:-1]
        return f"{value:g} {word}{'s' * (value != 1 and not word.endswith('s'))}"
    return f"{value:g} {unit}".rstrip()


def summary(requests: list[tuple[str, dict[str, Any]]], where: str = "recorded") -> list[str]:
    """One header line (naming the app: this is printed inside it), the resource once, then one line per
    span and per metric series."""
    spans = [sp for _, r in requests for rs in r.get("resourceSpans", []) for ss in rs.get("scopeSpans", [])
             for sp in ss.get("spans", [])]
    metrics = [(m, kind, dp) for _, r in requests for rm in r.get("resourceMetrics", [])
               for sm in rm.get("scopeMetrics", []) for m in sm.get("metrics", [])
               for kind in ("sum", "histogram", "exponentialHistogram", "gauge")
               for dp in m.get(kind, {}).get("dataPoints", [])]
    resource: list[dict[str, Any]] = next(
        (rs.get("resource", {}).get("attributes", []) for _, r in requests
         for rs in r.get("resourceSpans", []) + r.get("resourceMetrics", [])), [])
    app = next((_value(kv.get("value", {})) for kv in resource if kv.get("key") == "service.name"), "")
    out = [f"{app + ' telemetry' if app else PREFIX.rstrip(':')} (debug) {where}: {len(spans)} "
           f"span{'s' * (len(spans) != 1)}, {len(metrics)} metric point{'s' * (len(metrics) != 1)} "
           "(a summary; `otel-expansion debug on --otlp` (or the app's `telemetry debug on --otlp`) or "
           "OTEL_EXPANSION_DEBUG_JSON=1 prints the OTLP/JSON)"]
    if resource:
        out.append(f"  resource: {_attrs(resource)}")
    for sp in spans:
        ms = (int(sp.get("endTimeUnixNano", 0)) - int(sp.get("startTimeUnixNano", 0))) / 1e6
        status = "error" if sp.get("status", {}).get("code") in (2, "STATUS_CODE_ERROR") else "ok"
        events = len(sp.get("events", []))
        more = f", {events} event{'s' * (events != 1)}" if events else ""
        out.append(f"  span {sp.get('name', '')!r} {ms:.1f} ms {status}{more}: {_attrs(sp.get('attributes', []))}")
    for m, kind, dp in metrics:
        unit = str(m.get("unit", ""))
        if kind in ("sum", "gauge"):
            shown = _quantity(float(dp.get("asInt", dp.get("asDouble", 0))), unit)
        else:
            count = int(dp.get("count", 0))
            shown = f"{count} value{'s' * (count != 1)}, sum {_quantity(float(dp.get('sum', 0.0)), unit)}"
            if "min" in dp and "max" in dp and count > 1:
                shown += f", min {_quantity(float(dp['min']), unit)} max {_quantity(float(dp['max']), unit)}"
        attrs = _attrs(dp.get("attributes", []))
        out.append(f"  metric {m.get('name', '')} = {shown}" + (f" ({attrs})" if attrs else ""))
    return out


def parse_stream(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The (signal, request) blocks of a captured debug stream (tests, tools)."""
    decoder = json.JSONDecoder()
    out: list[tuple[str, dict[str, Any]]] = []
    pos = 0
    while True:
        at = text.find(PREFIX, pos)
        if at < 0:
            return out
        line_end = text.find("\n", at)
        header = text[at:line_end]
        pos = line_end + 1
        if "as they will be sent" not in header:
            continue
        signal = "traces" if " traces:" in header else "metrics"
        value, end = decoder.raw_decode(text, pos)
        out.append((signal, value))
        pos = end


class DebugSpool:
    """A spool whose ``add`` first shows what is added; everything else passes through unchanged.

    ``full`` prints OTLP/JSON instead of the summary (``debug_json``); ``where`` names what is shown.
    """

    def __init__(self, spool: Any, full: bool = False, where: str = "recorded") -> None:
        self._spool = spool
        self._full = full
        self._where = where

    def add(self, points: Sequence[MetricPoint], spans: Sequence[SpanRecord], *args: Any, **kwargs: Any) -> Any:
        try:
            emit(points, spans, self._where, self._full)
        except Exception as exc:  # the debug view must never cost the data
            logger.warning("otel-expansion: debug output failed: %s", exc)
        return self._spool.add(points, spans, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spool, name)
