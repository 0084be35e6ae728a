"""Ingest stage by stage, in one process: what a row costs in the decoding worker and in the writer alone.

Run: ``python -m compileall -q otel_expansion && python benchmarks/bench_ingest_stages.py``

Why: the whole-server figures (``bench_backend.py``) follow the neighbours on a shared box far more than the
code; each stage here runs alone on the benchmark's own requests (the same gzip OTLP bodies ``bench_backend``
sends: half metrics requests, a delta sum and a base-2 exponential histogram per command; half traces requests
with fresh span ids), timed with ``time.thread_time``, so a change to one stage shows as that stage's CPU a row.

- worker: decompress, decode, flatten, content id, limits, downscale, rollup ahead, pack and pickle, per row of
  each signal (what ``decoding.prepare_packed`` does, step by step);
- writer alone: ``Store.write_group`` on the pre-decoded requests in groups (as the server's writer forms them),
  then ``upkeep``, into a fresh database; the CPU of every SQL statement type (through a timing wrapper of the
  connection) and the writer's Python (the rest).
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_backend as bb

from otel_expansion.backend import ingest, rollup
from otel_expansion.backend.decoding import prepare_packed
from otel_expansion.backend.limits import Limits, clip_resource
from otel_expansion.backend.store import Store
from otel_expansion.otlp.exponential import downscale

_STATEMENTS = ("INSERT INTO spans", "INSERT INTO metric_points", "INSERT INTO r_metric", "UPDATE r_exp",
               "INSERT INTO r_exp", "SELECT buckets FROM r_exp", "INSERT INTO span_keys", "FROM (VALUES", "COMMIT",
               "seen_batches", "INSERT INTO r_env", "sessions", "r_session", "SAVEPOINT", "RELEASE", "BEGIN")


class TimedConnection:
    """An sqlite3 connection whose execute/executemany CPU is summed per statement type."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.cpu: Counter[str] = Counter()

    @staticmethod
    def _kind(sql: str) -> str:
        text = " ".join(sql.split())
        return next((k for k in _STATEMENTS if k in text), text[:40])

    def execute(self, sql: str, *args: Any) -> Any:
        started = time.thread_time()
        try:
            return self._conn.execute(sql, *args)
        finally:
            self.cpu[self._kind(sql)] += time.thread_time() - started

    def executemany(self, sql: str, *args: Any) -> Any:
        started = time.thread_time()
        try:
            return self._conn.executemany(sql, *args)
        finally:
            self.cpu[self._kind(sql)] += time.thread_time() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def requests(rows: int, points: int, seed: int = 8) -> list[tuple[str, bytes, int]]:
    """(signal, gzip body, rows) as bench_backend.bench_ingest sends them."""
    rng = random.Random(seed)
    commands = [f"command-{i}" for i in range(max(1, points // 2))]
    templates = [bb._sender_requests(rng, b, time.time_ns() - b * 10**9, commands,
                                     [rng.randint(1, 20) for _ in commands], 0)[0] for b in range(10)]
    out = []
    for r in range(max(2, rows // points)):
        if r % 2 == 0:
            out.append(("metrics", templates[r // 2 % len(templates)], 2 * len(commands)))
        else:
            out.append(("traces", bb._fresh_traces(rng, r % 1000, time.time_ns() - rng.randrange(60 * 10**9),
                                                   commands, points), points))
    return out


def worker_stages(bodies: list[tuple[str, bytes, int]], limits: Limits) -> None:
    """Each of prepare_packed's steps, timed alone, per row of each signal."""
    for signal in ("metrics", "traces"):
        spent: Counter[str] = Counter()
        rows = 0
        for sig, body, _ in bodies:
            if sig != signal:
                continue
            started = time.thread_time()
            raw = ingest.decompress(body, "gzip")
            spent["decompress"] += time.thread_time() - started
            started = time.thread_time()
            message = ingest.decode(sig, raw, ingest.PROTOBUF)
            spent["decode"] += time.thread_time() - started
            started = time.thread_time()
            resources = ingest.flatten(sig, message)
            spent["flatten"] += time.thread_time() - started
            for resource in resources:
                rows += len(resource.spans) + len(resource.points)
                started = time.thread_time()
                resource.digest = ingest.content_id(resource)
                cut: Counter[str] = Counter()
                clip_resource(resource, limits, cut)
                resource.cut = dict(cut)
                spent["content id and limits"] += time.thread_time() - started
                started = time.thread_time()
                resource.exp = {key: downscale(b, rollup.ROLLUP_SCALE) for key, b in resource.exp.items()}
                spent["downscale"] += time.thread_time() - started
                started = time.thread_time()
                resource.rolled = rollup.roll_ahead(resource, limits)
                if resource.rolled is not None:
                    resource.exp = {}
                spent["rollup ahead"] += time.thread_time() - started
                started = time.thread_time()
                resource.pack()
                spent["pack"] += time.thread_time() - started
            started = time.thread_time()
            pickle.dumps(resources, pickle.HIGHEST_PROTOCOL)
            spent["pickle"] += time.thread_time() - started
        total = sum(spent.values())
        print(f"worker, {signal}: {total / rows * 1e6:.2f} us a row ("
              + ", ".join(f"{k} {v / rows * 1e6:.2f}" for k, v in spent.items()) + ")")


def writer_alone(bodies: list[tuple[str, bytes, int]], limits: Limits, group: int) -> None:
    """Store.write_group on the pre-decoded requests, ``group`` at a time, then upkeep; CPU per statement type."""
    prepared = [(sig, prepare_packed(sig, body, "gzip", ingest.PROTOBUF, limits, True)) for sig, body, _ in bodies]
    decoded = [(sig, pickle.loads(pickle.dumps(res, pickle.HIGHEST_PROTOCOL)), f"stage-{i}")
               for i, (sig, res) in enumerate(prepared)]  # as the server receives them from a worker
    rows = sum(n for _, _, n in bodies)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        store = Store(Path(tmp) / "writer.sqlite")
        timed = TimedConnection(store._conn)
        store._conn = timed  # type: ignore[assignment]
        wall, cpu = time.perf_counter(), time.thread_time()
        for i in range(0, len(decoded), group):
            for outcome in store.write_group(decoded[i:i + group], upkeep=False):
                if isinstance(outcome, Exception):
                    raise outcome
            store.upkeep()
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        store._conn = timed._conn
        store.close()
    sql = sum(timed.cpu.values())
    print(f"writer alone, groups of {group}: {cpu / rows * 1e6:.2f} us of CPU a row (SQLite {sql / rows * 1e6:.2f},"
          f" Python {(cpu - sql) / rows * 1e6:.2f}), wall {wall:.1f} s for {rows:,} rows")
    for kind, spent in timed.cpu.most_common(8):
        print(f"  {spent / rows * 1e6:5.2f} us a row  {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows (points plus spans) of requests")
    parser.add_argument("--points", type=int, default=200, help="points (or spans) per request")
    parser.add_argument("--group", type=int, default=3, help="requests per writer group (the server's at 8 senders)")
    args = parser.parse_args()
    limits = Limits()
    bodies = requests(args.rows, args.points)
    worker_stages(bodies, limits)
    writer_alone(bodies, limits, args.group)


if __name__ == "__main__":
    main()
