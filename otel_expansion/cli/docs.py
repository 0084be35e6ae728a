"""``otel-expansion docs``: write TELEMETRY.md from the signal definitions, or one app's own document."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from otel_expansion.cli.common import EXIT_OK, CliError, add_json, emit_json


def document_of(app: str, timeout: float = 60.0) -> str:
    """TELEMETRY.md of an installed program (on PATH) or a script (a path, with or without .py), from its
    own `telemetry docs`.

    Run with DO_NOT_TRACK=1, so generating the document records nothing and shows no notice.
    """
    import shutil
    import subprocess

    script = next((c for c in (app, app + ".py") if os.path.isfile(c)), None) if os.sep in app or \
        not shutil.which(app) else None
    if script is not None:  # a script: run it directly when it can be (its shebang), else with this Python
        runnable = os.access(script, os.X_OK) and _has_shebang(script)
        argv = [os.path.abspath(script)] if runnable else [sys.executable, script]
    elif shutil.which(app):
        argv = [str(shutil.which(app))]
    else:
        raise ValueError(f"no program {app!r} on PATH and no script {app!r} (pass its name or its file)")
    env = dict(os.environ, DO_NOT_TRACK="1")
    result = subprocess.run([*argv, "telemetry", "docs"], env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0 or not result.stdout.startswith("# What "):
        tail = (result.stderr.strip().splitlines() or [""])[-1]
        raise ValueError(f"`{app} telemetry docs` failed (exit {result.returncode}{': ' + tail if tail else ''}); "
                         "does it call otel_expansion.add_telemetry_commands()?")
    return result.stdout


def _has_shebang(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from otel_expansion.sdk.docs import telemetry_markdown

    if getattr(args, "app", None):  # one app's document, from its own `telemetry docs` (controls/)
        try:
            text = document_of(args.app)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    else:
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
    p.add_argument("--app", help="an instrumented program (name on PATH) or script (its file): write its own document")
    add_json(p)
    p.set_defaults(func=run)
