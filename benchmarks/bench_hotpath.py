"""Cost of recording one command in-process, redaction and level filter included.

* cli path: what a short-lived CLI pays per command (recorder: level rules, redaction, a small dict).
* service path: what a long-running program's export thread pays later per command (SDK replay: span
  through LevelFilter -> Redacting -> staging exporter, six instrument recordings). The program's own
  thread pays only the cli-path cost: replay happens off the host's thread.
* stock: one span + counter + histogram on a stock SDK with BatchSpanProcessor (export not counted).
* failing command: the same with an exception raised three frames deep and recorded (error type, the
  ``cli.error.signature``, details at full); stock records it with ``Span.record_exception``.

    python benchmarks/bench_hotpath.py [--n 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def per_call(fn: object, n: int, repeats: int = 5) -> float:
    """Median over repeats of the mean time per call, in microseconds."""
    results = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()  # type: ignore[operator]
        results.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(results)


def cli_path(level: str) -> object:
    from otel_expansion.collect import Recorder
    from otel_expansion.config import Level, Settings

    recorder = Recorder(Settings(service_name="b", home=tempfile.mkdtemp(), level=Level.parse(level)))

    def record() -> None:
        run = recorder.begin("remote add", "bench")
        recorder.end(run, None)
        if len(recorder.commands) > 200:
            recorder.drain()

    return record


def _fail(depth: int) -> None:
    """A failure three of the program's own frames deep (a raise, a lookup, the command's function)."""
    if depth:
        _fail(depth - 1)
    raise ValueError("no such volume")


def cli_failing_path(level: str) -> object:
    """A failing command: the exception raised through the program's frames, then recorded (error type,
    ``cli.error.signature``, at full the redacted details). The raise itself is in the figure, as it is in
    stock's failing row."""
    from otel_expansion.collect import Recorder
    from otel_expansion.config import Level, Settings

    recorder = Recorder(Settings(service_name="b", home=tempfile.mkdtemp(), level=Level.parse(level)))

    def record() -> None:
        run = recorder.begin("remote add", "bench")
        try:
            _fail(3)
        except ValueError as exc:
            recorder.end(run, exc)
        if len(recorder.commands) > 200:
            recorder.drain()

    return record


def service_path() -> object:
    from otel_expansion.collect import Recorder
    from otel_expansion.config import Level, Settings
    from otel_expansion.privacy.redaction import Redactor
    from otel_expansion.sdk.pipeline import Pipeline
    from otel_expansion.sdk.staging import Staging

    staging = Staging()
    pipeline = Pipeline({"service.name": "b"}, Level.ENHANCED, Redactor(), staging)
    recorder = Recorder(Settings(service_name="b", home=tempfile.mkdtemp(), level=Level.ENHANCED))

    def record() -> None:
        run = recorder.begin("remote add", "bench")
        recorder.end(run, None)
        body = recorder.drain()
        assert body is not None
        body["level"] = 2
        pipeline.ingest(body)
        if len(staging.spans) > 500:
            staging.take()

    return record


def stock_path(failing: bool = False) -> object:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"),
                                             max_queue_size=1_000_000, schedule_delay_millis=3_600_000))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = tp.get_tracer("b")
    meter = mp.get_meter("b")
    counter = meter.create_counter("cli.command.invocations")
    hist = meter.create_histogram("cli.command.duration")

    def record() -> None:
        with tracer.start_as_current_span("remote add", attributes={"cli.command.name": "remote add"}):
            pass
        attrs = {"cli.command.name": "remote add", "cli.command.outcome": "success"}
        counter.add(1, attrs)
        hist.record(0.01, attrs)

    def record_failure() -> None:
        span = tracer.start_span("remote add", attributes={"cli.command.name": "remote add"})
        try:
            _fail(3)
        except ValueError as exc:  # what a stock-instrumented CLI records: the exception event, the error type
            span.record_exception(exc)
            attrs = {"cli.command.name": "remote add", "cli.command.outcome": "error", "error.type": "ValueError"}
        span.end()
        counter.add(1, attrs)
        hist.record(0.01, attrs)

    return record_failure if failing else record


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # the stock exporter's retry chatter is not what we measure
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    rows = [
        ("cli path, basic", cli_path("basic")),
        ("cli path, enhanced", cli_path("enhanced")),
        ("cli path, full", cli_path("full")),
        ("service export thread, enhanced (SDK replay)", service_path()),
        ("stock OTel span + counter + histogram", stock_path()),
        ("failing command, cli path, basic", cli_failing_path("basic")),
        ("failing command, cli path, enhanced", cli_failing_path("enhanced")),
        ("failing command, cli path, full", cli_failing_path("full")),
        ("failing command, stock OTel (record_exception)", stock_path(failing=True)),
    ]
    results = {name: per_call(fn, args.n if "stock" not in name and "service" not in name else args.n // 4)
               for name, fn in rows}
    for name, us in results.items():
        stock = results["failing command, stock OTel (record_exception)" if name.startswith("failing")
                        else "stock OTel span + counter + histogram"]
        print(f"{name:<44}{us:>8.2f} us/command   {stock / us:>6.1f}x faster than stock" if us < stock
              else f"{name:<44}{us:>8.2f} us/command")


if __name__ == "__main__":
    main()
