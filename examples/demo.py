"""The README demo: an instrumented CLI run a few times, sent to the embedded backend, then reported.

Needs nothing but this package: the embedded backend (OTLP/HTTP + SQLite) stands in for a collector.
Everything lives in a temporary directory unless --keep DIR is given.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["hello", "ada"],
    ["hello", "grace", "--shout"],
    ["remote", "add", "https://user:pw@example.com/repo.git?token=abc"],
    ["work", "--seconds", "0.2"],
    ["fail"],
    ["hello", "linus"],
    ["nosuch"],
    ["remote", "add", "git@example.com:x.git"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", help="keep state and database in this directory")
    args = parser.parse_args()
    try:
        import click  # noqa: F401 - the example CLI is a click app
    except ImportError:
        print("the demo's example CLI needs click: pip install -e '.[examples]'", file=sys.stderr)
        return 2
    base = Path(args.keep or tempfile.mkdtemp(prefix="otel-expansion-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    db = base / "backend.sqlite"
    home = base / "democli-home"

    from otel_expansion.backend.server import serve

    ready = threading.Event()
    port: list[int] = []
    stop = threading.Event()

    def on_ready(p: int) -> None:
        port.append(p)
        ready.set()

    server = threading.Thread(target=serve, args=("127.0.0.1", 0, db), kwargs={"ready": on_ready, "stop": stop},
                              daemon=True)
    server.start()
    if not ready.wait(10):
        print("the embedded backend did not start", file=sys.stderr)
        return 1
    endpoint = f"http://127.0.0.1:{port[0]}"
    print(f"embedded backend listening on {endpoint} (database {db})\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "DO_NOT_TRACK"}
    env.update(OTEL_EXPANSION_HOME=str(home), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
               PYTHONPATH=os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for argv in RUNS:
        result = subprocess.run([sys.executable, str(HERE / "democli.py"), *argv], env=env, capture_output=True,
                                text=True)
        first = (result.stdout or result.stderr).strip().splitlines()
        print(f"$ democli {' '.join(argv):<60} exit {result.returncode}  {first[-1] if first else ''}")

    print("\n$ otel-expansion flush")
    subprocess.run([sys.executable, "-m", "otel_expansion", "flush", "--home", str(home)], env=env, check=False)
    print("\n$ otel-expansion report")
    subprocess.run([sys.executable, "-m", "otel_expansion", "report", "--db", str(db)], env=env, check=False)
    tool = Path(sys.executable).with_name("otel-expansion")  # the venv's command (it may not be on PATH)
    print(f"\ndashboard: run `{tool} backend serve --db {db} --port 0` and open the URL it prints")
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
