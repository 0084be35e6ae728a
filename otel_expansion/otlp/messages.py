"""The OTLP collector-service message classes per signal, in one place.

Used by the transport (reading partial success) and by the embedded backend (decoding requests,
answering with responses). Classes load on first use: the generated protobuf modules are not free.
"""

from __future__ import annotations

import importlib
from typing import Any

SIGNALS = ("traces", "metrics", "logs")

# signal -> (module under opentelemetry.proto.collector, message prefix, rejected field, its JSON name)
_MESSAGES = {
    "traces": ("trace.v1.trace_service_pb2", "ExportTraceService", "rejected_spans", "rejectedSpans"),
    "metrics": ("metrics.v1.metrics_service_pb2", "ExportMetricsService", "rejected_data_points",
                "rejectedDataPoints"),
    "logs": ("logs.v1.logs_service_pb2", "ExportLogsService", "rejected_log_records", "rejectedLogRecords"),
}


def _message(signal: str, kind: str) -> Any:
    try:
        module_name, prefix, _, _ = _MESSAGES[signal]
    except KeyError:
        raise ValueError(f"unknown signal {signal!r}") from None
    module = importlib.import_module("opentelemetry.proto.collector." + module_name)
    return getattr(module, prefix + kind)


def request_class(signal: str) -> Any:
    """``Export*ServiceRequest`` for ``signal`` (ValueError for an unknown signal)."""
    return _message(signal, "Request")


def response_class(signal: str) -> Any:
    """``Export*ServiceResponse`` for ``signal`` (ValueError for an unknown signal)."""
    return _message(signal, "Response")


def rejected_field(signal: str) -> tuple[str, str]:
    """The partial-success counter of ``signal``: (protobuf field name, OTLP/JSON key)."""
    _, _, field, json_key = _MESSAGES[signal]
    return field, json_key
