"""``otel-expansion backend serve`` and ``otel-expansion report``: the embedded analytics backend."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from otel_expansion.cli.common import EXIT_OK, CliError, base_dir, port_free, require_tables


def default_db() -> str:
    return os.path.join(os.path.dirname(base_dir()), "backend", "telemetry.sqlite")


def run_serve(args: argparse.Namespace) -> int:
    from otel_expansion.backend.server import serve

    db = Path(args.db).expanduser()
    port_free(args.host, args.port)  # a busy port is reported before anything is created
    db.parent.mkdir(parents=True, exist_ok=True)

    def ready(port: int) -> None:
        if args.json:
            print(json.dumps({"url": f"http://{args.host}:{port}/", "port": port, "db": str(db)}), flush=True)
            return
        print(f"otel-expansion backend: OTLP/HTTP on http://{args.host}:{port} (POST /v1/traces, /v1/metrics, "
              f"/v1/logs), dashboard http://{args.host}:{port}/ , data in {db}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port, db, ready=ready)
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from otel_expansion.backend.report import build_report, render_report

    db = Path(args.db).expanduser()
    if not db.exists():
        raise CliError(f"no backend database at {db}; run `otel-expansion backend serve` first")
    require_tables(str(db), {"spans", "metric_points"}, "an otel-expansion backend database")  # read-only check
    report = build_report(db)
    print(json.dumps(report, indent=2, default=str) if args.json else render_report(report))
    return EXIT_OK


def register(sub: Any) -> None:
    backend = sub.add_parser("backend", help="the embedded analytics backend")
    bsub = backend.add_subparsers(dest="backend_command", metavar="ACTION")
    bsub.required = True
    p = bsub.add_parser("serve", help="receive OTLP/HTTP and serve the dashboard")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4318)
    p.add_argument("--db", default=default_db())
    p.add_argument("--json", action="store_true", help='print {"url", "port", "db"} once listening')
    p.set_defaults(func=run_serve)
    p = sub.add_parser("report", help="usage report from the embedded backend")
    p.add_argument("--db", default=default_db())
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_report)
