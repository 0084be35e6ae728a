"""A generated population with known ground truth, dated relative to today, for the distribution and the
previous-period tests: three app versions, installations, 28 UTC days, three commands whose durations span
10 us to 60 s, error outcomes, sessions; sent as the SDK sends it (delta sums, base-2 exponential histograms
at different scales per point, spans with session ids) through the real ingest path.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.metrics.v1 import metrics_pb2

from otel_expansion.backend.rollup import DAY_NS
from otel_expansion.backend.server import serve
from otel_expansion.otlp import exponential

from .conftest import DELTA, LiveServer, kvs, metrics_request, span, sum_metric, traces_request

APPS = [("alpha", "1.0"), ("alpha", "2.0"), ("beta", "1.0")]
COMMANDS = {
    "build": lambda rng: math.exp(rng.uniform(math.log(10e-6), math.log(60.0))),  # the whole range
    "test": lambda rng: rng.lognormvariate(math.log(200e-6), 0.3),  # service-like, ~200 us
    "deploy": lambda rng: rng.choice([rng.gauss(0.010, 0.001), rng.gauss(0.2, 0.01), rng.gauss(1.0, 0.05)]),
}
DAYS = 28


@dataclass
class Run:
    """One recorded invocation: the ground truth every reported figure is checked against."""

    service: str
    version: str
    installation: str
    day: int
    command: str
    error: bool
    duration: float


@dataclass
class Session:
    service: str
    version: str
    day: int
    length_s: float


@dataclass
class Population:
    today: int
    runs: list[Run] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)

    def select(self, service: str | None = None, version: str | None = None, since: int | None = None,
               until: int | None = None, command: str | None = None) -> list[Run]:
        return [r for r in self.runs
                if (service is None or r.service == service) and (version is None or r.version == version)
                and (since is None or r.day >= since) and (until is None or r.day <= until)
                and (command is None or r.command == command)]

    def session_lengths(self, service: str | None = None, version: str | None = None, since: int | None = None,
                        until: int | None = None) -> list[float]:
        return [s.length_s for s in self.sessions
                if (service is None or s.service == service) and (version is None or s.version == version)
                and (since is None or s.day >= since) and (until is None or s.day <= until)]


def exp_metric(name: str, points: list[tuple[dict[str, Any], list[float], int, int]]) -> metrics_pb2.Metric:
    """An OTLP ExponentialHistogram; each point is (attributes, values, scale to start from, end_ns)."""
    data = []
    for attrs, values, scale, end in points:
        b = exponential.from_values(values, scale=scale)  # at most MAX_SIZE buckets, as the SDK
        data.append(metrics_pb2.ExponentialHistogramDataPoint(
            attributes=kvs(attrs), start_time_unix_nano=end - 10**9, time_unix_nano=end, count=len(values),
            sum=sum(values), min=min(values), max=max(values), scale=b.scale, zero_count=b.zero_count,
            positive=metrics_pb2.ExponentialHistogramDataPoint.Buckets(offset=b.offset, bucket_counts=list(b.counts)),
        ))
    return metrics_pb2.Metric(name=name, unit="s", exponential_histogram=metrics_pb2.ExponentialHistogram(
        data_points=data, aggregation_temporality=DELTA))


def generate(seed: int = 23, today: int | None = None) -> Population:
    """Runs over the last DAYS UTC days (today included), one metrics and one traces request per
    installation and day, dated at 00:30 UTC so today's are in the past."""
    rng = random.Random(seed)
    today = time.time_ns() // DAY_NS if today is None else today
    pop = Population(today)
    span_id = 1
    for service, version in APPS:
        installations = [f"{service}-{version}-i{k}" for k in range(3)]
        for offset in range(DAYS):
            day = today - offset
            for installation in installations:
                if rng.random() < 0.3:  # not every installation is active every day
                    continue
                end = day * DAY_NS + 30 * 60 * 10**9
                sums: list[tuple[dict[str, Any], float, int]] = []
                hists: list[tuple[dict[str, Any], list[float], int, int]] = []
                for command, draw in COMMANDS.items():
                    for outcome in ("success", "error"):
                        n = rng.randint(0, 3) if outcome == "error" else rng.randint(0, 12)
                        if not n:
                            continue
                        values = [max(10e-6, min(60.0, draw(rng))) for _ in range(n)]
                        attrs = {"cli.command.name": command, "cli.command.outcome": outcome}
                        sums.append((attrs, n, end))
                        hists.append((attrs, values, rng.choice([3, 6, 20]), end))
                        pop.runs += [Run(service, version, installation, day, command, outcome == "error", v)
                                     for v in values]
                if not sums:
                    continue
                resource = {"service.name": service, "service.version": version,
                            "otel_expansion.installation.id": installation}
                pop.requests.append(("metrics", metrics_request((resource, [
                    sum_metric("cli.command.invocations", sums), exp_metric("cli.command.duration", hists)]))))
                start = day * DAY_NS + 10 * 60 * 10**9
                length_ns = rng.randint(1, 3000) * 10**7
                pop.sessions.append(Session(service, version, day, length_ns / 1e9))
                session = f"{installation}-{day}"
                spans = [span("cmd", {"cli.command.name": "build", "session.id": session}, start, start + 10**6,
                              span_id, span_id),
                         span("cmd", {"cli.command.name": "test", "session.id": session}, start + length_ns - 10**6,
                              start + length_ns, span_id + 1, span_id + 1)]
                span_id += 2
                pop.requests.append(("traces", traces_request((resource, spans))))
    return pop


def true_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def post_all(server: LiveServer, pop: Population) -> None:
    """Every request gzip-compressed OTLP/protobuf over HTTP, as an exporter sends it."""
    for signal, message in pop.requests:
        assert server.post(signal, message, gzip_body=True).status == 200


def running_server(db_path: Path) -> Iterator[LiveServer]:
    """serve() in a thread on a free port for a whole module."""
    ports: list[int] = []
    bound = threading.Event()
    stop = threading.Event()

    def ready(port: int) -> None:
        ports.append(port)
        bound.set()

    thread = threading.Thread(target=serve, kwargs={"host": "127.0.0.1", "port": 0, "db_path": db_path,
                                                   "ready": ready, "stop": stop, "retention_days": 0}, daemon=True)
    thread.start()
    assert bound.wait(10), "server did not start"
    yield LiveServer(ports[0], db_path)
    stop.set()
    thread.join(10)
