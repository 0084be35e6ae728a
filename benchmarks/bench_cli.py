"""Startup, exit and memory of a hello-world click CLI: bare, otel-expansion, stock OpenTelemetry.

Each variant runs as a real subprocess against a collector that is up, refused or blackholed (all on
127.0.0.1), the variants in turn (a rotated order each round, the same pause after every run), so a slow
phase of the machine hits them alike. Wall time is the median of N runs, with the first quartile beside it
(slow phases only ever add time); peak RSS comes from wait4() of each child. Usage:

    python benchmarks/bench_cli.py [--runs 7] [--stock-down-runs 2] [--json out.json]
    python benchmarks/bench_cli.py --paired 41     # bare and ours (collector up) alternately: the added
                                                   # time as the median of per-pair differences

``--paired`` is for a shared, busy machine: a burst of load hits both runs of a pair alike, where
separate medians taken minutes apart mostly measure the load.

    python benchmarks/bench_cli.py --paired 61 --against ../main   # bare, ours and another tree's package
                                                   # (main's) in turn: both against the same bare runs

    python benchmarks/bench_cli.py --instructions  # bare and ours under valgrind (cachegrind): the
                                                   # instructions each run executes, load-independent

``--instructions`` counts what the CPU is asked to do rather than how long a loaded machine takes to do
it: the same count on an idle and on a saturated box (to about 0.01%), so a change of a few hundred
microseconds shows where wall and CPU medians cannot. Needs ``valgrind`` on PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

BARE = """
import click
@click.command()
@click.argument("name")
def hello(name):
    click.echo(f"hello {name}")
hello()
"""

OURS = """
import click
import otel_expansion
otel_expansion.init("bench", "1.0")
@click.command()
@click.argument("name")
def hello(name):
    click.echo(f"hello {name}")
hello()
"""

# Stock OpenTelemetry set up the way its documentation shows.
STOCK = """
import click
from opentelemetry import trace, metrics
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
resource = Resource.create({"service.name": "bench"})
tp = TracerProvider(resource=resource)
tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(tp)
mp = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
metrics.set_meter_provider(mp)
tracer = trace.get_tracer("bench")
meter = metrics.get_meter("bench")
runs = meter.create_counter("cli.command.invocations")
duration = meter.create_histogram("cli.command.duration")
@click.command()
@click.argument("name")
def hello(name):
    with tracer.start_as_current_span("hello"):
        click.echo(f"hello {name}")
    runs.add(1, {"cli.command.name": "hello"})
    duration.record(0.001, {"cli.command.name": "hello"})
hello()
"""


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def collector_up() -> tuple[str, http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}", srv


def refused() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def blackholed() -> tuple[str, socket.socket, list[socket.socket]]:
    """A listener whose accept queue is full: new connections hang in SYN."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    fillers = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", port))
        fillers.append(c)
    return f"http://127.0.0.1:{port}", s, fillers


def run_once(script: Path, env: dict[str, str]) -> tuple[float, int]:
    elapsed, rss, _ = run_measured(script, env)
    return elapsed, rss


