"""Issue 12 (7): the collector's OTLP/HTTP exporter drops a batch the backend refuses with 413, so its
batches are sized in bytes below the backend's body limit. Tested with the built collector."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.ingest import MAX_BODY_BYTES
from tests.export.servers import RecordedRequest, Reply, export_response, otlp_server

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "collector-config"
LIMIT = 1 << 20  # the stand-in backend's body limit (decompressed), like the embedded backend's 32 MiB


def limited(req: RecordedRequest) -> Reply:
    if len(req.body) > LIMIT:
        return Reply(413, {"Content-Type": "text/plain"}, b"body too large")
    return Reply(200, {"Content-Type": "application/x-protobuf"}, export_response(req.signal or "traces"))


def spans_request(n: int, payload: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    spans = [Span(trace_id=os.urandom(16), span_id=os.urandom(8), name="cmd", start_time_unix_nano=now,
                  end_time_unix_nano=now + 1, attributes=[KeyValue(key="blob", value=AnyValue(
                      string_value="x" * payload))]) for _ in range(n)]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
                                     ).SerializeToString()


def received_spans(requests: list[RecordedRequest]) -> int:
    return sum(len(ss.spans) for r in requests if r.signal == "traces" and len(r.body) <= LIMIT
               for rs in r.message().resource_spans for ss in rs.scope_spans)


def test_default_batches_stay_below_the_backend_limit() -> None:
    """The shipped configs cap a batch in bytes, 4x below the embedded backend's 32 MiB limit."""
    for name in ("otelcol.yaml", "edge-to-gateway.yaml"):
        text = (CONFIG_DIR / name).read_text()
        assert "sizer: bytes" in text
        assert "OTEL_EXPANSION_COLLECTOR_BATCH_MAX_BYTES:-8388608}" in text
    assert MAX_BODY_BYTES >= 8388608 * 4


def test_collector_never_sends_a_body_the_backend_refuses(collector: Any) -> None:
    """~3 MiB of large spans into the collector, whose exporter batch cap is set below a 1 MiB backend
    limit: every span arrives, and no request is answered 413 (which the exporter would drop)."""
    import urllib.request

    with otlp_server(limited) as backend:
        col = collector.start(backend.url, env={"OTEL_EXPANSION_COLLECTOR_BATCH_MAX_BYTES": str(LIMIT // 2),
                                                "OTEL_EXPANSION_COLLECTOR_BATCH_MIN_BYTES": str(LIMIT // 8)})
        sent = 0
        for _ in range(6):
            body = gzip.compress(spans_request(250, 2000))
            req = urllib.request.Request(col.otlp_http_url + "/v1/traces", data=body, method="POST", headers={
                "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200
            sent += 250
        deadline = time.monotonic() + 60
        while received_spans(backend.requests) < sent and time.monotonic() < deadline:
            if any(len(r.body) > LIMIT for r in backend.requests):
                break
            time.sleep(0.1)
        too_large = [len(r.body) for r in backend.requests if len(r.body) > LIMIT]
        assert too_large == []
        assert received_spans(backend.requests) == sent
