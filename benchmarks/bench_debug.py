"""What debugging and self-monitoring cost: debug mode at a CLI's exit, and the sent history in a sender round.

Real subprocesses of examples/democli.py with a private home, and a local OTLP receiver on 127.0.0.1.
Wall times are medians of N runs. Usage:

    python benchmarks/bench_debug.py [--runs 5] [--records 200]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(ROOT), OTEL_EXPANSION_HOME=str(home), OTEL_EXPANSION_SEND="false", **extra)
    return env


def cli_wall(home: Path, runs: int, **extra: str) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "examples" / "democli.py"), "hello", "x"],
                       env=env_for(home, **extra), capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flush_wall(records: int, url: str, runs: int, **extra: str) -> float:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            from otel_expansion.journal import store

            os.makedirs(home)
            now = time.time_ns()
            for i in range(records):
                cmd = {"name": f"cmd{i % 7}", "exe": "democli", "start": now, "end": now + 1000, "exit": 0, "rec": 900}
                store.append(str(home), {"v": 1, "level": 2, "commands": [cmd], "features": [], "exceptions": [],
                                         "resource": {"service.name": "democli"}}, now + i)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "otel_expansion", "flush", "--home", str(home), "--quiet"],
                           env=env_for(home, OTEL_EXPORTER_OTLP_ENDPOINT=url, **extra), capture_output=True,
                           check=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--records", type=int, default=200)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        off = cli_wall(Path(tmp) / "off", args.runs)
        on = cli_wall(Path(tmp) / "on", args.runs, OTEL_EXPANSION_DEBUG="1")
    with_history = flush_wall(args.records, url, args.runs)
    without = flush_wall(args.records, url, args.runs, OTEL_EXPANSION_SENT_MAX_BATCHES="0")
    result = {"cli_debug_off_s": round(off, 4), "cli_debug_on_s": round(on, 4), "debug_ratio": round(on / off, 2),
              "flush_with_history_s": round(with_history, 4), "flush_without_history_s": round(without, 4),
              "history_ratio": round(with_history / without, 3), "records": args.records, "runs": args.runs}
    print(json.dumps(result, indent=2))
    server.shutdown()


if __name__ == "__main__":
    main()
