"""The sender's delivery decisions against the in-memory Transport: fast, exact, no sockets.

413 splits, Retry-After, partial success and persisted backoff, each checked request by request.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from otel_expansion.config.otlp import otlp_config_from_env
from otel_expansion.export.delivery import Delivery, SendSummary
from otel_expansion.export.transport import MemoryTransport, Outcome, SendResult, SentRequest
from otel_expansion.otlp.model import SpanRecord
from otel_expansion.spool.store import Spool

RESOURCE = (("service.name", "demo"),)
CONFIG = otlp_config_from_env({}, endpoint="http://127.0.0.1:9")


def span(i: int, size: int = 100) -> SpanRecord:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    data = Span(trace_id=i.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="x" * size,
                start_time_unix_nano=1, end_time_unix_nano=2).SerializeToString()
    return SpanRecord(RESOURCE, "otel_expansion", "0.1", data, time.time_ns())


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    s = Spool.open(tmp_path / "spool.sqlite")
    s.add(spans=[span(i) for i in range(8)])
    return s


def send(spool: Spool, transport: MemoryTransport, persist: bool = False) -> SendSummary:
    summary = SendSummary()
    Delivery(spool, transport, CONFIG, deadline=time.monotonic() + 10, max_spans=512, persist=persist).run(summary)
    return summary


def stored(transport: MemoryTransport) -> int:
    """Spans a receiver de-duplicating by (batch id, body digest) would have stored."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    unique: dict[tuple[str, str], SentRequest] = {}
    for d in transport.accepted:
        unique.setdefault((d.batch_id, hashlib.sha256(d.body).hexdigest()), d)
    return sum(len(ss.spans) for d in unique.values()
               for rs in ExportTraceServiceRequest.FromString(d.body).resource_spans for ss in rs.scope_spans)


def too_large_over(limit: int) -> object:
    def answer(d: SentRequest) -> SendResult:
        return SendResult(Outcome.TOO_LARGE, status=413) if len(d.body) > limit else SendResult(Outcome.SUCCESS, 200)

    return answer


def test_413_splits_into_parts_with_their_own_ids(spool: Spool) -> None:
    """A 413 turns the refused signal into two parts with derived ids; every span is delivered once."""
    transport = MemoryTransport(SendResult(Outcome.TOO_LARGE, status=413))
    summary = send(spool, transport)
    assert summary.ok and summary.spans_sent == 8
    first, *parts = [d.batch_id for d in transport.requests]
    assert parts == [f"{first}.t1", f"{first}.t2"]
    assert stored(transport) == 8 and spool.stats().spans == 0


def test_reset_after_a_split_resends_the_same_part(spool: Spool) -> None:
    """A part whose reply was lost is resent with the same id and bytes, so it is stored once."""
    transport = MemoryTransport()
    transport.script = [SendResult(Outcome.TOO_LARGE, status=413), transport.reset_after_storing()]
    assert not send(spool, transport).ok  # the background round stops at the transient failure
    assert send(spool, transport).ok
    ids = [d.batch_id for d in transport.requests]
    assert ids[1] == ids[2] and transport.requests[1].body == transport.requests[2].body
    assert stored(transport) == 8 and len(transport.accepted) == 3  # t1 twice (the receiver keeps one), t2


def test_a_single_item_too_large_is_dropped_and_counted(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool.sqlite") as spool:
        spool.add(spans=[span(1), span(2, size=5000)])
        transport = MemoryTransport(default=too_large_over(2000))  # type: ignore[arg-type]
        summary = send(spool, transport)
        assert summary.spans_sent == 1 and spool.counters()["dropped.too_large"] == 1
        assert spool.stats().spans == 0


def test_retry_after_sets_the_persisted_backoff(spool: Spool) -> None:
    transport = MemoryTransport(SendResult(Outcome.RETRY, status=503, retry_after_s=120.0))
    summary = send(spool, transport)
    assert not summary.ok and summary.retry_at is not None and summary.retry_at >= time.time() + 119
    assert spool.get_state("backoff.failures") == "1"
    assert send(spool, MemoryTransport(SendResult(Outcome.RETRY, status=503))).retry_at is not None
    assert spool.get_state("backoff.failures") == "2"  # persisted: the next round backs off longer
    assert send(spool, MemoryTransport()).ok and spool.get_state("backoff.failures") == "0"


def test_partial_success_is_counted(spool: Spool) -> None:
    summary = send(spool, MemoryTransport(SendResult(Outcome.SUCCESS, status=200, rejected=3)))
    assert summary.ok and summary.rejected == 3 and summary.spans_sent == 8
