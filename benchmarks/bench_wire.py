"""Bytes on the wire for 10,000 CLI runs: otel-expansion (aggregated, batched, gzip protobuf) versus
the same data sent one event at a time as OTLP/JSON, plus ingest and send throughput.

    python benchmarks/bench_wire.py [--runs 10000] [--level enhanced|basic]
"""

from __future__ import annotations

import argparse
import http.server
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otel_expansion import _runtime
from otel_expansion.config import Level, resolve
from otel_expansion.journal import store as journal

COMMANDS = [("build", 0.6), ("test", 0.25), ("deploy", 0.1), ("remote add", 0.05)]


class Counter(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stats = {"requests": 0, "body": 0, "wire": 0}
    lock = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        header_bytes = len(self.requestline) + 2 + sum(len(k) + len(v) + 4 for k, v in self.headers.items()) + 2
        with self.lock:
            self.stats["requests"] += 1
            self.stats["body"] += len(body)
            self.stats["wire"] += len(body) + header_bytes
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def make_runs(home: Path, runs: int, level: Level, rng: random.Random) -> list[dict[str, object]]:
    settings = resolve("benchcli", "3.1.4", environ={}, home=str(home), level=level)
    t = _runtime.Telemetry(settings)
    records = []
    now = time.time_ns() - runs * 2_000_000_000
    for i in range(runs):
        name = rng.choices([c for c, _ in COMMANDS], [w for _, w in COMMANDS])[0]
        run = t.recorder.begin(name, "benchcli")
        assert run is not None
        run.start_ns = now + i * 2_000_000_000
        if rng.random() < 0.3:
            t.recorder.feature("cache.hit")
        failed = rng.random() < 0.08
        t.recorder.end(run, RuntimeError("x") if failed else None, 1 if failed else 0)
        body = t.recorder.drain()
        assert body is not None
        for cmd in body["commands"]:
            cmd["end"] = cmd["start"] + int(rng.uniform(0.05, 2.0) * 1e9)
        record = _runtime.build_record(t, body, run.start_ns)
        journal.append(str(home), record, run.start_ns + 1)
        records.append(record)
    return records


def one_by_one_json_bytes(records: list[dict[str, object]], level: Level) -> tuple[int, int]:
    """Each run exported alone as OTLP/JSON (uncompressed): its spans request and its metrics request."""
    from otel_expansion.otlp.encode import metrics_request, to_json, traces_request
    from otel_expansion.privacy.redaction import Redactor
    from otel_expansion.sdk.pipeline import Pipeline
    from otel_expansion.sdk.staging import Staging

    staging = Staging()
    pipeline = Pipeline(dict(records[0]["resource"]), level, Redactor(), staging)  # type: ignore[call-overload]
    total = requests = 0
    for record in records:
        pipeline.ingest(record)
        pipeline.collect()
        points, spans = staging.take()
        if spans:
            total += len(to_json(traces_request(spans)))
            requests += 1
        if points:
            total += len(to_json(metrics_request(points)))
            requests += 1
    return total, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--level", default="enhanced")
    args = parser.parse_args()
    level = Level.parse(args.level)
    rng = random.Random(7)
    home = Path(tempfile.mkdtemp(prefix="bench-wire-"))
    t0 = time.perf_counter()
    records = make_runs(home, args.runs, level, rng)
    t_journal = time.perf_counter() - t0

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{srv.server_address[1]}"
    from otel_expansion.workers.sender import run_round

    settings = resolve("sender", environ=os.environ, home=str(home), level=Level.FULL)
    t0 = time.perf_counter()
    run_round(str(home), settings, send=False, deadline_s=600)  # journal -> SDK replay -> spool
    t_ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = run_round(str(home), settings, force=True, deadline_s=600)  # spool -> wire
    t_send = time.perf_counter() - t0
    srv.shutdown()
    assert summary.ok, summary.error
    ours = Counter.stats

    baseline, baseline_requests = one_by_one_json_bytes(records, level)
    print(f"runs: {args.runs} at level {level}; journal write {t_journal / args.runs * 1e6:.0f} us/run")
    print(f"otel-expansion: {ours['requests']} requests, {ours['body']:,} body bytes "
          f"({ours['wire']:,} with HTTP headers); {summary.spans_sent} spans, {summary.points_sent} metric points")
    print(f"one event at a time, OTLP/JSON: {baseline_requests} requests, {baseline:,} body bytes")
    print(f"ratio (ours with headers / baseline bodies): 1/{baseline / ours['wire']:.0f}")
    print(f"ingest (journal -> SDK replay -> spool): {t_ingest:.2f} s = {args.runs / t_ingest:,.0f} runs/s")
    print(f"send (spool -> encode -> gzip -> HTTP, {ours['requests']} requests): {t_send:.2f} s = "
          f"{ours['requests'] / t_send:.1f} requests/s, {summary.spans_sent / t_send:,.0f} spans/s")


if __name__ == "__main__":
    main()
