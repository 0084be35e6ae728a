"""Reported percentiles against the true percentiles of generated populations, 10 us to 60 s.

Every value goes the real way: the SDK's histogram instrument through our views (base-2 exponential
aggregation, batch path), one collection per run (runs with narrow ranges settle on fine scales, wide ones
on coarse scales), the spool merging the runs' points by downscaling, the OTLP encoder, then both
backends: the embedded store (exponential rollup) and ClickHouse (chDB with the exporter's own
``otel_metrics_exponential_histogram`` DDL). Each reported p50/p95/p99 must be within 5% of the
nearest-rank quantile of the population (the ceil(q*n)-th smallest value) and inside [min, max].
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import report_from
from otel_expansion.backend.store import Store, open_readonly
from otel_expansion.config import Level
from otel_expansion.otlp import exponential
from otel_expansion.otlp.encode import metrics_request
from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM
from otel_expansion.privacy.redaction import Redactor
from otel_expansion.sdk.aggregation import ValueBatch
from otel_expansion.sdk.pipeline import Pipeline
from otel_expansion.sdk.staging import Staging
from otel_expansion.spool.merge import buckets_of
from otel_expansion.spool.store import Spool

from .chdb_loader import ChdbDatabase
from .conftest import ns

BOUND = 0.05
QUANTILES = {"p50_s": 0.5, "p95_s": 0.95, "p99_s": 0.99}


def true_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def populations(seed: int = 23) -> dict[str, list[float]]:
    """Named populations, each a command: the issue's cases plus the whole 10 us .. 60 s range."""
    rng = random.Random(seed)
    wide = [math.exp(rng.uniform(math.log(10e-6), math.log(60.0))) for _ in range(20_000)]
    wide += [10e-6, 60.0]  # both ends of the range, exactly
    tiny = [rng.gauss(22e-6, 2e-6) for _ in range(5_000)]
    service = [rng.lognormvariate(math.log(200e-6), 0.15) for _ in range(8_000)]
    mix = ([rng.gauss(0.010, 0.001) for _ in range(3_000)] + [rng.gauss(0.200, 0.01) for _ in range(4_000)]
           + [rng.gauss(1.0, 0.05) for _ in range(3_000)])
    slow = [rng.uniform(20.0, 60.0) for _ in range(2_000)]
    return {name: [max(v, 10e-6) for v in values]
            for name, values in {"wide": wide, "tiny": tiny, "service": service, "mix": mix, "slow": slow}.items()}


RESOURCE = {"service.name": "quant", "service.version": "1.0", "otel_expansion.installation.id": "i-1"}


def requests_through_the_pipeline(tmp_path: Path, pops: dict[str, list[float]]) -> list[Any]:
    """The populations recorded as many runs, merged in a real spool, encoded as OTLP requests."""
    rng = random.Random(5)
    spool = Spool.open(tmp_path / "spool.sqlite", max_bytes=200 * 2**20, max_age_s=10**10)  # 2024 data
    staging = Staging()
    t0 = ns(3, 9)
    run = 0
    for command, values in pops.items():
        order = sorted(values) if command == "wide" else list(values)  # wide: runs of narrow, then wider ranges
        i = 0
        while i < len(order):
            size = rng.randint(1, 700)
            chunk = order[i: i + size]
            i += size
            pipeline = Pipeline(RESOURCE, Level.BASIC, Redactor(), staging)
            histogram = pipeline.instruments["cli.command.duration"]
            attrs = {"cli.command.name": command, "cli.command.outcome": "success"}
            if run % 3 == 0:  # single records (the SDK's own path) and batches (the replay's) alike
                for v in chunk:
                    histogram.record(v, attrs)
            else:
                histogram.record(ValueBatch(chunk), attrs)
            pipeline.instruments["cli.command.invocations"].add(len(chunk), attrs)
            pipeline.collect(t0 + run * 10**6, t0 + run * 10**6 + 1000)
            pipeline.shutdown()
            points, _ = staging.take()
            assert spool.add(points)
            run += 1
    requests = []
    while (batch := spool.next_batch(max_points=100)) is not None:
        exp = [p for p in batch.points if p.key.kind == EXPONENTIAL_HISTOGRAM]
        assert exp or batch.points
        requests.append(metrics_request(batch.points, batch.id))
        spool.ack(batch.id)
    spool.close()
    return requests


