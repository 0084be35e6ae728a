"""An argparse CLI with subcommands, instrumented with one line."""

from __future__ import annotations

import argparse
import sys

import otel_expansion

otel_expansion.init("argcli", "0.3.0")


def main() -> int:
    parser = argparse.ArgumentParser(prog="argcli")
    sub = parser.add_subparsers(dest="cmd", required=True)
    db = sub.add_parser("db")
    dbsub = db.add_subparsers(dest="dbcmd", required=True)
    migrate = dbsub.add_parser("migrate")
    migrate.add_argument("--password")
    sub.add_parser("crash")
    otel_expansion.add_telemetry_commands(parser)  # argcli telemetry status|enable|disable|...
    args = parser.parse_args()
    if args.cmd == "crash":
        raise ValueError("bad state for bob@example.com")
    print(f"ran {args.cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
