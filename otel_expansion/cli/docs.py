"""``otel-expansion docs``: write TELEMETRY.md from the signal definitions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from otel_expansion.cli.common import EXIT_OK, add_json, emit_json


def run(args: argparse.Namespace) -> int:
    from otel_expansion.sdk.docs import telemetry_markdown

    text = telemetry_markdown()
    if args.output == "-":
        if args.json:
            emit_json({"output": "-", "markdown": text})
        else:
            sys.stdout.write(text)
        return EXIT_OK
    Path(args.output).write_text(text)
    if args.json:
        emit_json({"output": args.output, "bytes": len(text.encode())})
    else:
        print(f"wrote {args.output}")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("docs", help="write TELEMETRY.md from the signal definitions")
    p.add_argument("--output", default="TELEMETRY.md", help="file to write, or - for stdout")
    add_json(p)
    p.set_defaults(func=run)
