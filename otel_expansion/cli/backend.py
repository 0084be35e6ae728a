"""``otel-expansion backend serve`` and ``otel-expansion report``: the embedded analytics backend.

The report runs against the embedded SQLite store (opened read-only; a database that is not ours is
refused untouched) or, with ``--clickhouse``, against the tables the collector's ClickHouse exporter writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from otel_expansion.cli.common import EXIT_FAIL, EXIT_OK, CliError, port_free, port_number


def _backend_db(args: argparse.Namespace) -> Path:
    from otel_expansion.backend.paths import default_db_path

    return Path(args.db).expanduser() if args.db else default_db_path()


def _clickhouse_engine(url: str) -> Any:
    from otel_expansion.backend.clickhouse import ClickHouseEngine, http_runner

    try:
        return ClickHouseEngine(http_runner(url))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def run_serve(args: argparse.Namespace) -> int:
    import signal

    from otel_expansion.backend.limits import Limits
    from otel_expansion.backend.paths import BackendPathError
    from otel_expansion.backend.server import serve
    from otel_expansion.backend.store import ForeignDatabase

    db = _backend_db(args)
    port_free(args.host, args.port)  # a busy port is reported before anything is created
    engine = (lambda: _clickhouse_engine(args.clickhouse)) if args.clickhouse else None
    limits = Limits(value_chars=args.max_value_chars, distinct_values=args.max_distinct_values)

    def ready(port: int) -> None:
        if args.json:
            print(json.dumps({"url": f"http://{args.host}:{port}/", "port": port, "db": str(db)}), flush=True)
            return
        print(f"otel-expansion backend: OTLP/HTTP on http://{args.host}:{port} (POST /v1/traces, /v1/metrics, "
              f"/v1/logs), dashboard http://{args.host}:{port}/ , data in {db}", flush=True)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(args.host, args.port, db, ready=ready, limits=limits, retention_days=args.retention_days,
                  allowed_hosts=tuple(args.allow_host), engine=engine,
                  workers=None if args.workers is None else max(0, args.workers))
        # stopped and on the way out (the interpreter's own finalization takes a while): a later SIGTERM
        # (a shell's `kill %1` and then its exit trap's) must not turn the clean stop into a death by signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except (BackendPathError, ForeignDatabase) as exc:
        raise CliError(str(exc), EXIT_FAIL) from None
    except OSError as exc:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_FAIL) from None
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from otel_expansion.backend.query import Filter, SQLiteEngine
    from otel_expansion.backend.report import render_report, report_from, terminal_safe
    from otel_expansion.backend.server import QueryError, parse_filter

    query = {k: [v] for k, v in (("service", args.service), ("version", args.version), ("since", args.since),
                                 ("until", args.until), ("days", args.days)) if v}
    try:
        report_filter: Filter = parse_filter(query, time.time_ns())
    except QueryError as exc:
        raise CliError(str(exc)) from None
    if args.clickhouse:
        engine = _clickhouse_engine(args.clickhouse)
    else:
        from otel_expansion.backend.paths import BackendPathError
        from otel_expansion.backend.store import ForeignDatabase, open_readonly

        db = _backend_db(args)
        if not db.is_file():
            raise CliError(f"no backend database at {db}; run `otel-expansion backend serve` first")
        try:
            engine = SQLiteEngine(open_readonly(db))
        except (BackendPathError, ForeignDatabase) as exc:  # the command could not do its job: exit 1
            raise CliError(str(exc), EXIT_FAIL) from None
    try:
        report = report_from(engine, report_filter)
        _require_known_app(report, args.service, args.version)
        shape = _command_distribution(engine, report_filter, report, args.command)
    except OSError as exc:  # ClickHouse unreachable or refusing the query
        raise CliError(f"ClickHouse query failed: {exc}", EXIT_FAIL) from None
    finally:
        engine.close()
    if shape is not None:
        report["distribution"] = shape
    if args.json:
        _emit(json.dumps(report, indent=2, default=str))
    else:
        from otel_expansion.backend.distribution import render_distribution

        text = render_report(report)
        if shape is not None:
            text += "\n" + "\n".join(render_distribution(terminal_safe(shape))) + "\n"
        _emit(text)
    return EXIT_OK


def _command_distribution(engine: Any, report_filter: Any, report: dict[str, Any], command: str | None) -> Any:
    """``--command X``: the distribution behind X's percentiles (an unknown command is a typo: exit 1)."""
    if command is None:
        return None
    from otel_expansion.backend.distribution import distribution

    known = [c["command"] for c in report["commands"]]
    if command not in known:
        from otel_expansion.backend.report import terminal_safe

        shown = terminal_safe(", ".join(sorted(known)[:20])) or "none in this range"  # stored names: untrusted
        raise CliError(f"no data for command {command!r} (commands: {shown})", EXIT_FAIL)
    return distribution(engine, report_filter, "command", command)


