"""``otel-expansion show``: a summary of what is pending (not sent yet); the recently-sent history with ``--sent``;
every item with ``--detail``; OTLP/JSON with ``--json``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from otel_expansion.cli.common import (
    EXIT_OK,
    add_json,
    add_target,
    emit_json,
    find_home,
    fmt_time,
    parse_since,
    require_known,
    settings_for,
    spool_is_ours,
)
from otel_expansion.config import Settings, paths


def pending_data(s: Settings, since: float | None = None, signal: str | None = None,
                 limit: int = 1000) -> dict[str, Any]:
    """Journal records not converted yet, and the spool's pending data as OTLP/JSON requests."""
    from otel_expansion.journal import store as journal

    records: list[dict[str, Any]] = []
    for path in journal.pending(s.home)[:limit]:
        try:
            record: dict[str, Any] = dict(journal.read(path))
        except (journal.CorruptRecord, OSError) as exc:
            records.append({"unreadable": os.path.basename(path), "error": str(exc)})
            continue
        ends = [int(c.get("end", 0)) for c in record.get("commands") or ()]
        if since is not None and ends and max(ends) / 1e9 < since:
            continue
        records.append(record)
    out: dict[str, Any] = {"journal": records, "traces": {}, "metrics": {}}
    if spool_is_ours(s.home):
        from otel_expansion.otlp.encode import metrics_request, to_dict, traces_request
        from otel_expansion.spool.store import Spool

        spool = Spool.open_readonly(os.path.join(s.home, paths.SPOOL_FILE))  # a read command never writes
        try:
            points, spans = spool.pending(limit=limit)
        finally:
            spool.close()
        if since is not None:
            cut = int(since * 1e9)
            points = [p for p in points if p.time_ns >= cut]
            spans = [r for r in spans if r.end_ns >= cut]
        if signal in (None, "traces"):
            out["traces"] = to_dict(traces_request(spans))
        if signal in (None, "metrics"):
            out["metrics"] = to_dict(metrics_request(points))
    return out


def sent_data(home: str, since: float | None = None, signal: str | None = None) -> list[dict[str, Any]]:
    """The recently-sent history, oldest first, each with its decoded content."""
    from otel_expansion.export import history

    out = []
    for entry in history.entries(home, since, signal):
        item = entry.header()
        try:
            item["content"] = entry.content()
            # counted from what was sent, so an entry kept by an older version that missed a kind reads right
            item["items"] = items_of(str(item["signal"]), item["content"])
        except Exception as exc:  # an unreadable entry is shown as such, not fatal
            item["content"] = None
            item["error"] = f"could not decode: {exc}"
        out.append(item)
    return out


def spans_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for rs in request.get("resourceSpans", []) for ss in rs.get("scopeSpans", [])
            for span in ss.get("spans", [])]


