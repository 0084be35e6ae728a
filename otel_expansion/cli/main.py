"""The ``otel-expansion`` command: inspect, send, clear and control telemetry for an app's users.

A leaf: the library never imports it. It reads the same home directory the library writes. Each
subcommand lives in its own module with a ``register(subparsers)`` function; this one only wires them
and turns every ordinary failure into one line on stderr and a non-zero exit (never a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from otel_expansion.cli import backend, control, debug, docs, flush, show, status, ui
from otel_expansion.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliError, Parser, safe_url

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_PIPE", "EXIT_USAGE", "CliError", "build_parser", "main", "safe_url"]

COMMANDS = (status, show, flush, control, debug, ui, backend, docs)
EXIT_PIPE = 141
"""A closed pipe (`otel-expansion show | head`): no message, 128 + SIGPIPE, the status git leaves."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="otel-expansion", description="Inspect and control product telemetry.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr; with --json also ``{"error": ..., "exit_code": ...}`` on stdout."""
    try:
        print(f"otel-expansion: {message}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"error": message, "exit_code": code}))
    except OSError:
        pass
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except CliError as exc:
        return _fail(args, str(exc), exc.code)
    except BrokenPipeError:  # `otel-expansion show | head`: the reader left; end quietly, as git and grep do
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not complain either
            os.close(devnull)
        except (OSError, ValueError):
            pass
        return EXIT_PIPE
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130)
    except Exception as exc:
        from otel_expansion.config import variable
        from otel_expansion.spool.store import SpoolUnavailable

        if variable("OTEL_EXPANSION_DEBUG") is True:
            raise
        if isinstance(exc, SpoolUnavailable):
            return _fail(args, f"the spool cannot be used: {exc}", EXIT_FAIL)
        if isinstance(exc, PermissionError):
            return _fail(args, f"permission denied: {exc.filename or exc}", EXIT_FAIL)
        import sqlite3

        if isinstance(exc, sqlite3.Error):
            return _fail(args, f"database error: {exc}", EXIT_FAIL)
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            return _fail(args, f"{exc.strerror or exc}{where}", EXIT_FAIL)
        return _fail(args, f"unexpected error: {type(exc).__name__}: {exc} "
                     "(OTEL_EXPANSION_DEBUG=1 shows the traceback)", EXIT_FAIL)


if __name__ == "__main__":
    sys.exit(main())
