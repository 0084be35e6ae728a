"""The ``otel-expansion`` command: inspect, send, clear and control telemetry for an app's users.

A leaf: the library never imports it. It reads the same home directory the library writes. Each
subcommand lives in its own module with a ``register(subparsers)`` function; this one only wires them.
"""

from __future__ import annotations

import argparse
import sys

from otel_expansion.cli import backend, control, debug, docs, flush, show, status
from otel_expansion.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliError, safe_url

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "CliError", "build_parser", "main", "safe_url"]

COMMANDS = (status, show, flush, control, debug, backend, docs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-expansion", description="Inspect and control product telemetry.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"otel-expansion: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        from otel_expansion.spool.store import SpoolUnavailable

        if not isinstance(exc, SpoolUnavailable):
            raise
        print(f"otel-expansion: the spool cannot be used: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
