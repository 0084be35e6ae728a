"""The replay as it was before it was made linear: one SDK call per measurement, a tracer span per
command, every feature and exception scanned for every command. Kept only to prove the fast replay
exports exactly the same metrics and spans."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_expansion import config as levels
from otel_expansion.config import Level
from otel_expansion.sdk.pipeline import Pipeline, hour_of_week


def reference_ingest(self: Pipeline, body: Mapping[str, Any]) -> None:
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
            if "error.type" in attrs and cmd.get("sig") is not None:
                error_attrs["cli.error.signature"] = str(cmd["sig"])
            inst["cli.command.errors"].add(1, error_attrs)
        if cmd.get("cpu") is not None:
            inst["cli.command.cpu_time"].record(float(cmd["cpu"]), {"cli.command.name": name})
        if cmd.get("mem"):
            inst["cli.command.memory.peak"].record(int(cmd["mem"]), {"cli.command.name": name})
        if level >= levels.ACTIVITY:
            inst["cli.activity"].add(1, {"activity.hour_of_week": hour_of_week(start)})
        if level >= levels.SPANS:
            _span(self, cmd, name, attrs, start, end, code, (session_id, previous_id), features, exceptions)
            previous_id = None
    for feat in features:
        inst["cli.feature.usage"].add(1, {"feature.name": str(feat.get("name", ""))})
    for exc in exceptions:
        handled = {"error.type": str(exc.get("type", "")), "exception.handled": True}
        if exc.get("sig") is not None:
            handled["cli.error.signature"] = str(exc["sig"])
        inst["cli.exceptions.handled"].add(1, handled)
    for ended in body.get("sessions_ended") or ():
        inst["cli.session.duration"].record(float(ended["duration"]))
        inst["cli.session.commands"].record(int(ended["commands"]))
    if body.get("heartbeats"):
        inst["cli.session.heartbeats"].add(int(body["heartbeats"]))


def _span(self: Pipeline, cmd: Mapping[str, Any], name: str, attrs: dict[str, Any], start: int, end: int, code: int,
          session: tuple[object, object], features: list[Any], exceptions: list[Any]) -> None:
    exe = str(cmd.get("exe") or "")
    span_attrs: dict[str, Any] = dict(attrs)
    if "error.type" in attrs and cmd.get("sig") is not None:
        span_attrs["cli.error.signature"] = str(cmd["sig"])
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
        event = {"exception.type": attrs.get("error.type", ""), "exception.message": details.get("message", ""),
                 "exception.stacktrace": details.get("stack", "")}
        if "cli.error.signature" in span_attrs:
            event["cli.error.signature"] = span_attrs["cli.error.signature"]
        span.add_event("exception", event, timestamp=end)
    for exc in exceptions:
        t = int(exc.get("t", 0))
        if start <= t <= end and exc.get("message") is not None:
            event = {"exception.type": exc.get("type", ""), "exception.message": exc.get("message", ""),
                     "exception.stacktrace": exc.get("stack", ""), "exception.handled": True}
            if exc.get("sig") is not None:
                event["cli.error.signature"] = str(exc["sig"])
            span.add_event("exception", event, timestamp=t)
    if code != 0:
        span.set_status(Status(StatusCode.ERROR, attrs.get("error.type")))
    span.end(end_time=end)
