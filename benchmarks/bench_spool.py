"""Spool benchmark: ingest rate, latency of one CLI run's add(), and footprint after many runs.

Run: ``python benchmarks/bench_spool.py [--runs 10000]``. Budgets (DESIGN.md): >= 50,000 events/s ingest;
one run's add well under 5 ms; the file bounded (default 20 MiB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from otel_expansion.otlp.model import HISTOGRAM, SUM, MetricPoint, SeriesKey, SpanRecord
from otel_expansion.spool.store import Spool

RESOURCE = (
    ("host.arch", "amd64"),
    ("os.type", "linux"),
    ("os.version", "6.8.0"),
    ("process.runtime.name", "cpython"),
    ("process.runtime.version", "3.11.9"),
    ("service.name", "mytool"),
    ("service.version", "1.4.2"),
    ("telemetry.distro.name", "otel-expansion"),
    ("telemetry.distro.version", "0.1.0"),
)
SCOPE = ("otel_expansion", "0.1.0")
DURATION_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMANDS = ("build", "test", "deploy", "lint")


def _hist(name: str, cmd: str, value: float, t: int) -> MetricPoint:
    key = SeriesKey(
        RESOURCE,
        *SCOPE,
        name,
        HISTOGRAM,
        unit="s",
        attributes=(("cli.command.name", cmd),),
        bounds=DURATION_BOUNDS,
    )
    buckets = [0] * (len(DURATION_BOUNDS) + 1)
    buckets[sum(1 for b in DURATION_BOUNDS if value > b)] = 1
    return MetricPoint(
        key, t - 10**8, t, count=1, sum=value, min=value, max=value, bucket_counts=tuple(buckets)
    )


def _counter(name: str, attrs: tuple[tuple[str, str], ...], t: int) -> MetricPoint:
    key = SeriesKey(RESOURCE, *SCOPE, name, SUM, unit="1", attributes=attrs)
    return MetricPoint(key, t - 10**8, t, value=1.0)


def one_run(i: int) -> tuple[list[MetricPoint], list[SpanRecord]]:
    """What one CLI invocation produces: ~10 points over a few series and one ~400-byte span."""
    t = time.time_ns()
    cmd = COMMANDS[i % len(COMMANDS)]
    outcome = "error" if i % 17 == 0 else "ok"
    attrs = (("cli.command.name", cmd), ("cli.command.outcome", outcome))
    points = [
        _counter("cli.command.invocations", attrs, t),
        _hist("cli.command.duration", cmd, 0.02 + (i % 50) / 100, t),
        _hist("process.cpu.time", cmd, 0.01 + (i % 30) / 200, t),
        _hist("process.memory.peak", cmd, 0.5 + (i % 7), t),
        _counter("cli.feature.usage", (("feature.name", f"flag-{i % 5}"),), t),
        _counter("cli.feature.usage", (("feature.name", f"flag-{(i + 1) % 5}"),), t),
        _counter("cli.activity", (("activity.hour_of_week", str(i % 168)),), t),
        _counter("cli.session.commands", (("cli.command.name", cmd),), t),
        _hist("cli.session.duration", cmd, 1.0 + (i % 9), t),
        _counter("cli.errors", (("error.type", "ValueError"),), t)
        if outcome == "error"
        else _counter("cli.command.ok", (("cli.command.name", cmd),), t),
    ]
    span = SpanRecord(RESOURCE, *SCOPE, os.urandom(16) + bytes(384), t)
    return points, [span]


def bench_ingest(path: Path, seconds: float) -> tuple[float, float]:
    """Points/s through add() in calls of 100 points over a few keys; then spans/s in calls of 100 spans."""
    t = time.time_ns()
    chunk = [
        _counter("cli.command.invocations", (("cli.command.name", COMMANDS[j % 4]),), t) for j in range(50)
    ]
    chunk += [_hist("cli.command.duration", COMMANDS[j % 4], j / 100, t) for j in range(50)]
    with Spool.open(path) as spool:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            spool.add(chunk)
            n += len(chunk)
        points_rate = n / (time.perf_counter() - start)
        spans = [SpanRecord(RESOURCE, *SCOPE, bytes(400), t) for _ in range(100)]
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            spool.add(spans=spans)
            n += len(spans)
        spans_rate = n / (time.perf_counter() - start)
        spool.clear()
    return points_rate, spans_rate


def bench_run_latency(path: Path, samples: int) -> list[float]:
    """Seconds per add() of one run's data on an existing, warmed file (each sample a fresh handle's add)."""
    with Spool.open(path) as spool:
        for i in range(200):
            spool.add(*one_run(i))
    times = []
    with Spool.open(path) as spool:
        for i in range(samples):
            points, spans = one_run(i)
            start = time.perf_counter()
            spool.add(points, spans)
            times.append(time.perf_counter() - start)
    return times


def bench_footprint(path: Path, runs: int, with_spans: bool) -> tuple[int, int, int, float]:
    """Rows and bytes on disk after ``runs`` simulated runs, each its own add() (as a sender would)."""
    with Spool.open(path) as spool:
        start = time.perf_counter()
        for i in range(runs):
            points, spans = one_run(i)
            spool.add(points, spans if with_spans else ())
        elapsed = time.perf_counter() - start
        stats = spool.stats()
    return stats.series, stats.spans, stats.bytes_on_disk, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="simulated runs for the footprint")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each ingest measurement")
    parser.add_argument("--samples", type=int, default=200, help="samples for one run's add() latency")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-spool-") as tmp:
        d = Path(tmp)
        points_rate, spans_rate = bench_ingest(d / "ingest.sqlite", args.seconds)
        print(f"ingest: {points_rate:,.0f} points/s (add() of 100 points, 8 keys); {spans_rate:,.0f} spans/s")

        times = sorted(bench_run_latency(d / "latency.sqlite", args.samples))
        median = statistics.median(times) * 1e3
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))] * 1e3
        print(f"one run's add() (10 points, 1 span), existing file: median {median:.3f} ms, p95 {p95:.3f} ms")

        for label, with_spans in (("metrics + spans", True), ("metrics only", False)):
            series, spans, size, elapsed = bench_footprint(
                d / f"runs-{with_spans}.sqlite", args.runs, with_spans
            )
            print(
                f"after {args.runs:,} runs ({label}): {series} series rows, {spans:,} span rows, "
                f"{size / 2**20:.2f} MiB on disk (db + wal + shm); {args.runs / elapsed:,.0f} runs/s"
            )


if __name__ == "__main__":
    main()
