"""The host thread's cost of recording through the public API, in a long-running (service mode) program.

    with otel_expansion.command("job"):
        otel_expansion.feature("step")

CPU time of the host thread only (``time.thread_time``), the export thread kept asleep (it would drain
every WAKE_AT commands; here the buffer and the usage aggregate are taken between rounds, as its drain
takes them), one child process per level. Stock
OpenTelemetry's span + counter + histogram is measured in the same run, for the ratio. Compile first
(``python -m compileall -q otel_expansion``) when PYTHONDONTWRITEBYTECODE is set.

    python benchmarks/bench_hostpath.py [--n 5000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, statistics, sys, tempfile, time
sys.path.insert(0, {root!r})
import otel_expansion
from otel_expansion.workers import service
service.WAKE_AT = 10**9
t = otel_expansion.init("bench", "1.0", mode="service", level={level!r}, send=False, home=tempfile.mkdtemp(),
                        instrument=False, consent="notify")
command, feature = otel_expansion.command, otel_expansion.feature
out = []
for _ in range({rounds}):
    c = time.thread_time()
    for _ in range({n}):
        with command("job"):
            feature("step")
    out.append((time.thread_time() - c) / {n} * 1e6)
    t.recorder.drain()  # what the export thread's drain takes: the buffered spans and the usage aggregate
    t.service.usage.take()
print(json.dumps(out))
t.service.retire()
"""


def level_us(level: str, n: int, rounds: int) -> list[float]:
    """Host-thread us per command, one value per round, in a fresh process."""
    code = CHILD.format(root=str(ROOT), level=level, n=n, rounds=rounds)
    with tempfile.TemporaryDirectory() as home:
        env = {"PATH": "/usr/bin:/bin", "OTEL_EXPANSION_HOME": home, "PYTHONDONTWRITEBYTECODE": "1"}
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                             timeout=600).stdout
    return [float(x) for x in json.loads(out.splitlines()[-1])]


def stock_us(n: int, rounds: int) -> list[float]:
    """Stock SDK: span (BatchSpanProcessor, whose worker is never woken here: the host thread's share
    only) + counter + histogram, as the app would write them."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp = TracerProvider()
    size = n * rounds + 1
    tp.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=size, max_export_batch_size=size,
                                             schedule_delay_millis=3_600_000))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer, meter = tp.get_tracer("b"), mp.get_meter("b")
    counter = meter.create_counter("cli.command.invocations")
    hist = meter.create_histogram("cli.command.duration")
    out = []
    for _ in range(rounds):
        c = time.thread_time()
        for _ in range(n):
            with tracer.start_as_current_span("job", attributes={"cli.command.name": "job"}):
                pass
            attrs = {"cli.command.name": "job", "cli.command.outcome": "success"}
            counter.add(1, attrs)
            hist.record(0.01, attrs)
        out.append((time.thread_time() - c) / n * 1e6)
    tp.shutdown()
    mp.shutdown()
    return out


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    stock = statistics.median(stock_us(args.n, args.rounds))
    print(f"{'stock OTel span + counter + histogram':<40}{stock:>8.2f} us/command (host thread)")
    for level in ("basic", "enhanced", "full"):
        us = level_us(level, args.n, args.rounds)
        med = statistics.median(us)
        print(f"{'command() + feature(), ' + level:<40}{med:>8.2f} us/command (min {min(us):.2f})"
              f"   {med / stock:.2f}x stock")


if __name__ == "__main__":
    main()
