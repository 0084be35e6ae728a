"""Shared by the debugging tests: run the command, decode what a receiver got, compare signal sets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, clean_env

SENDER_SIDE_HEALTH = frozenset({
    "otel_expansion.spool.dropped", "otel_expansion.export.attempts", "otel_expansion.export.failures",
    "otel_expansion.export.duration", "otel_expansion.sender.duration", "otel_expansion.sender.cpu_time",
    "otel_expansion.spool.size", "otel_expansion.journal.backlog",
})
"""Self-health the sender measures about itself at send time: not part of any run's debug stream."""


def ox(home: Path, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m otel_expansion ARGS --home HOME` as a real subprocess."""
    return subprocess.run([sys.executable, "-m", "otel_expansion", *args, "--home", str(home)],
                          env=clean_env(home, **env), capture_output=True, text=True, timeout=60, cwd=ROOT,
                          input=input)


def received(requests: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(signal, OTLP/JSON) of every request a test receiver got."""
    from otel_expansion.otlp.encode import to_dict

    return [(r.signal, to_dict(r.message())) for r in requests if r.signal in ("traces", "metrics")]


def _resource(rs: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    attrs = rs.get("resource", {}).get("attributes", [])
    return tuple(sorted((a["key"], repr(a["value"])) for a in attrs if a["key"] != "otel_expansion.batch.id"))


def _attrs(items: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((a["key"], repr(a["value"])) for a in items))


def flatten(blocks: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Spans by id (with resource and scope) and metric series with their values summed (a series' delta
    points merge into one before they are sent); the batch id attribute added on the wire is left out."""
    spans: dict[str, Any] = {}
    series: dict[Any, dict[str, Any]] = {}
    for signal, request in blocks:
        if signal == "traces":
            for rs in request.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        assert span["spanId"] not in spans, "a span appears twice"
                        spans[span["spanId"]] = (_resource(rs), ss.get("scope", {}).get("name"), span)
            continue
        for rm in request.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    for kind in ("sum", "histogram", "exponentialHistogram"):
                        for dp in m.get(kind, {}).get("dataPoints", []):
                            key = (_resource(rm), sm.get("scope", {}).get("name"), m["name"], kind,
                                   _attrs(dp.get("attributes", [])))
                            agg = series.setdefault(key, {"start": None, "end": 0, "value": 0.0, "count": 0,
                                                          "sum": 0.0, "buckets": None})
                            start, end = int(dp["startTimeUnixNano"]), int(dp["timeUnixNano"])
                            agg["start"] = start if agg["start"] is None else min(agg["start"], start)
                            agg["end"] = max(agg["end"], end)
                            if kind == "sum":
                                agg["value"] += float(dp.get("asInt", dp.get("asDouble", 0)))
                            else:
                                agg["count"] += int(dp.get("count", 0))
                                agg["sum"] = round(agg["sum"] + float(dp.get("sum", 0.0)), 9)
                                if kind == "exponentialHistogram":  # durations: scale and offsets vary by run
                                    continue
                                counts = [int(c) for c in dp.get("bucketCounts", [])]
                                agg["buckets"] = counts if agg["buckets"] is None else [
                                    a + b for a, b in zip(agg["buckets"], counts, strict=True)]
    return spans, series


def app_signals(blocks: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[Any, Any]]:
    spans, series = flatten(blocks)
    return spans, {k: v for k, v in series.items() if k[2] not in SENDER_SIDE_HEALTH}