def _emit(text: str) -> None:
    """Print the report; a reader that stops early (``report | head``) ends the command quietly with
    the shell's broken-pipe status (141), as every ``otel-expansion`` command does (cli/main.py)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _require_known_app(report: dict[str, Any], service: str | None, version: str | None) -> None:
    """A filter naming an app or version the store has never seen is a typo, not "no usage": exit 1."""
    from otel_expansion.backend.report import terminal_safe

    apps = report.get("catalog") or []
    if service is not None and apps and service not in {a["service"] for a in apps}:
        known = terminal_safe(", ".join(sorted({str(a["service"]) for a in apps})[:20]))  # stored: untrusted
        raise CliError(f"no data for app {service!r} (known apps: {known})", EXIT_FAIL)
    if version is not None and apps:
        versions = {a["version"] for a in apps if service is None or a["service"] == service}
        if version not in versions:
            known = terminal_safe(", ".join(sorted(str(v) for v in versions)[:20]))
            raise CliError(f"no data for version {version!r} (known versions: {known})", EXIT_FAIL)


def register(sub: Any) -> None:
    backend = sub.add_parser("backend", help="the embedded analytics backend")
    bsub = backend.add_subparsers(dest="backend_command", metavar="ACTION")
    bsub.required = True
    db_help = "SQLite database (default: <data dir>/otel-expansion/backend/telemetry.sqlite)"
    p = bsub.add_parser("serve", help="receive OTLP/HTTP and serve the dashboard")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=4318)
    p.add_argument("--db", help=db_help)
    p.add_argument("--retention-days", type=float, default=30.0,
                   help="days of raw spans/points/logs kept for drill-down; rollups are kept (0: keep all)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also accept this Host header name (e.g. a DNS name the backend is reached by)")
    p.add_argument("--max-value-chars", type=int, default=256, help="longest stored grouping value")
    p.add_argument("--max-distinct-values", type=int, default=1000,
                   help="distinct values per app and dimension before new ones count as (other)")
    p.add_argument("--clickhouse", metavar="URL", help="dashboard reads this ClickHouse (http://host:8123)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes decoding requests (default: one per core beyond the writer's; 0: none)")
    p.add_argument("--json", action="store_true", help='print {"url", "port", "db"} once listening')
    p.set_defaults(func=run_serve)
    p = sub.add_parser("report", help="usage report from the embedded backend or ClickHouse")
    p.add_argument("--db", help=db_help)
    p.add_argument("--clickhouse", metavar="URL",
                   help="read the collector's ClickHouse tables instead (http://user:pw@host:8123/?database=...)")
    p.add_argument("--service", help="only this app (service.name)")
    p.add_argument("--version", help="only this app version (service.version)")
    p.add_argument("--since", help="first UTC day (YYYY-MM-DD or ISO date-time)")
    p.add_argument("--until", help="last UTC day, included (YYYY-MM-DD or ISO date-time)")
    p.add_argument("--days", help="the last N UTC days, today included (compared with the N days before)")
    p.add_argument("--command", help="also print the distribution behind this command's percentiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_report)
