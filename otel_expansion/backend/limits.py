"""Ingest limits: how long a stored value may be and how many distinct values a dimension may hold.

Telemetry is untrusted input. One 1 MiB command name used to make the dashboard hang a browser, and an
app that puts a request id into ``cli.command.name`` would grow the rollups without bound. So at ingest:
- a grouping value (service, version, command, outcome, error type, label, environment value) longer
  than ``value_chars`` is cut to that length, with a trailing ``…`` (an error's stack signature, up to
  eight ``module:function`` frames, may hold ``signature_chars``);
- a raw row's attributes, events or body longer than ``raw_chars`` of JSON keep only their first
  ``value_chars`` characters per string value (and at most ``raw_chars`` in all);
- past ``distinct_values`` distinct values of one dimension in one app (``distinct_services`` apps in
  all), new values are stored as ``(other)``.
Every cut and every replacement is counted in the ``limits`` table, which the report shows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from otel_expansion.backend.ingest import ResourceData

__all__ = ["OTHER", "Limits", "clip_resource", "clip_value"]

OTHER = "(other)"
_ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Limits:
    value_chars: int = 256
    raw_chars: int = 16384
    distinct_values: int = 1000
    distinct_services: int = 200
    signature_chars: int = 1024


def clip_value(value: str | None, limits: Limits, counts: Counter[str], what: str) -> str:
    """A grouping value within ``value_chars`` ('' for missing); a cut is counted under ``what``."""
    if value is None:
        return ""
    if len(value) > limits.value_chars:
        counts[f"truncated {what}"] += 1
        return value[: limits.value_chars - 1] + _ELLIPSIS
    return value


def _shorten(node: Any, chars: int) -> Any:
    if isinstance(node, str):
        return node if len(node) <= chars else node[: chars - 1] + _ELLIPSIS
    if isinstance(node, list):
        return [_shorten(item, chars) for item in node]
    if isinstance(node, dict):
        return {str(_shorten(k, chars)): _shorten(v, chars) for k, v in node.items()}
    return node


def _clip_json(text: str, limits: Limits, counts: Counter[str], what: str) -> str:
    if len(text) <= limits.raw_chars:
        return text
    counts[f"truncated {what}"] += 1
    shortened = json.dumps(
        _shorten(json.loads(text), limits.value_chars), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    if len(shortened) > limits.raw_chars:  # too many keys: keep a marker instead of a broken document
        return json.dumps({"otel_expansion.truncated": len(text)})
    return shortened


def _long(limits: Limits, *values: str | None) -> bool:
    """Whether any value might need cutting (cheap pre-check: most rows are short)."""
    return max(map(len, filter(None, values)), default=0) > limits.value_chars  # in C: no Python per value


def clip_resource(resource: ResourceData, limits: Limits, counts: Counter[str]) -> None:
    """Apply the length limits to one decoded resource entry in place."""
    resource.attributes = {
        k: (clip_value(v, limits, counts, "resource attribute") if isinstance(v, str) else v)
        for k, v in resource.attributes.items()
    }
    resource.spans = [
        row._replace(
            name=clip_value(row.name, limits, counts, "span name"),
            status_message=clip_value(row.status_message, limits, counts, "status message"),
            attributes=_clip_json(row.attributes, limits, counts, "span attributes"),
            events=_clip_json(row.events, limits, counts, "span events"),
            command=clip_value(row.command, limits, counts, "command") if row.command is not None else None,
            outcome=clip_value(row.outcome, limits, counts, "outcome") if row.outcome is not None else None,
            error_type=(
                clip_value(row.error_type, limits, counts, "error type") if row.error_type is not None else None
            ),
            session_id=(
                clip_value(row.session_id, limits, counts, "session id") if row.session_id is not None else None
            ),
        )
        if _long(limits, row.attributes, row.events, row.name, row.status_message, row.command, row.error_type,
                 row.outcome, row.session_id)
        else row
        for row in resource.spans
    ]
    resource.points = [
        row._replace(
            name=clip_value(row.name, limits, counts, "metric name"),
            attributes=_clip_json(row.attributes, limits, counts, "point attributes"),
            command=clip_value(row.command, limits, counts, "command") if row.command is not None else None,
            outcome=clip_value(row.outcome, limits, counts, "outcome") if row.outcome is not None else None,
            error_type=(
                clip_value(row.error_type, limits, counts, "error type") if row.error_type is not None else None
            ),
        )
        if _long(limits, row.attributes, row.name, row.command, row.outcome, row.error_type)
        else row
        for row in resource.points
    ]
    resource.logs = [
        row._replace(
            body=_clip_json(row.body, limits, counts, "log body"),
            attributes=_clip_json(row.attributes, limits, counts, "log attributes"),
        )
        if _long(limits, row.body, row.attributes)
        else row
        for row in resource.logs
    ]
