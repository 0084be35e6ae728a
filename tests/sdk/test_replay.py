"""The linear replay exports exactly what the per-command replay exported, and costs O(1) per command."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_expansion.config import Level
from otel_expansion.privacy.redaction import Redactor
from otel_expansion.sdk.pipeline import Pipeline
from otel_expansion.sdk.staging import Staging, StagingSpanExporter
from otel_expansion.sdk.timeline import Timeline
from otel_expansion.spool.store import Spool
from tests.sdk.reference import reference_ingest

RESOURCE = {"service.name": "svc", "service.version": "1.0"}
T0 = 1_764_480_000 * 10**9  # a Sunday evening, UTC
SIGNATURES = ("__main__:main > app.sync:pull", "__main__:main > app.sync:pull > json", "app.db:<dynamic>")


def bodies(seed: int, n_bodies: int = 4, per_body: int = 300) -> list[dict[str, Any]]:
    """Recorded bodies as the recorder drains them: commands, features during and between them,
    handled exceptions, failures with and without an error type, the session fields."""
    rng = random.Random(seed)
    out = []
    t = T0
    for b in range(n_bodies):
        commands, features, exceptions = [], [], []
        for _ in range(per_body):
            start = t + rng.randrange(1, 5_000_000)
            end = start + rng.randrange(0, 3 * 10**9)
            for _ in range(rng.choice((0, 0, 1, 2))):
                features.append({"name": rng.choice(("export", "import", "sync")),
                                 "t": rng.randrange(start, end + 1),
                                 **({"attrs": {"format": rng.choice(("csv", "json")), "rows": rng.randrange(9)}}
                                    if rng.random() < 0.5 else {})})
            if rng.random() < 0.1:
                exceptions.append({"type": rng.choice(("ValueError", "KeyError")), "t": rng.randrange(start, end + 1),
                                   "command": "x", **({"message": "bad value", "stack": "a.py:1 in f"}
                                                      if rng.random() < 0.5 else {}),
                                   **({"sig": rng.choice(SIGNATURES)} if rng.random() < 0.5 else {})})
            code = rng.choice((0, 0, 0, 1, 2))
            cmd: dict[str, Any] = {"name": rng.choice(("deploy", "remote add", "status")), "exe": "svc",
                                   "start": start, "end": end, "exit": code,
                                   "cpu": rng.random() / 100, "mem": rng.choice((30_000_000, 31_000_000, 2**33 + 1))}
            if code:
                cmd["error"] = rng.choice(("ValueError", "mod.Oops", str(code)))
                if not cmd["error"].isdigit() and rng.random() < 0.7:
                    cmd["sig"] = rng.choice(SIGNATURES)
                if rng.random() < 0.5:
                    cmd["exception"] = {"message": "it broke", "stack": "m.py:3 in g"}
            if rng.random() < 0.3:
                cmd["args"] = ("--force", "-v")
            commands.append(cmd)
            t = end + rng.randrange(0, 2 * 60 * 10**9)  # crosses hours of the week
            if rng.random() < 0.05:
                features.append({"name": "idle", "t": t - 1})  # between commands: counted, on no span
        body: dict[str, Any] = {"commands": commands, "features": features, "exceptions": exceptions,
                                "session": "0123456789abcdef0123456789abcdef"}
        if b == 0:
            body["session_previous"] = "fedcba9876543210fedcba9876543210"
            body["sessions_ended"] = [{"id": "x", "duration": 12.5, "commands": 7}]
        if b == 1:
            body["heartbeats"] = 2
            features.reverse()  # a clock that stepped back: items out of time order
        out.append(body)
    return out


def exported(level: Level, items: list[dict[str, Any]], fast: bool) -> tuple[list[Any], list[Any]]:
    staging = Staging()
    if fast:
        pipeline = Pipeline(RESOURCE, level, Redactor(), staging)
    else:
        pipeline = Pipeline(RESOURCE, level, Redactor(), staging,
                            span_processor=SimpleSpanProcessor(StagingSpanExporter(staging)), batched=False)
    for body in items:
        body = dict(body, level=int(level))
        if fast:
            pipeline.ingest(body)
        else:
            reference_ingest(pipeline, body)
    pipeline.collect(T0, T0 + 10**12)
    points, spans = staging.take()
    rows = sorted((p.key.name, p.key.attributes, p.key.bounds, p.value, p.count, p.sum, p.min, p.max,
                   p.bucket_counts, p.scale, p.offset, p.zero_count, p.negative_counts, p.start_ns, p.time_ns,
                   p.key.resource, p.key.unit) for p in points)
    decoded = []
    for s in spans:
        msg = trace_pb2.Span()
        msg.ParseFromString(s.data)
        msg.ClearField("trace_id")
        msg.ClearField("span_id")
        decoded.append((s.resource, s.scope_name, s.scope_version, s.end_ns, msg))
    return rows, decoded


@pytest.mark.parametrize("level", [Level.BASIC, Level.ENHANCED, Level.FULL])
def test_fast_replay_exports_exactly_what_the_per_command_replay_did(level: Level) -> None:
    items = bodies(seed=int(level))
    fast_points, fast_spans = exported(level, items, fast=True)
    ref_points, ref_spans = exported(level, items, fast=False)
    assert fast_points == ref_points  # every value bit for bit: sums in the same order
    assert len(fast_spans) == len(ref_spans) == (0 if level == Level.BASIC else 4 * 300)
    assert fast_spans == ref_spans
    if level == Level.FULL:
        assert sum(len(s[4].events) for s in fast_spans) > 300  # the comparison covered span events


def test_timeline_finds_items_by_time_in_their_own_order() -> None:
    items = [{"t": 5}, {"t": 1}, {"t": 5}, {"t": 9}, {"t": 3}]
    tl = Timeline(items)
    assert list(tl.between(3, 5)) == [0, 2, 4]
    assert list(tl.between(6, 8)) == []
    assert list(Timeline([{"t": 1}, {"t": 2}]).between(0, 10)) == [0, 1]


def replay_cpu(level: Level, n: int, spool_dir: Path) -> float:
    """CPU seconds to replay n commands (one feature each) recorded as one body and store the result in a
    spool, as the export thread does (replay, staging, spool write)."""
    commands, features = [], []
    for i in range(n):
        start = T0 + i * 20_000
        commands.append({"name": "job", "exe": "svc", "start": start, "end": start + 10_000, "exit": 0,
                         "cpu": 0.00001, "mem": 30_000_000})
        features.append({"name": "step", "t": start + 5_000})
    body = {"commands": commands, "features": features, "exceptions": [], "level": int(level),
            "session": "0123456789abcdef0123456789abcdef"}
    staging = Staging()
    pipeline = Pipeline(RESOURCE, level, Redactor(), staging)
    spool = Spool.open(spool_dir / f"{level}-{n}-{time.perf_counter_ns()}.sqlite", max_bytes=1 << 30)
    try:
        t0 = time.process_time()
        pipeline.ingest(body)
        pipeline.collect()
        points, spans = staging.take()
        spool.add(points, spans)
        return time.process_time() - t0
    finally:
        spool.close()


@pytest.mark.parametrize("level", [Level.ENHANCED, Level.FULL])
def test_replay_cost_grows_linearly(level: Level, tmp_path: Path) -> None:
    """16x the commands in one body costs about 16x the CPU to replay and store (the old replay: ~256x).
    A ratio, with slack for a noisy machine; best of three at each size."""
    replay_cpu(level, 500, tmp_path)  # warm caches and imports
    small = min(replay_cpu(level, 1_000, tmp_path) for _ in range(3))
    large = min(replay_cpu(level, 16_000, tmp_path) for _ in range(3))
    assert large / small < 16 * 2.5, (small, large)


DAY = 86_400 * 10**9


def test_replay_gives_one_point_per_series_and_utc_day_and_loses_nothing(tmp_path: Path) -> None:
    """Records whose 1,200 commands run from 05:20 UTC across midnight (one record holds both days), replayed
    at once: every point's window lies inside one UTC day, each day counts exactly the commands that ended on
    it, and the totals, features, ended sessions and spans are those of a single replay of the same records
    (was: one point per series from the first command to the last, filed under the last day)."""
    from otel_expansion.config import resolve
    from otel_expansion.sdk.replay import Replayer, by_day

    items = [dict(b, level=int(Level.FULL), resource=RESOURCE) for b in bodies(seed=7)]
    ends = [int(c["end"]) for b in items for c in b["commands"]]
    days = sorted({e // DAY for e in ends})
    assert len(days) == 2 and any(len(by_day(b)) == 2 for b in items)  # the data crosses midnight
    points, spans = Replayer(resolve("svc", environ={}, home=str(tmp_path), level=Level.FULL)).replay(items)
    per_day: dict[int, float] = {}
    totals: dict[tuple[str, Any], float] = {}
    for p in points:
        day = p.time_ns // DAY
        assert p.start_ns // DAY == day and p.start_ns <= p.time_ns, p.key.name
        if p.key.name == "cli.command.invocations":
            per_day[day] = per_day.get(day, 0) + p.value
        totals[(p.key.name, p.key.attributes)] = totals.get((p.key.name, p.key.attributes), 0) + (
            p.value if p.key.kind == "sum" else p.count)
    assert per_day == {d: sum(1 for e in ends if e // DAY == d) for d in days}
    whole, whole_spans = exported(Level.FULL, items, fast=True)  # one collection: the totals to match
    expected: dict[tuple[str, Any], float] = {}
    for row in whole:
        name, attrs, value, count = row[0], row[1], row[3], row[4]
        expected[(name, attrs)] = expected.get((name, attrs), 0) + (count or value)
    assert totals == expected
    assert len(spans) == len(whole_spans) == len(ends)
