"""Embedded backend benchmark: ingest from concurrent senders, and report latency at 100k-10M invocations.

Run: ``python -m compileall -q otel_expansion && python benchmarks/bench_backend.py [--sizes 100000,1000000]``
Budgets (DESIGN.md): report under 300 ms with 10M invocations stored, worst case; ingest >= 50k rows/s.

Ingest: ``otel-expansion backend serve`` runs as its own process; N sender threads POST real OTLP/protobuf
metric requests (each a batch of points for distinct series, every point with its own attributes) over
keep-alive connections for a fixed time.

Report latency: 10M requests through HTTP would take hours on a 2-core box, so the stored data is
generated in bulk, straight into the store's tables, with the store's own code paths: raw rows go into
``metric_points`` with ``executemany`` (two rows per invocation: a counter point of 1 and a duration
histogram point with one sample, so every invocation is its own point: the worst case), and the rollups
are folded with the same ``Rollup`` aggregation and upserts (``Store._flush``) ingest uses. The data
spans 90 days, 3 apps x 4 versions, 15 commands, 4 outcomes, 2,000 installations on 6 environments and
one session per 5 invocations; the number of groups is printed, since report time follows it.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from otel_expansion.backend.ingest import ResourceData
from otel_expansion.backend.limits import Limits
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import report_from
from otel_expansion.backend.rollup import (
    BUCKET_SLOTS,
    DAY_NS,
    DURATION,
    ENVIRONMENT_KEYS,
    INVOCATIONS,
    SESSION_BOUNDS,
    Rollup,
    bucket_of,
)
from otel_expansion.backend.store import Store, connect, open_readonly

DURATION_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0]
SERVICES = ("gitx", "dbtool", "deployer")
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0")
COMMANDS = tuple(f"command-{i}" for i in range(15))
OUTCOMES = (("success", ""), ("error", "ValueError"), ("error", "ConnectionError"), ("error", "TimeoutError"))
ENVS = [
    {"os.type": o, "host.arch": a, "process.runtime.version": r, "ci.detected": c, "container.detected": False}
    for o, a, r, c in (
        ("linux", "amd64", "3.11.9", False), ("linux", "amd64", "3.12.4", True),
        ("linux", "arm64", "3.12.4", False), ("darwin", "arm64", "3.12.4", False),
        ("windows", "amd64", "3.11.9", False), ("darwin", "amd64", "3.10.14", False),
    )
]
INSTALLATIONS = 2000
DAYS = 90
FIRST_DAY = int(time.time() // 86400) - DAYS + 1


# ---------------------------------------------------------------------------------------------- bulk load


def bulk_load(db: Path, invocations: int, seed: int = 7, chunk: int = 100_000) -> dict[str, int]:
    """Store ``invocations`` invocations, each its own counter and histogram point (see module docstring).

    Raw rows go in with executemany, in time order (as they would arrive); the rollups are summed here
    per group and written through the store's own upserts (``Store._flush``), the tables ingest fills.
    """
    rng = random.Random(seed)
    conn = connect(db)
    conn.execute("PRAGMA synchronous = OFF")
    store = Store.__new__(Store)  # the store's own rollup code on this connection, no request wrapper
    store._conn, store._resource_ids, store._limits, store._retention_days = conn, {}, Limits(), 0.0
    installs = []
    conn.execute("BEGIN")
    for i in range(INSTALLATIONS):
        service, version, env = SERVICES[i % 3], VERSIONS[(i // 3) % 4], ENVS[i % len(ENVS)]
        attrs = {"service.name": service, "service.version": version, "otel_expansion.installation.id": f"inst-{i}",
                 **env}
        rid = store._resource_id(ResourceData(attrs, None, b""), time.time_ns())
        env_values = [(k, str(env[k]).lower() if isinstance(env[k], bool) else str(env[k])) for k in ENVIRONMENT_KEYS]
        installs.append((rid, service, version, f"inst-{i}", env_values))
    conn.execute("COMMIT")
    layout = json.dumps([float(b) for b in DURATION_BOUNDS], separators=(",", ":"))
    attrs_json = {
        (c, o, e): json.dumps({"cli.command.name": c, "cli.command.outcome": o, **({"error.type": e} if e else {})},
                              separators=(",", ":"))
        for c in COMMANDS for o, e in OUTCOMES
    }
    counts_json = [json.dumps([1 if i == b else 0 for i in range(len(DURATION_BOUNDS) + 1)])
                   for b in range(len(DURATION_BOUNDS) + 1)]
    runs: dict[tuple[int, str, str, str], list[float]] = {}
    durations: dict[tuple[int, str, str, str], list[float]] = {}
    slots: dict[tuple[int, str, str, str], list[int]] = {}
    env_runs: Counter[tuple[int, str, str, str, str]] = Counter()
    active: set[tuple[int, str, str, str]] = set()
    last_ns: dict[tuple[int, str, str, str], int] = {}
    raw: list[tuple[object, ...]] = []
    now = time.time_ns()
    per_day = [invocations // DAYS + (1 if d < invocations % DAYS else 0) for d in range(DAYS)]
    for d, count in enumerate(per_day):
        day = FIRST_DAY + d
        for offset in sorted(rng.randrange(DAY_NS) for _ in range(count)):
            end = day * DAY_NS + offset
            rid, service, version, installation, env_values = installs[rng.randrange(INSTALLATIONS)]
            command = COMMANDS[min(int(rng.expovariate(0.35)), len(COMMANDS) - 1)]
            outcome, error_type = OUTCOMES[0] if rng.random() < 0.93 else OUTCOMES[1 + rng.randrange(3)]
            duration = rng.lognormvariate(-1.5, 1.0)
            bucket = bisect.bisect_left(DURATION_BOUNDS, duration)
            attrs = attrs_json[(command, outcome, error_type)]
            err = error_type or None
            raw.append((rid, "otel_expansion", "0.1.0", "cli.command.invocations", "{invocation}", "sum", "delta", 1,
                        attrs, command, outcome, err, end - 10**9, end, 1.0, None, None, None, None, None, None, now))
            raw.append((rid, "otel_expansion", "0.1.0", "cli.command.duration", "s", "histogram", "delta", None,
                        attrs, command, outcome, err, end - 10**9, end, None, 1, duration, duration, duration, layout,
                        counts_json[bucket], now))
            key = (day, service, version, command)
            acc = runs.get(key)
            if acc is None:
                runs[key] = [1.0, 1.0 if err else 0.0]
                durations[key] = [1, duration, duration, duration]
                slots[key] = [0] * BUCKET_SLOTS
            else:
                acc[0] += 1.0
                acc[1] += 1.0 if err else 0.0
                stats = durations[key]
                stats[0] += 1
                stats[1] += duration
                stats[2] = min(stats[2], duration)
                stats[3] = max(stats[3], duration)
            slots[key][bucket] += 1
            last_ns[key] = end
            for env_key, env_value in env_values:
                env_runs[(day, service, version, env_key, env_value)] += 1
            active.add((day, service, version, installation))
            if len(raw) >= chunk:
                _insert(conn, raw)
    _insert(conn, raw)
    rollup = Rollup()
    rollup.kinds.update({INVOCATIONS: "sum", DURATION: "histogram"})
    for (day, service, version, command), (n, errors) in runs.items():
        end = last_ns[(day, service, version, command)]
        rollup.metrics[(INVOCATIONS, day, service, version, command, "", "", "")] = [n, errors, 0, 0.0, None, None, end]
        count, total, low, high = durations[(day, service, version, command)]
        rollup.metrics[(DURATION, day, service, version, command, "", "", "")] = [0.0, 0.0, count, total, low, high,
                                                                                 end]
        rollup.buckets[(DURATION, day, service, version, command, "", layout)] = slots[(day, service, version,
                                                                                         command)]
    rollup.env.update({k: float(v) for k, v in env_runs.items()})
    rollup.active = active
    conn.execute("BEGIN")
    store._flush(rollup)
    sessions: Counter[tuple[int, str, str]] = Counter()
    for (day, service, version, _), (n, _) in runs.items():
        sessions[(day, service, version)] += int(n)
    session_rows = []
    for (day, service, version), n in sessions.items():  # one session per 5 invocations, 3-40 minutes long
        for s in range(max(1, n // 5)):
            first = day * DAY_NS + rng.randrange(DAY_NS // 2)
            session_rows.append((f"{service}-{day}-{version}-{s}", service, version, day, first,
                                 first + rng.randrange(3 * 60, 40 * 60) * 10**9, 5))
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)", session_rows)
    histogram_rows: Counter[tuple[str, int, str, str, float, float]] = Counter()
    for _, service, version, day, first, last, commands in session_rows:
        for kind, value in (("length_s", (last - first) / 1e9), ("commands", float(commands))):
            histogram_rows[(kind, day, service, version, *bucket_of(value, SESSION_BOUNDS[kind]))] += 1
    conn.executemany("INSERT INTO r_session VALUES (?, ?, ?, ?, ?, ?, ?)", [(*k, n) for k, n in histogram_rows.items()])
    conn.execute("INSERT OR REPLACE INTO counters VALUES ('metric_points', ?)", (2 * invocations,))
    conn.execute("COMMIT")
    groups = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("r_metric", "r_bucket", "r_env", "active", "sessions")}
    conn.close()
    return groups


def _insert(conn: object, raw: list[tuple[object, ...]]) -> None:
    columns = ", ".join(["?"] * 22)
    conn.execute("BEGIN")  # type: ignore[attr-defined]
    conn.executemany(f"INSERT INTO metric_points VALUES (NULL, {columns})", raw)  # type: ignore[attr-defined]
    conn.execute("COMMIT")  # type: ignore[attr-defined]
    raw.clear()


def time_reports(db: Path, repeats: int = 5) -> dict[str, float]:
    """Median wall time of report_from() (open + all queries + assembly) for a few filters, in ms."""
    out = {}
    for label, f in (("all apps, all time", Filter()), ("one app", Filter(service="dbtool")),
                     ("one app+version, last 30 days", Filter(service="gitx", version="1.2.0",
                                                              since_day=FIRST_DAY + DAYS - 30))):
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine = SQLiteEngine(open_readonly(db))
            report_from(engine, f)
            engine.close()
            samples.append(time.perf_counter() - started)
        out[label] = statistics.median(samples) * 1e3
    return out


# -------------------------------------------------------------------------------------------------- ingest


def _request(sender: int, batch: int, points: int) -> bytes:
    def kv(k: str, v: str) -> common_pb2.KeyValue:
        return common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))

    now = time.time_ns()
    data = [
        metrics_pb2.NumberDataPoint(
            attributes=[kv("cli.command.name", COMMANDS[i % len(COMMANDS)]), kv("cli.command.outcome", "success"),
                        kv("run", f"{sender}-{batch}-{i}")],
            start_time_unix_nano=now - 10**9, time_unix_nano=now, as_int=1)
        for i in range(points)
    ]
    request = metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource_pb2.Resource(attributes=[kv("service.name", SERVICES[sender % 3]),
                                                   kv("service.version", "1.0.0"),
                                                   kv("otel_expansion.installation.id", f"inst-{sender}")]),
        scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metrics_pb2.Metric(
            name="cli.command.invocations",
            sum=metrics_pb2.Sum(data_points=data, is_monotonic=True, aggregation_temporality=1))])])])
    return bytes(request.SerializeToString())


def bench_ingest(db: Path, senders: int, seconds: float, points: int) -> tuple[float, float, int, float]:
    """(rows/s, requests/s, errors, server peak RSS MiB) with ``senders`` concurrent keep-alive clients."""
    server = subprocess.Popen(
        [sys.executable, "-m", "otel_expansion.cli.main", "backend", "serve", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        port = int(line.split("http://127.0.0.1:")[1].split(" ")[0])
        bodies = [[_request(s, b, points) for b in range(20)] for s in range(senders)]
        stop = time.monotonic() + seconds
        done = [0] * senders
        errors = [0] * senders

        def send(s: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            i = 0
            while time.monotonic() < stop:
                conn.request("POST", "/v1/metrics", bodies[s][i % 20],
                             {"Content-Type": "application/x-protobuf", "X-Otel-Expansion-Batch-Id": f"{s}-{i}"})
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    done[s] += 1
                else:
                    errors[s] += 1
                i += 1
            conn.close()

        threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        rss = 0.0
        try:
            for status_line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
                if status_line.startswith("VmHWM:"):
                    rss = int(status_line.split()[1]) / 1024
        except OSError:
            pass
        return sum(done) * points / elapsed, sum(done) / elapsed, sum(errors), rss
    finally:
        server.terminate()
        server.wait(10)


# ------------------------------------------------------------------------------------ ClickHouse (chDB)


def bench_clickhouse(sizes: list[int]) -> None:
    """The fleet report on the ClickHouse engine (chDB, in-process) over the exporter's own tables.

    Rows are generated inside ClickHouse (``INSERT ... SELECT FROM numbers(N)``) with the same shape as
    the SQLite data: one sum point and one histogram point per invocation. Needs the test extra (chdb).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.backend.chdb_loader import ChdbDatabase

    first = FIRST_DAY * 86400
    resource = (
        "map('service.name', s, 'service.version', v, 'otel_expansion.installation.id', concat('inst-', toString(i)),"
        " 'os.type', ['linux', 'linux', 'linux', 'darwin', 'windows', 'darwin'][i % 6 + 1])"
    )
    attrs = (
        "map('cli.command.name', concat('command-', toString(least(15, intDiv(number % 97, 7)))),"
        " 'cli.command.outcome', if(number % 14 = 0, 'error', 'success'))"
    )
    common = (
        f" WITH number % {INSTALLATIONS} AS i, ['gitx', 'dbtool', 'deployer'][i % 3 + 1] AS s,"
        f" ['1.0.0', '1.1.0', '1.2.0', '2.0.0'][intDiv(i, 3) % 4 + 1] AS v,"
        f" {first} + (number * 7919) % ({DAYS} * 86400) AS t"
    )
    for size in sizes:
        db = ChdbDatabase()
        started = time.perf_counter()
        db.session.query(
            f"INSERT INTO {db.database}.otel_metrics_sum (ResourceAttributes, ServiceName, MetricName, Attributes,"
            f" StartTimeUnix, TimeUnix, Value, AggregationTemporality, IsMonotonic){common}"
            f" SELECT {resource}, s, 'cli.command.invocations', {attrs}, toDateTime(t - 1), toDateTime(t), 1, 1, true"
            f" FROM numbers({size})"
        )
        bounds = "[" + ", ".join(str(b) for b in DURATION_BOUNDS) + "]"
        db.session.query(
            f"INSERT INTO {db.database}.otel_metrics_histogram (ResourceAttributes, ServiceName, MetricName,"
            " Attributes, StartTimeUnix, TimeUnix, Count, Sum, BucketCounts, ExplicitBounds, Min, Max,"
            " AggregationTemporality)"
            f"{common}, (number % 1000) / 400.0 AS d"
            f" SELECT {resource}, s, 'cli.command.duration', {attrs}, toDateTime(t - 1), toDateTime(t), 1, d,"
            f" arrayMap(j -> toUInt64(j = arrayFirstIndex(b -> d <= b, {bounds} || [inf])),"
            f" range(1, {len(DURATION_BOUNDS) + 2})), {bounds}, d, d, 1 FROM numbers({size})"
        )
        load_s = time.perf_counter() - started
        size_rows = db.run(
            "SELECT sum(data_compressed_bytes), sum(rows) FROM system.parts"
            f" WHERE database = '{db.database}' AND active"
        )
        engine = db.engine()
        samples = []
        for _ in range(3):
            begun = time.perf_counter()
            report = report_from(engine, Filter())
            samples.append(time.perf_counter() - begun)
        assert report["totals"]["invocations"] == size
        compressed, rows = size_rows[0]
        print(f"ClickHouse (chDB) {size:>11,} invocations ({int(rows):,} rows, {int(compressed) / 2**20:,.0f} MiB"
              f" compressed, {int(compressed) / max(1, int(rows)):.1f} B/row, generated in {load_s:.0f} s):"
              f" full report {statistics.median(samples) * 1e3:.0f} ms")
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000", help="stored invocations to time reports at")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--points", type=int, default=100, help="points per ingest request")
    parser.add_argument("--dir", help="where the databases go (default: a temporary directory)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--clickhouse-sizes", default="", help="also time the report on chDB at these sizes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backend-", dir=args.dir) as tmp:
        if not args.skip_ingest:
            rows, requests, errors, rss = bench_ingest(Path(tmp) / "ingest.sqlite", args.senders, args.seconds,
                                                       args.points)
            print(f"ingest, {args.senders} senders x {args.points} points/request, {args.seconds:.0f} s:"
                  f" {rows:,.0f} rows/s, {requests:,.0f} requests/s, {errors} errors, server peak RSS {rss:.0f} MiB")
        baseline = None
        for size in () if args.skip_sqlite else (int(s) for s in args.sizes.split(",")):
            db = Path(tmp) / f"report-{size}.sqlite"
            started = time.perf_counter()
            groups = bulk_load(db, size)
            load_s = time.perf_counter() - started
            times = time_reports(db)
            mib = sum(p.stat().st_size for p in Path(tmp).glob(f"report-{size}.sqlite*")) / 2**20
            first = next(iter(times.values()))
            baseline = baseline or first
            print(f"{size:>11,} invocations ({2 * size:,} raw points, {mib:,.0f} MiB, loaded in {load_s:.0f} s;"
                  f" groups {groups}): " + ", ".join(f"{k} {v:.0f} ms" for k, v in times.items())
                  + f"; all-time vs smallest size x{first / baseline:.2f}")
            for p in Path(tmp).glob(f"report-{size}.sqlite*"):
                os.unlink(p)
        if args.clickhouse_sizes:
            bench_clickhouse([int(s) for s in args.clickhouse_sizes.split(",")])


if __name__ == "__main__":
    main()
