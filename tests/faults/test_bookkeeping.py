"""Issue 12 (1): the spool's bookkeeping (ingest marks of journal records) never evicts pending data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from otel_expansion.otlp.model import SUM, MetricPoint, SeriesKey
from otel_expansion.spool.store import Spool
from tests.conftest import temp_environ
from tests.faults.conftest import metric_total

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


def exit_path_runs(home: Path, n: int, level: str = "basic") -> list[dict[str, object]]:
    """``n`` real runs through init's exit path (recorder -> journal), returned as their journal records."""
    from otel_expansion import _runtime
    from otel_expansion.config import resolve
    from otel_expansion.journal import store as journal

    settings = resolve("volume", home=str(home), level=level, send=False, environ={})
    for _ in range(n):
        t = _runtime.Telemetry(settings)
        with t.command("deploy"):
            pass
        t.shutdown()
    return [journal.read(p) for p in journal.pending(str(home))]


@pytest.mark.slow
def test_every_run_is_delivered_at_volume(fast_dir: Path) -> None:
    """200,000 runs reach a healthy receiver as exactly 200,000 invocations; nothing is dropped, at a
    256 KiB spool cap (before the fix, every run after the first ~1,250 was evicted at that cap, and
    ~167,000 were the most a 20 MiB spool let through in 7 days). About 2 minutes on a quiet 2-core box;
    ``OTEL_EXPANSION_FAULTS_RUNS`` sets another count.

    The first runs go through the real exit path; the rest publish copies of their records with the
    same journal code (the sandbox's process_time() costs ~9 ms per run, which would make this an hour).
    Real sender rounds (journal -> SDK -> spool -> HTTP) run every 5,000 records.
    """
    from otel_expansion.journal import store as journal
    from otel_expansion.workers import sender
    from tests.export.servers import otlp_server

    runs = int(os.environ.get("OTEL_EXPANSION_FAULTS_RUNS", "200000"))
    home = fast_dir / "home"
    templates = exit_path_runs(home, 40)
    cap = 256 * 1024
    with otlp_server() as srv:
        with temp_environ(OTEL_EXPANSION_SPOOL_MAX_BYTES=str(cap)):
            settings = sender.settings_for(str(home), srv.url)
        assert settings.spool_max_bytes == cap
        published = len(templates)
        while published < runs:
            for _ in range(min(5000, runs - published)):
                journal.append(str(home), templates[published % len(templates)], time.time_ns())
                published += 1
            summary = sender.run_round(str(home), settings, force=True, lock_wait_s=30)
            assert summary.ok, summary.error
        summary = sender.run_round(str(home), settings, force=True, lock_wait_s=30)
        assert summary.ok and summary.pending_series == 0, summary
        counters = sender.open_spool(str(home), settings).counters()
        assert not [k for k in counters if k.startswith("dropped.")], counters
        assert metric_total(srv.requests, "cli.command.invocations") == runs