@pytest.fixture(scope="module")
def pops() -> dict[str, list[float]]:
    return populations()


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, pops: dict[str, list[float]]) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("quantiles")
    requests = requests_through_the_pipeline(tmp, pops)
    chdb = ChdbDatabase()
    db = tmp / "b.sqlite"
    with Store(db) as store:
        for request in requests:
            store.write("metrics", flatten("metrics", request))
            chdb.load("metrics", request)
    sqlite = SQLiteEngine(open_readonly(db))
    yield {"embedded": sqlite, "clickhouse": chdb.engine(), "requests": requests}
    sqlite.close()
    chdb.close()


def test_requests_carry_exponential_histograms(engines: dict[str, Any]) -> None:
    """What is sent for durations is an OTLP ExponentialHistogram, no explicit-bucket histogram."""
    kinds = {(m.name, m.WhichOneof("data")) for r in engines["requests"] for rm in r.resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    assert ("cli.command.duration", "exponential_histogram") in kinds
    assert ("cli.command.duration", "histogram") not in kinds


@pytest.mark.parametrize("engine_name", ["embedded", "clickhouse"])
def test_reported_quantiles_within_5_percent_and_inside_min_max(
    engines: dict[str, Any], pops: dict[str, list[float]], engine_name: str
) -> None:
    report = report_from(engines[engine_name], Filter(), now_ns=ns(4))
    by_command = {c["command"]: c for c in report["commands"]}
    assert set(by_command) == set(pops)
    everything = [v for values in pops.values() for v in values]
    rows = [(name, by_command[name], values) for name, values in pops.items()]
    rows.append(("(all)", report["totals"], everything))
    for name, row, values in rows:
        assert row["invocations"] == len(values), name
        for key, q in QUANTILES.items():
            truth = true_quantile(values, q)
            got = row[key]
            assert got is not None, (name, key)
            assert min(values) <= got <= max(values), (name, key, got)
            assert abs(got - truth) / truth <= BOUND, (engine_name, name, key, got, truth)


def test_both_engines_report_the_same_durations(engines: dict[str, Any]) -> None:
    embedded = report_from(engines["embedded"], Filter(), now_ns=ns(4))
    fleet = report_from(engines["clickhouse"], Filter(), now_ns=ns(4))
    assert embedded["commands"] == fleet["commands"]
    assert {k: embedded["totals"][k] for k in QUANTILES} == {k: fleet["totals"][k] for k in QUANTILES}


def test_error_bound_holds_for_every_quantile_of_the_whole_range() -> None:
    """The bucket arithmetic alone: every percentile 1..99.9 of 10 us .. 60 s, merged from runs at
    different scales, is within relative_error(scale) <= 4.4% of the truth and inside [min, max]."""
    rng = random.Random(7)
    values = [math.exp(rng.uniform(math.log(10e-6), math.log(60.0))) for _ in range(30_000)]
    parts = [exponential.from_values(values[i: i + 3000], scale=rng.choice([3, 6, 12, 20]))
             for i in range(0, len(values), 3000)]
    merged = parts[0]
    for part in parts[1:]:
        merged = exponential.merge(merged, part)
    assert merged.total == len(values) and merged.scale >= 3
    assert exponential.relative_error(merged.scale) < 0.044
    lo, hi = min(values), max(values)
    for permille in range(10, 1000, 7):
        q = permille / 1000
        truth = true_quantile(values, q)
        got = exponential.quantile(merged, q, lo, hi)
        assert got is not None and lo <= got <= hi
        assert abs(got - truth) / truth <= exponential.relative_error(merged.scale) + 1e-12, q


def test_merge_is_exact_order_free_and_downscales_pairwise() -> None:
    rng = random.Random(11)
    chunks = [[math.exp(rng.uniform(-12, 4)) for _ in range(rng.randint(1, 500))] for _ in range(12)]
    hists = [exponential.from_values(c, scale=rng.choice([0, 2, 5, 9, 20])) for c in chunks]
    forward = hists[0]
    for h in hists[1:]:
        forward = exponential.merge(forward, h)
    backward = hists[-1]
    for h in reversed(hists[:-1]):
        backward = exponential.merge(h, backward)
    assert forward == backward
    everything = exponential.from_values([v for c in chunks for v in c], scale=forward.scale)
    assert forward == everything  # the same buckets as if every value had been recorded at that scale
    assert forward.total == sum(len(c) for c in chunks)


def test_spool_merges_runs_at_different_scales(tmp_path: Path) -> None:
    """Two runs of one series, one narrow (fine scale), one wide (coarse): one row, every count kept."""
    staging = Staging()
    spool = Spool.open(tmp_path / "s.sqlite", max_age_s=10**10)
    for values in ([0.001, 0.0011, 0.0012], [1e-5, 30.0, 0.5]):
        pipeline = Pipeline(RESOURCE, Level.BASIC, Redactor(), staging)
        pipeline.instruments["cli.command.duration"].record(ValueBatch(values), {"cli.command.name": "x"})
        pipeline.collect(ns(3), ns(3) + 1)
        pipeline.shutdown()
        points, _ = staging.take()
        assert spool.add(points)
    pending, _ = spool.pending()
    (point,) = [p for p in pending if p.key.name == "cli.command.duration"]
    spool.close()
    b = buckets_of(point)
    assert point.count == 6 and b.total == 6 and point.min == 1e-5 and point.max == 30.0
    for v in (0.001, 0.0011, 0.0012, 1e-5, 30.0, 0.5):
        assert b.counts[exponential.index_of(v, b.scale) - b.offset] >= 1


def test_accumulator_equals_pairwise_merges() -> None:
    """The report's accumulator (whole ranges added at once) gives exactly the pairwise merge's buckets."""
    rng = random.Random(3)
    for _ in range(200):
        hists = [exponential.from_values([math.exp(rng.uniform(-12, 5)) for _ in range(rng.randint(1, 50))]
                                         + ([0.0] if rng.random() < 0.2 else []), scale=rng.choice([-1, 0, 3, 5, 20]))
                 for _ in range(rng.randint(1, 8))]
        acc = exponential.Accumulator()
        for h in hists:
            acc.add(h)
        merged = hists[0]
        for h in hists[1:]:
            merged = exponential.merge(merged, h, max_size=1 << 30)
        assert acc.result() == merged


@pytest.mark.parametrize("max_size", [8, 40, exponential.MAX_SIZE])
def test_merge_all_equals_pairwise_merges(max_size: int) -> None:
    """The writer's many-at-once merge gives exactly the pairwise chain's buckets (scale included), with
    negative and zero values, inputs at other scales and sums wider than ``max_size`` (downscaled)."""
    rng = random.Random(max_size)
    for _ in range(300):
        hists = []
        for _ in range(rng.randint(1, 9)):
            values = [rng.choice((1, 1, 1, -1)) * math.exp(rng.uniform(-12, 5)) for _ in range(rng.randint(0, 40))]
            values += [0.0] * (rng.random() < 0.2)
            hists.append(exponential.from_values(values, max_size=max_size, scale=rng.choice([-1, 0, 3, 5, 20])))
        merged = hists[0]
        for h in hists[1:]:
            merged = exponential.merge(merged, h, max_size=max_size)
        assert exponential.merge_all(hists, max_size=max_size) == merged
        assert exponential.merge_all(hists[::-1], max_size=max_size) == merged


def test_one_pass_quantiles_equal_quantile_for_each() -> None:
    """The report's one-pass p50/p95/p99 (exponential.quantiles) are exactly quantile() of each, negative,
    zero and positive buckets, clamped or not."""
    rng = random.Random(13)
    for _ in range(2000):
        values = [math.exp(rng.uniform(-12, 5)) * rng.choice([1, 1, 1, -1]) for _ in range(rng.randint(1, 60))]
        values += [0.0] * rng.randint(0, 2)
        b = exponential.from_values(values, scale=rng.choice([0, 3, 8]))
        qs = [rng.random() for _ in range(4)] + [0.5, 0.95, 0.99, 0.001, 1.0]
        lo, hi = (min(values), max(values)) if rng.random() < 0.5 else (None, None)
        assert exponential.quantiles(b, qs, lo, hi) == [exponential.quantile(b, q, lo, hi) for q in qs]
