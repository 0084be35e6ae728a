"""The debug stream: every signal, as it enters the spool, printed the way it will leave the machine.

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


def emit(points: Sequence[MetricPoint], spans: Sequence[SpanRecord], where: str = "recorded") -> None:
    """Print the rows to stderr (readable JSON after a one-line header) and log them at DEBUG."""
    for signal, request in requests_of(points, spans):
        count = len(spans) if signal == "traces" else len(points)
        unit = "spans" if signal == "traces" else "metric points"
        header = f"{PREFIX} {where} {signal}: {count} {unit}, as they will be sent (OTLP/JSON)"
        text = json.dumps(request, indent=2, sort_keys=True)
        try:
            sys.stderr.write(f"{header}\n{text}\n")
            sys.stderr.flush()
        except Exception:  # a closed stderr must not break the host
            pass
        logger.debug("%s %s %s: %s", PREFIX, where, signal, json.dumps(request, sort_keys=True))


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
    """A spool whose ``add`` first shows what is added; everything else passes through unchanged."""

    def __init__(self, spool: Any) -> None:
        self._spool = spool

    def add(self, points: Sequence[MetricPoint], spans: Sequence[SpanRecord], *args: Any, **kwargs: Any) -> Any:
        try:
            emit(points, spans)
        except Exception as exc:  # the debug view must never cost the data
            logger.warning("otel-expansion: debug output failed: %s", exc)
        return self._spool.add(points, spans, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spool, name)
