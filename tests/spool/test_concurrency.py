"""Many real processes (and threads) on one spool file: exact totals, and no partial writes when killed."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from otel_expansion.otlp.model import HISTOGRAM, SUM, MetricPoint, SeriesKey, SpanRecord
from otel_expansion.spool.store import Spool

ROOT = Path(__file__).resolve().parents[2]

# Shared by the parent and the child processes (exec'd below), so both build identical keys.
PRELUDE = """
import os, sys, time
from pathlib import Path
from otel_expansion.otlp.model import HISTOGRAM, SUM, MetricPoint, SeriesKey, SpanRecord
from otel_expansion.spool.store import Spool
RES = (("service.name", "tool"),)
KEYS = [SeriesKey(RES, "s", "1", "runs", SUM, attributes=(("cmd", c),)) for c in ("a", "b", "c")]
HIST = SeriesKey(RES, "s", "1", "dur", HISTOGRAM, bounds=(1.0, 2.0))
def unit(i):
    t = time.time_ns()
    pts = [MetricPoint(KEYS[(i + j) % 3], t, t, value=1.0) for j in range(7)]
    pts.append(MetricPoint(HIST, t, t, count=1, sum=1.5, min=1.5, max=1.5, bucket_counts=(0, 1, 0)))
    return pts, [SpanRecord(RES, "s", "1", b"span-%d" % i, t)]
"""

WRITER = (
    PRELUDE
    + """
path, n, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with Spool.open(path, busy_timeout_ms=30000) as spool:
    print("ready", flush=True)
    i = 0
    while n < 0 or i < n:
        points, spans = unit(i)
        spool.add(points, spans, source_ids=[f"{tag}-{i}"])
        i += 1
"""
)


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def totals(path: Path) -> tuple[float, int, int, tuple[int, ...], int]:
    """(sum of counter values, histogram count, span rows, histogram buckets, ingested ids) from the file."""
    with Spool.open(path) as spool:
        points, spans = spool.pending(limit=1_000_000)
    value = sum(p.value for p in points if p.key.kind == SUM)
    hist = [p for p in points if p.key.kind == HISTOGRAM]
    assert len(hist) == 1 and len(points) == 4  # one row per series, whatever the interleaving
    with contextlib.closing(sqlite3.connect(path)) as conn:
        ingested = conn.execute("SELECT count(*) FROM ingested").fetchone()[0]
    return value, hist[0].count, len(spans), hist[0].bucket_counts, ingested


def integrity(path: Path) -> list[tuple[str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


def test_many_processes_give_exact_totals(tmp_path: Path) -> None:
    """24 processes adding at once to a file none of them created beforehand lose and duplicate nothing."""
    path = tmp_path / "home" / "spool.sqlite"
    procs, per_proc = 24, 40
    children = [run_python(WRITER, str(path), str(per_proc), f"w{w}") for w in range(procs)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    value, count, spans, buckets, ingested = totals(path)
    n = procs * per_proc
    assert (value, count, spans, buckets, ingested) == (7.0 * n, n, n, (0, n, 0), n)
    assert integrity(path) == [("ok",)]


def test_kill_dash_nine_leaves_only_whole_transactions(tmp_path: Path) -> None:
    """Writers SIGKILLed at random instants leave an intact file holding whole transactions only."""
    path = tmp_path / "spool.sqlite"
    rnd = random.Random(1234)
    started: list[subprocess.Popen[str]] = []
    try:
        survivor = run_python(WRITER, str(path), "-1", "w63")  # keeps writing while the others die
        started.append(survivor)
        assert survivor.stdout is not None and survivor.stdout.readline().strip() == "ready"
        for round_ in range(12):
            victim = run_python(WRITER, str(path), "-1", f"w{round_}")
            started.append(victim)
            assert victim.stdout is not None and victim.stdout.readline().strip() == "ready"
            time.sleep(rnd.uniform(0.0, 0.15))
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            assert victim.returncode == -signal.SIGKILL
    finally:
        for proc in started:  # never leave an endless writer behind, whatever failed above
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.communicate()
    assert integrity(path) == [("ok",)]
    value, count, spans, buckets, ingested = totals(path)
    assert spans > 0
    # Every committed transaction added 7 to the counters, 1 observation, 1 span and 1 record id.
    assert (value, count, buckets, ingested) == (7.0 * spans, spans, (0, spans, 0), spans)


def test_threads_share_one_handle(tmp_path: Path) -> None:
    """Threads using one Spool object concurrently are serialised and lose nothing."""
    res = (("service.name", "tool"),)
    key = SeriesKey(res, "s", "1", "runs", SUM)
    errors: list[BaseException] = []
    with Spool.open(tmp_path / "spool.sqlite") as spool:

        def work() -> None:
            try:
                for _ in range(200):
                    t = time.time_ns()
                    spool.add([MetricPoint(key, t, t, value=1.0)], [SpanRecord(res, "s", "1", b"x", t)])
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        points, spans = spool.pending(limit=10_000)
    assert errors == []
    assert [p.value for p in points] == [1600.0]
    assert len(spans) == 1600
