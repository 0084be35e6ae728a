"""Issue 12 (2): exactly once after 413 splits, whatever the order of splits, resets and retries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from otel_expansion.spool.model import SpanRecord
from otel_expansion.spool.store import Spool

pytestmark = pytest.mark.faults

RESOURCE = (("service.name", "demo"),)


def span(i: int) -> SpanRecord:
    return SpanRecord(RESOURCE, "otel_expansion", "0.1", i.to_bytes(4, "big") * 50, time.time_ns())


def test_split_parts_keep_their_ids_and_content(tmp_path: Path) -> None:
    """A split batch's parts are batches of their own: same id and same rows on every retry, in order."""
    with Spool.open(tmp_path / "spool.sqlite") as spool:
        spool.add(spans=[span(i) for i in range(10)])
        batch = spool.next_batch(max_spans=10)
        assert batch is not None
        parts = spool.split(batch.id, "traces")
        assert parts == (f"{batch.id}.t1", f"{batch.id}.t2")
        spool.add(spans=[span(99)])  # new data never joins a part
        seen = []
        for _ in range(2):  # a part retried comes back identical
            first = spool.next_batch()
            assert first is not None and first.id == parts[0]
            seen.append([s.data for s in first.spans])
        assert seen[0] == seen[1] == [span(i).data for i in range(5)]
        assert spool.split(parts[0], "traces") == (f"{parts[0]}.t1", f"{parts[0]}.t2")
        order = []
        while (b := spool.next_batch()) is not None:
            order.append((b.id, [int.from_bytes(s.data[:4], "big") for s in b.spans]))
            spool.ack(b.id)
        assert order == [(f"{parts[0]}.t1", [0, 1]), (f"{parts[0]}.t2", [2, 3, 4]), (parts[1], [5, 6, 7, 8, 9]),
                         (order[-1][0], [99])]


def test_rows_in_flight_are_never_evicted_alone(tmp_path: Path) -> None:
    """Over the cap, open rows go first; a reserved batch is never trimmed (its id would then stand for
    different content on the retry)."""
    with Spool.open(tmp_path / "spool.sqlite", max_bytes=256 * 1024) as spool:
        spool.add(spans=[span(i) for i in range(20)])
        batch = spool.next_batch(max_spans=20)
        assert batch is not None
        for i in range(600):
            spool.add(spans=[SpanRecord(RESOURCE, "s", "1", bytes(1000) + i.to_bytes(4, "big"), time.time_ns())])
        again = spool.next_batch()
        assert spool.counters().get("dropped.size", 0) > 0
        assert again is not None and again.id == batch.id and again.spans == batch.spans