def run_measured(script: Path, env: dict[str, str]) -> tuple[float, int, float]:
    """(wall seconds, peak RSS bytes, CPU seconds user+system) of one run of ``script``."""
    t0 = time.perf_counter()
    pid = os.posix_spawn(sys.executable, [sys.executable, str(script), "world"], env,
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{script.name} failed with status {status}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def wait_for_sender(env: dict[str, str], limit_s: float = 30.0) -> None:
    """Let a sender started by a previous run finish, so runs are measured in steady state.

    Every run is followed by the same 0.2 s pause, with or without a home: a process started after a pause
    finds a colder CPU (caches, frequency) than one started right after another, and on this box that
    alone moved a variant's median by several milliseconds."""
    time.sleep(0.2)
    home = env.get("OTEL_EXPANSION_HOME")
    if not home:
        return
    sys.path.insert(0, str(ROOT))
    from otel_expansion.export.launcher import sender_running

    deadline = time.monotonic() + limit_s
    while os.path.isdir(home) and sender_running(home) and time.monotonic() < deadline:
        time.sleep(0.1)


Variants = dict[str, tuple[Path, dict[str, str]]]
"""Name -> (script, environment)."""


def measure(variants: Variants, runs: int, warmup: int = 1) -> dict[str, dict[str, Any]]:
    """Run the variants in turn, ``runs`` rounds, each round in a rotated order, each run followed by the same
    pause (:func:`wait_for_sender`): a slow phase of a shared or virtual machine (this one runs the same
    process anywhere from 46 to 75 ms, in phases) then hits every variant alike, where measuring one variant
    after another measured the phases."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            script, env = variants[name]
            run_once(script, env)
            wait_for_sender(env)
    times: dict[str, list[float]] = {name: [] for name in names}
    rss: dict[str, list[int]] = {name: [] for name in names}
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            script, env = variants[name]
            t, r = run_once(script, env)
            times[name].append(t)
            rss[name].append(r)
            wait_for_sender(env)  # a run that starts a sender is measured; the sender's CPU is not
    return {name: {"median_s": statistics.median(times[name]), "min_s": min(times[name]),
                   "max_s": max(times[name]), "peak_rss_mib": statistics.median(rss[name]) / 2**20, "runs": runs,
                   "times_s": times[name]}
            for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--stock-down-runs", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--paired", type=int, default=0, metavar="N",
                        help="only bare vs ours (collector up), N alternating pairs")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="with --paired or --instructions: another source tree's package as a third variant "
                             "(e.g. main's), measured in the same rounds")
    parser.add_argument("--instructions", action="store_true",
                        help="only bare vs ours: instructions executed per run (valgrind cachegrind)")
    args = parser.parse_args()

    # An installed package has bytecode compiled by pip; make the source tree match that.
    import compileall

    compileall.compile_dir(str(ROOT / "otel_expansion"), quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    scripts = {}
    for name, src in (("bare", BARE), ("ours", OURS), ("stock", STOCK)):
        scripts[name] = tmp / f"{name}.py"
        scripts[name].write_text(src)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "DO_NOT_TRACK"}
    base_env["PYTHONPATH"] = str(ROOT)

    up_url, up_srv = collector_up()
    if args.instructions:
        instructions(scripts, base_env, up_url, tmp, args.against)
        up_srv.shutdown()
        return
    if args.paired:
        paired(scripts, base_env, up_url, tmp, args.paired, args.against)
        up_srv.shutdown()
        return
    refused_url = refused()
    bh_url, bh_sock, fillers = blackholed()
    variants: Variants = {"bare": (scripts["bare"], base_env)}
    for label, url in (("up", up_url), ("refused", refused_url), ("blackholed", bh_url)):
        home = tmp / f"home-{label}"
        variants[f"ours/{label}"] = (scripts["ours"], {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": url,
                                                        "OTEL_EXPANSION_HOME": str(home)})
    variants["stock/up"] = (scripts["stock"], {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": up_url})
    results = measure(variants, args.runs)
    for label, url in (("refused", refused_url), ("blackholed", bh_url)):  # seconds each: fewer runs, apart
        env = {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": url}
        results.update({f"stock/{label}": r for r in measure({label: (scripts["stock"], env)},
                                                              args.stock_down_runs, warmup=0).values()})
    up_srv.shutdown()
    bh_sock.close()
    for c in fillers:
        c.close()

    bare = results["bare"]["median_s"]
    bare_q1 = quartile(results["bare"]["times_s"])
    bare_rss = results["bare"]["peak_rss_mib"]
    # The first quartile beside the median: this box's slow phases only ever add time, so the faster runs of
    # each variant are the ones least disturbed (the quartile still takes a quarter of the runs, not one).
    print(f"{'variant':<18}{'median':>10}{'added':>10}{'ratio':>8}{'1st quartile':>14}{'added':>10}"
          f"{'peak RSS':>11}{'+RSS':>9}")
    for name, r in results.items():
        q1 = quartile(r["times_s"])
        print(f"{name:<18}{r['median_s'] * 1000:>8.1f}ms{(r['median_s'] - bare) * 1000:>+8.1f}ms"
              f"{r['median_s'] / bare:>7.2f}x{q1 * 1000:>12.1f}ms{(q1 - bare_q1) * 1000:>+8.1f}ms"
              f"{r['peak_rss_mib']:>8.1f}MiB{r['peak_rss_mib'] - bare_rss:>+7.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def quartile(times: list[float]) -> float:
    """The first quartile (the run a quarter of the way up when sorted)."""
    ordered = sorted(times)
    return ordered[(len(ordered) - 1) // 4]


def paired(scripts: dict[str, Path], base_env: dict[str, str], url: str, tmp: Path, pairs: int,
           against: Path | None = None) -> None:
    """Bare and ours alternately (order flipped every pair); the added time is the median difference.

    ``against``: the root of another source tree (say main's, ``git worktree add`` or ``git archive``): its
    package runs as a third variant, the three in a rotated order each round, so both trees are measured
    against the same bare runs in the same minutes, and their difference per round is printed too. Two
    figures per run: wall time, and the child's CPU time (user + system from ``wait4``), which for a
    single-threaded CLI that waits on nothing is its wall time minus the machine's load; with the load
    averages of the window."""
    env = {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPANSION_HOME": str(tmp / "home-paired")}
    variants: Variants = {"bare": (scripts["bare"], base_env), "ours": (scripts["ours"], env)}
    if against is not None:
        import compileall

        compileall.compile_dir(str(against / "otel_expansion"), quiet=1)
        variants["against"] = (scripts["ours"], {**env, "PYTHONPATH": str(against),
                                                 "OTEL_EXPANSION_HOME": str(tmp / "home-against")})
    for name in variants:
        if name != "bare":  # creates the home: the steady state is measured
            run_once(*variants[name])
            wait_for_sender(variants[name][1])
    names = list(variants)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    loads = [os.getloadavg()[0]]
    for i in range(pairs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            script, run_env = variants[name]
            t, _, c = run_measured(script, run_env)
            wall[name].append(t)
            cpu[name].append(c)
        for name in names[1:]:
            wait_for_sender(variants[name][1])
        loads.append(os.getloadavg()[0])
    print(f"{pairs} rounds ({' / '.join(names)} in a rotated order), load average {min(loads):.1f}-{max(loads):.1f}")
    comparisons = [("ours", "bare")] + ([("against", "bare"), ("ours", "against")] if against is not None else [])
    for label, series in (("wall", wall), ("CPU (user+system)", cpu)):
        print(f"{label}: medians " + ", ".join(f"{n} {statistics.median(series[n]) * 1000:.1f} ms" for n in names)
              + "; first quartiles " + ", ".join(f"{n} {quartile(series[n]) * 1000:.1f} ms" for n in names))
        for a, b in comparisons:
            diffs = sorted(x - y for x, y in zip(series[a], series[b], strict=True))
            q1, q3 = diffs[len(diffs) // 4], diffs[(3 * len(diffs)) // 4]
            print(f"  {a} - {b}, per round: median {statistics.median(diffs) * 1000:+.2f} ms (quartiles "
                  f"{q1 * 1000:+.2f} .. {q3 * 1000:+.2f} ms); between first quartiles "
                  f"{(quartile(series[a]) - quartile(series[b])) * 1000:+.2f} ms")


def count_instructions(script: Path, env: dict[str, str]) -> int:
    """Instructions one run of ``script`` executes (valgrind's cachegrind, cache simulation off)."""
    import subprocess

    result = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                             sys.executable, str(script), "world"], env=env, capture_output=True, text=True,
                            timeout=600, cwd=script.parent, check=True)
    line = next(x for x in result.stderr.splitlines() if "I" in x and "refs:" in x)
    return int(line.split("refs:")[1].replace(",", "").strip())


def instructions(scripts: dict[str, Path], base_env: dict[str, str], url: str, tmp: Path,
                 against: Path | None = None) -> None:
    """Bare and ours (collector up, steady state: the home exists, no sender due) counted under valgrind.

    Hash randomisation is fixed (PYTHONHASHSEED=0) so that two runs of one script count alike."""
    import shutil

    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind on PATH (apt-get install valgrind)")
        return
    env = {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPANSION_HOME": str(tmp / "home-instr"),
           "PYTHONHASHSEED": "0"}
    bare_env = {**base_env, "PYTHONHASHSEED": "0"}
    run_once(scripts["ours"], env)  # creates the home
    wait_for_sender(env)
    bare = count_instructions(scripts["bare"], bare_env)
    ours = count_instructions(scripts["ours"], env)
    stock = count_instructions(scripts["stock"], {**bare_env, "OTEL_EXPORTER_OTLP_ENDPOINT": url})
    print(f"instructions per run: bare {bare / 1e6:.2f} M, ours {ours / 1e6:.2f} M, stock OTel (collector up) "
          f"{stock / 1e6:.2f} M; added: ours {(ours - bare) / 1e6:+.2f} M ({ours / bare:.3f}x), stock "
          f"{(stock - bare) / 1e6:+.2f} M ({stock / bare:.2f}x)")
    if against is not None:
        import compileall

        compileall.compile_dir(str(against / "otel_expansion"), quiet=1)
        other_env = {**env, "PYTHONPATH": str(against), "OTEL_EXPANSION_HOME": str(tmp / "home-instr-against")}
        run_once(scripts["ours"], other_env)
        wait_for_sender(other_env)
        other = count_instructions(scripts["ours"], other_env)
        print(f"against {against}: {other / 1e6:.2f} M, added {(other - bare) / 1e6:+.2f} M; ours - against "
              f"{(ours - other) / 1e6:+.2f} M")


if __name__ == "__main__":
    main()