def points_of(request: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    """(metric name, kind, data point, unit) for every point in a metrics request.

    A kind is any member of the metric that holds ``dataPoints`` (sum, gauge, histogram,
    exponentialHistogram, summary): no list of kinds to keep in step with the encoder, so none is left out.
    """
    out = []
    for rm in request.get("resourceMetrics", []):
        for sm in rm.get("scopeMetrics", []):
            for m in sm.get("metrics", []):
                for kind, body in m.items():
                    if isinstance(body, dict):
                        for dp in body.get("dataPoints", []):
                            out.append((m["name"], kind, dp, str(m.get("unit", ""))))
    return out


def items_of(signal: str, request: dict[str, Any]) -> int:
    """Spans, or metric data points of every kind, in one OTLP/JSON request."""
    return len(spans_of(request)) if signal == "traces" else len(points_of(request))


VALUE_KINDS = ("sum", "gauge")
"""Kinds whose point is one number; every other kind (the histograms) has a count, a sum, a min and a max."""


def quantity(value: float, unit: str) -> str:
    """A value with its unit, scaled for reading (the debug summary's words: ms, KiB/MiB, {invocation})."""
    from otel_expansion.sdk.debug import _quantity

    return _quantity(value, unit)


def _attrs(items: list[dict[str, Any]]) -> str:
    parts = []
    for kv in items:
        value = next(iter(kv.get("value", {}).values()), "")
        parts.append(f"{kv['key']}={value}")
    return ", ".join(parts)


def describe_span(span: dict[str, Any]) -> str:
    start, end = int(span.get("startTimeUnixNano", 0)), int(span.get("endTimeUnixNano", 0))
    status = "error" if span.get("status", {}).get("code") == 2 else "ok"
    return f"span {span.get('name', '')!r} {fmt_time(start / 1e9)} {(end - start) / 1e6:.1f} ms {status}"


def describe_point(name: str, kind: str, dp: dict[str, Any], unit: str = "") -> str:
    attrs = _attrs(dp.get("attributes", []))
    if kind in VALUE_KINDS:
        value = dp.get("asInt", dp.get("asDouble", 0))
        return f"{name} {{{attrs}}} = {value}"
    count, total = int(dp.get("count", 0)), float(dp.get("sum", 0.0))
    line = f"{name} {{{attrs}}} count={count} sum={quantity(total, unit)}"
    if count and "min" in dp and "max" in dp:
        line += f" min={quantity(float(dp['min']), unit)} max={quantity(float(dp['max']), unit)}"
    return line


def _grouped(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} x{n}" if n > 1 else key for key, n in counts.items())


def summarise_pending(p: dict[str, Any]) -> list[str]:
    """Pending data sized for a person: run records, spans and metric series grouped by name."""
    spans, points = spans_of(p["traces"]), points_of(p["metrics"])
    lines = [f"pending (not sent yet): {len(p['journal'])} run records not converted yet, "
             f"{len(spans)} spans, {len(points)} metric points"]
    runs: dict[str, int] = {}  # grouped by command and exit status, across records and within one (a
    for record in p["journal"]:  # long-running program's record holds many commands)
        commands = record.get("commands") or ()
        if not commands:
            key = str(record.get("unreadable", "no commands"))
            runs[key] = runs.get(key, 0) + 1
        for c in commands:
            key = f"{c.get('name')} (exit {c.get('exit')})"
            runs[key] = runs.get(key, 0) + 1
    if runs:
        lines.append(f"  run records: {_grouped(runs)}")
    by_span: dict[str, int] = {}
    for span in spans:
        status = "error" if span.get("status", {}).get("code") == 2 else "ok"
        key = f"{span.get('name', '')!r} {status}"
        by_span[key] = by_span.get(key, 0) + 1
    if by_span:
        lines.append(f"  spans: {_grouped(by_span)}")
    metrics: dict[str, list[dict[str, Any]]] = {}
    kinds: dict[str, tuple[str, str]] = {}
    for name, kind, dp, unit in points:
        metrics.setdefault(name, []).append(dp)
        kinds[name] = (kind, unit)
    for name, dps in metrics.items():
        series = f"{len(dps)} series" if len(dps) > 1 else "1 series"
        kind, unit = kinds[name]
        if kind in VALUE_KINDS:
            total = sum(float(dp.get("asInt", dp.get("asDouble", 0))) for dp in dps)  # OTLP/JSON int64: a string
            lines.append(f"  metric {name}: total {quantity(total, unit)} in {series}")
            continue
        count = sum(int(dp.get("count", 0)) for dp in dps)
        line = (f"  metric {name}: {count} value{'s' * (count != 1)}, "
                f"sum {quantity(sum(float(dp.get('sum', 0.0)) for dp in dps), unit)}")
        ranged = [dp for dp in dps if int(dp.get("count", 0)) and "min" in dp and "max" in dp]
        if ranged:
            line += (f", min {quantity(min(float(dp['min']) for dp in ranged), unit)}"
                     f" max {quantity(max(float(dp['max']) for dp in ranged), unit)}")
        lines.append(f"{line} in {series}")
    return lines


def render(data: dict[str, Any], detail: bool = False) -> list[str]:
    lines: list[str] = []
    if "pending" in data:
        p = data["pending"]
        if detail:
            spans, points = spans_of(p["traces"]), points_of(p["metrics"])
            lines.append(f"pending (not sent yet): {len(p['journal'])} run records not converted yet, "
                         f"{len(spans)} spans, {len(points)} metric points")
            for record in p["journal"]:
                cmds = ", ".join(f"{c.get('name')} (exit {c.get('exit')})" for c in record.get("commands") or ())
                lines.append(f"  run record: {cmds or record.get('unreadable', 'no commands')}")
            lines += [f"  {describe_span(span)}" for span in spans]
            lines += [f"  {describe_point(*pt)}" for pt in points]
        else:
            lines += summarise_pending(p)
    if "sent" in data:
        lines.append(f"recently sent: {len(data['sent'])} requests kept")
        for item in data["sent"]:
            content = item.get("content") or {}
            lines.append(f"  {fmt_time(item['time'])} {item['signal']} {item['items']} items, "
                         f"{item['wire_bytes']} bytes on the wire, batch {item['batch_id']} -> {item['endpoint']}")
            if not detail:
                continue
            if item["signal"] == "traces":
                lines += [f"    {describe_span(span)}" for span in spans_of(content)]
            else:
                lines += [f"    {describe_point(*pt)}" for pt in points_of(content)]
    elif "sent_kept" in data:
        kept = data["sent_kept"]
        lines.append(f"recently sent: {kept} request{'s' * (kept != 1)} kept"
                     + (" (`show --sent` lists them)" if kept else ""))
    return lines


def run(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    require_known(home, service, args)
    s = settings_for(home, service)
    since = parse_since(args.since)
    # JSON keeps its documented shape (both parts unless one is asked for); a person gets the pending
    # summary, and the sent history only when asked (--sent)
    pending = args.pending or not args.sent
    sent = args.sent or (args.json and not args.pending)
    data: dict[str, Any] = {}
    if pending:
        data["pending"] = pending_data(s, since, args.signal, args.limit)
    if sent:
        data["sent"] = sent_data(home, since, args.signal)
    if args.json:
        emit_json(data)
    else:
        if not sent and not args.pending:
            from otel_expansion.export import history

            data["sent_kept"] = len(history.entries(home, since, args.signal))
        print("\n".join(render(data, getattr(args, "detail", False))))
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_json(add_target(sub.add_parser("show", help="a summary of what is pending; --sent: what was sent")))
    p.add_argument("--pending", action="store_true", help="only what has not been sent yet")
    p.add_argument("--sent", action="store_true", help="the recently-sent history (with --pending: both)")
    p.add_argument("--detail", action="store_true", help="every record, span and metric point, one line each")
    p.add_argument("--signal", choices=("traces", "metrics"), help="only this signal")
    p.add_argument("--since", help="only data from this time on: 10m, 2h, 7d or 2026-11-30T10:00")
    p.add_argument("--limit", type=_positive, default=1000, help="most spans, points and records listed")
    p.set_defaults(func=run)


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


