"""Embedded backend benchmark: ingest from concurrent senders, and report latency through the real ingest path.

Run: ``python -m compileall -q otel_expansion && python benchmarks/bench_backend.py``
(``--sizes 10000000 --cardinality 15`` and ``--sizes 2000000 --cardinality 1000`` for the two budgets).
Budgets (DESIGN.md): report under 300 ms with 10M invocations stored and with 1,000 distinct commands x 2M
invocations; ingest >= 50k rows/s from 8 senders, WAL bounded.

Ingest: ``otel-expansion backend serve`` runs as its own process (with its decoding worker processes); 1, 4
and 8 sender threads POST ``--rows`` rows of realistic gzip OTLP/protobuf over keep-alive connections,
alternating metrics requests (per command a delta sum and a base-2 exponential histogram, as the SDK's views
aggregate them) and traces requests (command spans with session ids). Every request has its own batch id and
every span fresh ids, so nothing is de-duplicated away, and the rows stored (points plus spans, counted in the
database afterwards) must equal the rows sent. Printed: rows/s, CPU-seconds of the server process and of its
workers (rows per CPU-second: the scaling argument on a shared box), retries after 429/503, the WAL's peak
(sampled every 20 ms) and whether any worker outlived the server's SIGTERM.

Report latency: the data is stored through the same HTTP ingest (installations' sends spread over 90 days,
20-400 runs per command per send, about 5% of them failed with an error type and a stack signature, 3 spans
per send), then report_from() is timed for three filters. The
legacy bulk load (``--bulk-sizes``: one raw point per invocation written straight into the tables, with
explicit buckets as before 0.3) is kept for the raw-row worst case.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import gzip
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
from otel_expansion.backend.store import Store, connect, open_readonly, stored_counts

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
    store._known, store._exp_rows, store._data_version, store._open_day = set(), {}, None, None
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
    today = FIRST_DAY + DAYS - 1
    for label, f in (("all apps, all time", Filter()), ("one app", Filter(service="dbtool")),
                     ("one app+version, last 30 days (+ the 30 before)", Filter(service="gitx", version="1.2.0",
                                                                                since_day=FIRST_DAY + DAYS - 30)),
                     ("all apps, last 7 days (+ the 7 before)", Filter(since_day=today - 6))):
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine = SQLiteEngine(open_readonly(db))
            report_from(engine, f)
            engine.close()
            samples.append(time.perf_counter() - started)
        out[label] = statistics.median(samples) * 1e3
    from otel_expansion.backend.distribution import distribution

    for label, f, what, command in (("distribution of one command, all time", Filter(), "command", "command-0"),
                                    ("of all commands, last 30 days", Filter(since_day=today - 29), "command", None),
                                    ("of session lengths, one app", Filter(service="dbtool"), "session_length",
                                     None)):
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine = SQLiteEngine(open_readonly(db))
            distribution(engine, f, what, command)
            engine.close()
            samples.append(time.perf_counter() - started)
        out[label] = statistics.median(samples) * 1e3
    return out


# -------------------------------------------------------------------------------------------------- ingest


def _kv(k: str, v: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))


def _sender_requests(rng: random.Random, installation: int, end_ns: int, commands: list[str], runs: list[int],
                     spans: int, errors: bool = False) -> tuple[bytes, bytes]:
    """One installation's send as the SDK makes it (gzip OTLP/protobuf): per command a delta sum of its runs
    and a base-2 exponential histogram of their durations (the views' aggregation, from_values at the SDK's
    max size), plus ``spans`` command spans with session ids. Returns (metrics body, traces body).

    ``errors``: about 5% of runs fail, as ``cli.command.errors`` points by error type and stack signature
    (``cli.error.signature``: newer versions raise from more places), plus a few handled exceptions."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    from otel_expansion.otlp.exponential import from_values

    service = SERVICES[installation % 3]
    version = VERSIONS[(installation // 3) % 4]
    env = ENVS[installation % len(ENVS)]
    res = resource_pb2.Resource(attributes=[
        _kv("service.name", service), _kv("service.version", version),
        _kv("otel_expansion.installation.id", f"inst-{installation}"),
        *(_kv(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in env.items())])
    sums, hists, failures, handled = [], [], [], []
    for command, n in zip(commands, runs, strict=True):
        attrs = [_kv("cli.command.name", command), _kv("cli.command.outcome", "success")]
        failed = sum(1 for _ in range(n) if rng.random() < 0.05) if errors else 0
        if failed:
            error_type = OUTCOMES[1 + rng.randrange(3)][1]
            where = f"{service}.lib{rng.randrange(10 + 5 * VERSIONS.index(version))}:call"
            signature = f"{service}.cli:main > {service}.commands.{command.replace('-', '_')}:run > {where}"
            point_of = {"start_time_unix_nano": end_ns - 60 * 10**9, "time_unix_nano": end_ns, "as_int": failed}
            sums.append(metrics_pb2.NumberDataPoint(attributes=[
                _kv("cli.command.name", command), _kv("cli.command.outcome", "error"),
                _kv("error.type", error_type)], **point_of))
            failures.append(metrics_pb2.NumberDataPoint(attributes=[
                _kv("cli.command.name", command), _kv("error.type", error_type), _kv("cli.error.signature", signature)],
                **point_of))
            if rng.random() < 0.2:
                handled.append(metrics_pb2.NumberDataPoint(attributes=[
                    _kv("error.type", "KeyError"), _kv("exception.handled", "true"),
                    _kv("cli.error.signature", f"{service}.cli:main > {service}.cache:get")], **point_of))
        sums.append(metrics_pb2.NumberDataPoint(attributes=attrs, start_time_unix_nano=end_ns - 60 * 10**9,
                                                time_unix_nano=end_ns, as_int=n - failed))
        values = [rng.lognormvariate(-1.5, 1.2) for _ in range(n)]
        b = from_values(values)
        point = metrics_pb2.ExponentialHistogramDataPoint(
            attributes=attrs, start_time_unix_nano=end_ns - 60 * 10**9, time_unix_nano=end_ns, count=n,
            sum=sum(values), min=min(values), max=max(values), scale=b.scale, zero_count=b.zero_count)
        point.positive.offset = b.offset
        point.positive.bucket_counts.extend(b.counts)
        hists.append(point)
    scope = common_pb2.InstrumentationScope(name="otel_expansion", version="0.3.0")
    metrics = metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=res, scope_metrics=[metrics_pb2.ScopeMetrics(scope=scope, metrics=[
            metrics_pb2.Metric(name=INVOCATIONS, unit="{invocation}", sum=metrics_pb2.Sum(
                data_points=sums, is_monotonic=True, aggregation_temporality=1)),
            metrics_pb2.Metric(name=DURATION, unit="s", exponential_histogram=metrics_pb2.ExponentialHistogram(
                data_points=hists, aggregation_temporality=1)),
            *[metrics_pb2.Metric(name=name, sum=metrics_pb2.Sum(data_points=points, is_monotonic=True,
                                                                aggregation_temporality=1))
              for name, points in (("cli.command.errors", failures), ("cli.exceptions.handled", handled)) if points],
        ])])])
    span_list = []
    session = f"{installation}-{end_ns // (1800 * 10**9)}"
    for i in range(spans):
        start = end_ns - rng.randrange(60 * 10**9)
        span_list.append(trace_pb2.Span(
            trace_id=rng.getrandbits(128).to_bytes(16, "big"), span_id=rng.getrandbits(64).to_bytes(8, "big"),
            name=commands[i % len(commands)], kind=trace_pb2.Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start,
            end_time_unix_nano=start + int(rng.lognormvariate(-1.5, 1.2) * 1e9),
            attributes=[_kv("cli.command.name", commands[i % len(commands)]), _kv("cli.command.outcome", "success"),
                        _kv("session.id", session)]))
    traces = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=res, scope_spans=[trace_pb2.ScopeSpans(scope=scope, spans=span_list)])])
    return gzip.compress(metrics.SerializeToString(), 1), gzip.compress(traces.SerializeToString(), 1)


