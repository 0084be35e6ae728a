"""A small argparse CLI to ship as a PyInstaller app (tests/shipping): telemetry with one line, delivered by
the frozen app itself, which serves as its own sender (no Python needed on the user's machine).

    pyinstaller --onefile examples/frozen_cli.py    # or one-dir; the package's PyInstaller hook does the rest
"""

from __future__ import annotations

import argparse
import os
import sys

import otel_expansion

otel_expansion.init("frozencli", "1.0.0")


def main() -> int:
    runlog = os.environ.get("FROZENCLI_RUNLOG")  # the tests count the program's runs with it
    if runlog:
        with open(runlog, "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\n")
    parser = argparse.ArgumentParser(prog="frozencli")
    sub = parser.add_subparsers(dest="cmd", required=True)
    greet = sub.add_parser("greet")
    greet.add_argument("name")
    sub.add_parser("fail")
    sub.add_parser("crash")  # an uncaught exception two calls deep: its error signature names them
    args = parser.parse_args()
    if args.cmd == "crash":
        _crash()
    if args.cmd == "fail":
        print("it failed", file=sys.stderr)
        return 3
    print(f"hello {args.name}")
    return 0


def _crash() -> None:
    _load("settings.toml")


def _load(name: str) -> None:
    raise FileNotFoundError(name)


if __name__ == "__main__":
    sys.exit(main())
