"""Issue 12 (1): the spool's bookkeeping (ingest marks of journal records) never evicts pending data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from otel_expansion.spool.model import SUM, MetricPoint, SeriesKey
from otel_expansion.spool.store import Spool

pytestmark = pytest.mark.faults

RESOURCE = (("service.name", "demo"),)


def invocation(t: int) -> MetricPoint:
    key = SeriesKey(RESOURCE, "otel_expansion", "0.1", "cli.command.invocations", SUM, "{invocation}", "", ())
    return MetricPoint(key, t - 1000, t, value=1.0)


def test_ingest_marks_do_not_count_toward_the_cap(tmp_path: Path) -> None:
    """At the documented 64 KiB minimum cap, 3,000 ingested runs all stay pending and nothing is dropped.

    Before the fix each run's mark (kept 7 days) counted toward the cap and eviction removed only data,
    so at 64 KiB every run was evicted as it arrived.
    """
    with Spool.open(tmp_path / "spool.sqlite", max_bytes=65536) as spool:
        for i in range(3000):
            spool.add([invocation(time.time_ns())], source_ids=[f"{i:020d}-1-{os.urandom(4).hex()}.rec"])
        stats = spool.stats()
        points, _ = spool.pending()
    assert "dropped.size" not in stats.counters
    assert [p.value for p in points] == [3000.0]


def test_marks_are_bounded_by_the_journal_files_that_still_exist(tmp_path: Path) -> None:
    """A mark is needed only while its journal file could be replayed: retain/forget keep exactly those."""
    with Spool.open(tmp_path / "spool.sqlite") as spool:
        ids = [f"{i:020d}-1-ab.rec" for i in range(1200)]
        for chunk in (ids[:600], ids[600:]):
            spool.add([invocation(time.time_ns())], source_ids=chunk)
        assert spool.retain_sources(ids[1000:]) == 1000  # files 0..999 are gone: their marks go
        assert spool.seen(ids) == set(ids[1000:])
        spool.forget_sources(ids[1000:1100])
        assert spool.seen(ids) == set(ids[1100:])
        spool.add([invocation(time.time_ns())], source_ids=ids[1100:1101])  # still guarded: a duplicate
        assert spool.counters()["dropped.duplicate"] == 1