def _start_server(db: Path, workers: int | None = None) -> tuple[subprocess.Popen[str], int]:
    extra = [] if workers is None else ["--workers", str(workers)]
    server = subprocess.Popen(
        [sys.executable, "-m", "otel_expansion.cli.main", "backend", "serve", "--port", "0", "--db", str(db),
         "--retention-days", "0", *extra],
        stdout=subprocess.PIPE, text=True,
    )
    line = server.stdout.readline() if server.stdout else ""
    return server, int(line.split("http://127.0.0.1:")[1].split(" ")[0])


def _stop_server(server: subprocess.Popen[str]) -> None:
    """SIGTERM (a clean shutdown: the server stops its decoding workers), then wait."""
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one live process so far (clock ticks from /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU of each thread of one live process so far (from /proc/<pid>/task)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _post_all(port: int, bodies: list[list[tuple[str, bytes, int]]]) -> tuple[int, int, int]:
    """Each sender thread POSTs its (path, gzip body, rows) list once over one keep-alive connection, each
    request with its own batch id; a 429 or 503 is retried after a short pause, as an OTLP exporter would.
    Returns (rows acknowledged with 200, retries, failed requests)."""
    rows = [0] * len(bodies)
    retries = [0] * len(bodies)
    failed = [0] * len(bodies)

    def send(s: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for i, (path, body, n) in enumerate(bodies[s]):
            while True:
                conn.request("POST", path, body, {"Content-Type": "application/x-protobuf",
                                                  "Content-Encoding": "gzip", "X-Otel-Expansion-Batch-Id": f"{s}-{i}"})
                response = conn.getresponse()
                response.read()
                if response.status in (429, 503):
                    retries[s] += 1
                    time.sleep(0.05)
                    continue
                if response.status == 200:
                    rows[s] += n
                else:
                    failed[s] += 1
                break
        conn.close()

    threads = [threading.Thread(target=send, args=(s,)) for s in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(rows), sum(retries), sum(failed)


def _fresh_traces(rng: random.Random, installation: int, end_ns: int, commands: list[str], spans: int) -> bytes:
    """A traces body whose every span has new random trace and span ids (nothing in it is a duplicate)."""
    return _sender_requests(rng, installation, end_ns, commands[:1], [1], spans)[1]


def bench_ingest(db: Path, senders: int, rows_total: int, points: int,
                 workers: int | None = None) -> dict[str, float]:
    """Ingest ``rows_total`` rows with ``senders`` concurrent keep-alive clients sending realistic gzip OTLP:
    per request ``points`` points (half delta sums, half base-2 exponential histograms) or ``points`` spans,
    alternately. Every traces request carries fresh span ids and every request its own batch id, so nothing
    is de-duplicated; the rows stored are checked against the rows sent. The bodies are built before the
    clock starts. CPU is read from /proc for the server and its decoding workers."""
    rng = random.Random(senders)
    commands = [f"command-{i}" for i in range(max(1, points // 2))]
    templates = []
    for b in range(10):  # metrics bodies: each sent under its own batch id, so each is stored again
        metrics, _ = _sender_requests(rng, b, time.time_ns() - b * 10**9, commands,
                                      [rng.randint(1, 20) for _ in commands], 0)
        templates.append(metrics)
    requests = max(2, rows_total // points)
    bodies: list[list[tuple[str, bytes, int]]] = [[] for _ in range(senders)]
    for r in range(requests):
        mine = bodies[r % senders]
        if r % 2 == 0:
            mine.append(("/v1/metrics", templates[r // 2 % len(templates)], 2 * len(commands)))
        else:
            traces = _fresh_traces(rng, r % 1000, time.time_ns() - rng.randrange(60 * 10**9), commands, points)
            mine.append(("/v1/traces", traces, points))
    sent = sum(n for mine in bodies for _, _, n in mine)
    server, port = _start_server(db, workers)
    wal = Path(str(db) + "-wal")
    wal_peak = [0]
    done = threading.Event()

    def watch_wal() -> None:
        while not done.wait(0.02):
            with contextlib.suppress(OSError):
                wal_peak[0] = max(wal_peak[0], wal.stat().st_size)

    watcher = threading.Thread(target=watch_wal)
    watcher.start()
    try:
        pids = [server.pid, *_children(server.pid)]
        cpu_before = {pid: _cpu_seconds(pid) for pid in pids}
        threads_before = _thread_cpu(server.pid)
        load_before = os.getloadavg()[0]
        own_before = time.process_time()
        started = time.monotonic()
        acked, retries, failed = _post_all(port, bodies)
        elapsed = time.monotonic() - started
        senders_cpu = time.process_time() - own_before
        cpu = {pid: _cpu_seconds(pid) - cpu_before[pid] for pid in pids}
        threads = sorted((v - threads_before.get(tid, 0.0) for tid, v in _thread_cpu(server.pid).items()),
                         reverse=True)
        load_after = os.getloadavg()[0]
        rss = 0.0
        with contextlib.suppress(OSError):
            for status_line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
                if status_line.startswith("VmHWM:"):
                    rss = int(status_line.split()[1]) / 1024
    finally:
        done.set()
        watcher.join()
        _stop_server(server)
    orphans = pids[1:]
    deadline = time.monotonic() + 5  # children exit as the server does; give them a moment
    while orphans and time.monotonic() < deadline:
        time.sleep(0.05)
        orphans = [pid for pid in orphans if _alive(pid)]
    conn = open_readonly(db)
    stored = sum(conn.execute("SELECT COUNT(*) FROM spans").fetchone()) + sum(
        conn.execute("SELECT COUNT(*) FROM metric_points").fetchone())
    conn.close()
    server_cpu = cpu[server.pid]
    workers_cpu = sum(v for pid, v in cpu.items() if pid != server.pid)
    return {"rows_per_s": acked / elapsed, "sent": sent, "acked": acked, "stored": stored, "retries": retries,
            "failed": failed, "seconds": elapsed, "server_cpu": server_cpu, "workers_cpu": workers_cpu,
            "workers": len(pids) - 1, "rss": rss, "wal_peak_mib": wal_peak[0] / 2**20, "orphans": len(orphans),
            "threads": threads[:4], "senders_cpu": senders_cpu, "load": (load_before, load_after)}


def _points_in(body: bytes) -> int:
    """Data points in a gzip OTLP metrics request (the sums, the histograms, and the error points)."""
    request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(gzip.decompress(body))
    return sum(len(getattr(m, m.WhichOneof("data")).data_points) for rm in request.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics)


def ingest_load(db: Path, invocations: int, commands: int, senders: int = 4, seed: int = 11) -> dict[str, float]:
    """Store ``invocations`` through the real ingest path: installations' sends over 90 days as the SDK
    makes them (see _sender_requests), POSTed gzip to ``backend serve`` by ``senders`` threads."""
    rng = random.Random(seed)
    names = [f"command-{i}" for i in range(commands)]
    bodies: list[list[tuple[str, bytes, int]]] = [[] for _ in range(senders)]
    left = invocations
    i = 0
    now = time.time_ns()
    while left > 0:
        chosen = rng.sample(names, min(len(names), rng.randint(5, 40)))
        runs = [min(left, rng.randint(20, 400)) for _ in chosen]
        runs = [r for r in runs if r > 0]
        chosen = chosen[: len(runs)]
        while sum(runs) > left:
            runs[-1] -= sum(runs) - left
            if runs[-1] <= 0:
                runs.pop()
                chosen.pop()
        left -= sum(runs)
        end = now - rng.randrange(DAYS * DAY_NS)
        metrics, traces = _sender_requests(rng, rng.randrange(INSTALLATIONS), end, chosen, runs, 3, errors=True)
        bodies[i % senders] += [("/v1/metrics", metrics, _points_in(metrics)), ("/v1/traces", traces, 3)]
        i += 1
    server, port = _start_server(db)
    try:
        started = time.monotonic()
        rows, _retries, errors = _post_all(port, bodies)
        elapsed = time.monotonic() - started
    finally:
        _stop_server(server)
    conn = open_readonly(db)
    stored = stored_counts(conn)
    conn.close()
    sent = sum(n for mine in bodies for _, _, n in mine)
    if stored["spans"] + stored["metric_points"] != sent or rows != sent:
        raise SystemExit(f"stored {stored} of {sent} rows sent ({rows} acknowledged)")
    return {"rows": rows, "errors": errors, "seconds": elapsed, "requests": sum(len(b) for b in bodies)}


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
    parser.add_argument("--sizes", default="10000000", help="invocations stored through the ingest path")
    parser.add_argument("--cardinality", default="15,1000", help="distinct commands, one report run per value")
    parser.add_argument("--senders", default="1,4,8", help="concurrent senders for the ingest measurement")
    parser.add_argument("--rows", type=int, default=400_000, help="rows sent per ingest measurement")
    parser.add_argument("--points", type=int, default=200, help="points (or spans) per ingest request")
    parser.add_argument("--workers", type=int, default=None, help="the server's decoding processes (default: its own)")
    parser.add_argument("--bulk-sizes", default="", help="also the legacy bulk load (one raw point per invocation)")
    parser.add_argument("--dir", help="where the databases go (default: a temporary directory)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--clickhouse-sizes", default="", help="also time the report on chDB at these sizes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backend-", dir=args.dir) as tmp:
        if not args.skip_ingest:
            for senders in (int(s) for s in args.senders.split(",")):
                db = Path(tmp) / f"ingest-{senders}.sqlite"
                r = bench_ingest(db, senders, args.rows, args.points, args.workers)
                cpu = r["server_cpu"] + r["workers_cpu"]
                print(f"ingest, {senders} senders, gzip OTLP ({args.points} points or spans per request, fresh ids):"
                      f" {r['rows_per_s']:,.0f} rows/s ({r['acked']:,.0f} rows in {r['seconds']:.1f} s);"
                      f" CPU {cpu:.1f} s = {r['acked'] / max(cpu, 1e-9):,.0f} rows per CPU-second (server process"
                      f" {r['server_cpu']:.1f} s = {r['acked'] / max(r['server_cpu'], 1e-9):,.0f} rows/CPU-s, its"
                      f" {r['workers']:.0f} child processes (decoding workers, multiprocessing's tracker)"
                      f" {r['workers_cpu']:.1f} s); stored {r['stored']:,.0f} of"
                      f" {r['sent']:,.0f} sent ({'equal' if r['stored'] == r['sent'] == r['acked'] else 'MISMATCH'}),"
                      f" {r['retries']:.0f} retries (429/503), {r['failed']:.0f} failed; WAL peak"
                      f" {r['wal_peak_mib']:.1f} MiB; server peak RSS {r['rss']:.0f} MiB; orphaned workers after"
                      f" SIGTERM: {r['orphans']:.0f}; the server's busiest threads (the writer first)"
                      f" {', '.join(f'{t:.2f}' for t in r['threads'])} s; the senders' CPU {r['senders_cpu']:.1f} s;"
                      f" load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}")
                for p in Path(tmp).glob(f"ingest-{senders}.sqlite*"):
                    os.unlink(p)
        for size in () if args.skip_sqlite else (int(s) for s in args.sizes.split(",")):
            for commands in (int(c) for c in args.cardinality.split(",")):
                db = Path(tmp) / f"report-{size}-{commands}.sqlite"
                loaded = ingest_load(db, size, commands)
                times = time_reports(db)
                mib = sum(p.stat().st_size for p in Path(tmp).glob(f"report-{size}-{commands}.sqlite*")) / 2**20
                print(f"{size:>11,} invocations x {commands} commands via HTTP ingest ({loaded['requests']:,.0f}"
                      f" requests, {loaded['rows']:,.0f} rows in {loaded['seconds']:.0f} s, {loaded['errors']:.0f}"
                      f" errors, {mib:,.0f} MiB): " + ", ".join(f"{k} {v:.0f} ms" for k, v in times.items()))
                for p in Path(tmp).glob(f"report-{size}-{commands}.sqlite*"):
                    os.unlink(p)
        for size in (int(s) for s in args.bulk_sizes.split(",") if s):
            db = Path(tmp) / f"bulk-{size}.sqlite"
            started = time.perf_counter()
            groups = bulk_load(db, size)
            load_s = time.perf_counter() - started
            times = time_reports(db)
            print(f"{size:>11,} invocations, bulk (2 raw points each, loaded in {load_s:.0f} s; groups {groups}): "
                  + ", ".join(f"{k} {v:.0f} ms" for k, v in times.items()))
            for p in Path(tmp).glob(f"bulk-{size}.sqlite*"):
                os.unlink(p)
        if args.clickhouse_sizes:
            bench_clickhouse([int(s) for s in args.clickhouse_sizes.split(",")])


if __name__ == "__main__":
    main()
