"""A run whose exit could not be observed reaches the wire as outcome ``unknown``: no exit code, never success."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.trace.v1 import trace_pb2

from otel_expansion.config import Level
from otel_expansion.privacy.redaction import Redactor
from otel_expansion.sdk.pipeline import Pipeline
from otel_expansion.sdk.staging import Staging

T0 = 1_764_480_000 * 10**9


def _replay(commands: list[dict[str, Any]]) -> tuple[list[Any], list[trace_pb2.Span]]:
    staging = Staging()
    pipeline = Pipeline({"service.name": "svc"}, Level.ENHANCED, Redactor(), staging)
    pipeline.ingest({"commands": commands, "features": [], "exceptions": [], "level": int(Level.ENHANCED)})
    pipeline.collect()
    points, records = staging.take()
    return points, [trace_pb2.Span.FromString(r.data) for r in records]


def _attrs(span: trace_pb2.Span) -> dict[str, Any]:
    return {a.key: getattr(a.value, str(a.value.WhichOneof("value"))) for a in span.attributes}


def test_unknown_outcome_has_no_exit_code() -> None:
    """Span and metrics say ``unknown``; no ``process.exit.code``; an error noted during the run is kept."""
    points, spans = _replay([
        {"name": "pyflakes", "exe": "pyflakes", "start": T0, "end": T0 + 10**6, "outcome": "unknown"},
        {"name": "calc", "exe": "calc", "start": T0, "end": T0 + 10**6, "outcome": "unknown",
         "error": "fire.core.FireError"},
        {"name": "ok", "exe": "ok", "start": T0, "end": T0 + 10**6, "exit": 0},
    ])
    by_name = {s.name: _attrs(s) for s in spans}
    assert by_name["pyflakes"]["cli.command.outcome"] == "unknown" and "process.exit.code" not in by_name["pyflakes"]
    assert "error.type" not in by_name["pyflakes"]
    assert by_name["calc"]["error.type"] == "fire.core.FireError" and "process.exit.code" not in by_name["calc"]
    assert by_name["ok"]["cli.command.outcome"] == "success" and by_name["ok"]["process.exit.code"] == 0
    invocations = {dict(p.key.attributes)["cli.command.name"]: dict(p.key.attributes)["cli.command.outcome"]
                   for p in points if p.key.name == "cli.command.invocations"}
    assert invocations == {"pyflakes": "unknown", "calc": "unknown", "ok": "success"}
    assert not [p for p in points if p.key.name == "cli.command.errors"]  # an unknown exit is not an error count
