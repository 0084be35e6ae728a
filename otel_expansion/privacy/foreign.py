"""What other instrumentations may send through us: an explicit allow-list, per level, with value rules.

Under ``opentelemetry-instrument`` contrib's instrumentations (urllib, requests, logging, click...) emit
spans and metrics of their own. Their attributes carry URLs, paths, queries, headers and whatever the
user typed, so they fail closed: a metric leaves only when its instrument is listed here for the level,
an attribute (of a metric or a span) only when its key is listed for the level and its value passes the
key's rule (a closed set of values, or a bounded integer); never a URL, path, query, header or user
value. Everything withheld is counted by the caller. Pure data and small functions, no imports.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

from otel_expansion.config import Level

__all__ = ["ATTRIBUTES", "METRICS", "attributes", "metric_allowed", "scope_name"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
                      "_OTHER"})
_BUILTIN_ERRORS = frozenset({
    "TimeoutError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError",
    "BrokenPipeError", "OSError", "ValueError", "RuntimeError", "KeyError", "TypeError", "_OTHER",
    "ReadTimeout", "ConnectTimeout", "SSLError", "HTTPError", "URLError", "timeout",
})


def _status(value: object) -> bool:
    return type(value) is int and 100 <= value <= 599


def _exit_code(value: object) -> bool:
    return type(value) is int and 0 <= value <= 255


def _error_type(value: object) -> bool:
    """An HTTP status code as text, or one of a few well-known exception class names."""
    if type(value) is not str:
        return False
    return (len(value) == 3 and value.isdigit() and 100 <= int(value) <= 599) or value in _BUILTIN_ERRORS


def _in(values: frozenset[str]) -> object:
    def rule(value: object) -> bool:
        return type(value) is str and value in values

    return rule


ATTRIBUTES: dict[str, tuple[Level, object, str]] = {
    "http.request.method": (Level.BASIC, _in(_METHODS), "an HTTP method, or `_OTHER`"),
    "http.method": (Level.BASIC, _in(_METHODS), "an HTTP method (older conventions)"),
    "http.response.status_code": (Level.BASIC, _status, "an integer 100-599"),
    "http.status_code": (Level.BASIC, _status, "an integer 100-599 (older conventions)"),
    "process.exit.code": (Level.ENHANCED, _exit_code, "an integer 0-255"),
    "error.type": (Level.ENHANCED, _error_type, "an HTTP status code or a well-known exception class name"),
    "url.scheme": (Level.ENHANCED, _in(frozenset({"http", "https"})), "`http` or `https`"),
    "http.scheme": (Level.ENHANCED, _in(frozenset({"http", "https"})), "`http` or `https` (older conventions)"),
    "network.protocol.name": (Level.ENHANCED, _in(frozenset({"http"})), "`http`"),
    "network.protocol.version": (Level.ENHANCED, _in(frozenset({"1.0", "1.1", "2", "2.0", "3"})),
                                 "`1.0`, `1.1`, `2` or `3`"),
    "http.flavor": (Level.ENHANCED, _in(frozenset({"1.0", "1.1", "2.0", "3.0"})), "an HTTP version"),
}
"""Attribute key -> (lowest level, value rule, what the rule admits)."""

METRICS: dict[str, Level] = {
    "http.client.duration": Level.BASIC,
    "http.client.request.duration": Level.BASIC,
    "http.client.request.size": Level.ENHANCED,
    "http.client.response.size": Level.ENHANCED,
    "http.client.request.body.size": Level.ENHANCED,
    "http.client.response.body.size": Level.ENHANCED,
}
"""Instruments of other instrumentations that may leave, from their level; all others are withheld."""


def metric_allowed(name: object, level: Level) -> bool:
    """Whether another instrumentation's metric ``name`` may leave at ``level``."""
    allowed = METRICS.get(name) if type(name) is str else None
    return allowed is not None and allowed <= level


def attributes(attrs: Mapping[str, object], level: Level) -> tuple[dict[str, object], int]:
    """The attributes of another instrumentation's metric point or span that may leave at ``level``,
    and how many were withheld."""
    kept: dict[str, object] = {}
    for key, value in attrs.items():
        spec = ATTRIBUTES.get(key)
        if spec is not None and spec[0] <= level and spec[1](value):  # type: ignore[operator]
            kept[key] = value
    return kept, len(attrs) - len(kept)


def scope_name(name: object) -> str:
    """A span of another instrumentation is named after its scope when that is an imported module's
    name (code, not a value); otherwise ``<span>``."""
    import sys

    if type(name) is str and name in sys.modules and name.isascii():
        return name
    return "<span>"
