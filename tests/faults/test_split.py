"""Issue 12 (2): exactly once after 413 splits, whatever the order of splits, resets and retries."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from otel_expansion.spool.model import SpanRecord
from otel_expansion.spool.store import Spool
from tests.faults.conftest import backend_counts, embedded_backend, faulty_proxy
from tests.faults.test_bookkeeping import exit_path_runs

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


FAULTS = ("413", "reset_after", "reset_before", "503")
ORDERS = [list(order) for order in itertools.permutations(FAULTS)] + [
    ["413", "413", "413", "reset_after", "reset_after"],
    ["reset_after", "413", "reset_after", "413", "reset_after", "413"],
    ["413", "reset_after", "413", "reset_before", "413", "reset_after", "503", "413"],
]
RUNS = 24


@pytest.mark.slow
def test_exactly_once_at_the_backend_in_every_order(tmp_path: Path) -> None:
    """24 runs (spans and metrics), delivered to the real embedded backend through a proxy that injects a
    413, resets before and after the body is stored, and a 503, in every order (plus nested splits): the
    backend ends with exactly 24 command spans and 24 invocations each time."""
    from otel_expansion.export import sender
    from otel_expansion.journal import store as journal

    source = tmp_path / "source"
    records = exit_path_runs(source, RUNS, level="enhanced")
    assert len(records) == RUNS
    failures = []
    for n, order in enumerate(ORDERS):
        home = tmp_path / f"home-{n}"
        for record in records:
            journal.append(str(home), record, time.time_ns())
        db = tmp_path / f"backend-{n}.sqlite"
        with embedded_backend(db) as url, faulty_proxy(url, order) as proxy:
            settings = sender.settings_for(str(home), proxy.url)
            for _ in range(40):
                summary = sender.run_round(str(home), settings, force=True)
                if summary.ok and summary.pending_spans == summary.pending_series == 0:
                    break
            counts = backend_counts(db)
        if counts != (RUNS, float(RUNS)):
            failures.append((order, counts, proxy.log))
    assert failures == []
