"""The ``otel-expansion`` command: inspect, send, clear and control telemetry for an app's users.

A leaf: the library never imports it. It reads the same home directory the library writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otel_expansion.config import paths
from otel_expansion.config.levels import Level
from otel_expansion.config.settings import VARIABLES, Settings, resolve

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def safe_url(url: str) -> str:
    """A URL fit to print: credentials and query string masked."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if "@" in parts.netloc:
        netloc = "<credentials>@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "<query>" if parts.query else "", ""))


def _base_dir() -> str:
    return os.path.dirname(paths.default_home("x"))


def find_home(args: argparse.Namespace) -> tuple[str, str]:
    """(home, service): --home, then --service, then OTEL_EXPANSION_HOME, then the only known service."""
    if getattr(args, "home", None):
        home = os.path.abspath(args.home)
        return home, args.service or _service_of(home)
    if getattr(args, "service", None):
        return paths.default_home(args.service), args.service
    env_home = os.environ.get("OTEL_EXPANSION_HOME")
    if env_home:
        home = os.path.abspath(env_home)
        return home, _service_of(home)
    base = _base_dir()
    known = sorted(os.listdir(base)) if os.path.isdir(base) else []
    if len(known) == 1:
        return os.path.join(base, known[0]), known[0]
    hint = f" Known services: {', '.join(known)}." if known else " No service has recorded telemetry yet."
    raise CliError(f"which app? pass --service NAME or --home DIR (or set OTEL_EXPANSION_HOME).{hint}")


def _service_of(home: str) -> str:
    """The app's name as its telemetry recorded it, else the directory's name."""
    raw = paths.read_small(os.path.join(home, paths.SERVICE_FILE), 256)
    return raw.decode("utf-8", "replace").strip() if raw else os.path.basename(home)


def settings_of(args: argparse.Namespace) -> Settings:
    home, service = find_home(args)
    from otel_expansion.privacy.consent import stored_choice
    from otel_expansion.workers.sender import stored_endpoint

    endpoint = getattr(args, "endpoint", None) or stored_endpoint(home)
    return resolve(service, home=home, stored_choice=stored_choice(home), endpoint=endpoint)


def _fmt_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _spool_stats(s: Settings) -> Any:
    if not os.path.exists(os.path.join(s.home, paths.SPOOL_FILE)):
        return None
    from otel_expansion.workers.sender import open_spool

    spool = open_spool(s.home, s)
    try:
        return spool.stats()
    finally:
        spool.close()


def cmd_status(args: argparse.Namespace) -> int:
    s = settings_of(args)
    from otel_expansion.export import launcher
    from otel_expansion.journal import store as journal
    from otel_expansion.privacy.consent import stored_choice

    stats = _spool_stats(s)
    info: dict[str, Any] = {
        "service": s.service_name,
        "home": s.home,
        "level": str(s.level),
        "level_source": s.level_source,
        "opted_out_by": s.opt_out_reason,
        "consent": stored_choice(s.home) or "not asked",
        "journal_records": journal.count(s.home),
        "spool_series": stats.series if stats else 0,
        "spool_spans": stats.spans if stats else 0,
        "spool_batches_in_flight": stats.batches if stats else 0,
        "spool_bytes": stats.bytes_on_disk if stats else 0,
        "counters": stats.counters if stats else {},
        "sender_running": launcher.sender_running(s.home) if os.path.isdir(s.home) else False,
        "next_send": _fmt_time(launcher.next_send_at(s.home)) if launcher.next_send_at(s.home) else "on next run",
    }
    id_path = os.path.join(s.home, paths.INSTALL_ID_FILE)
    info["installation_id"] = Path(id_path).read_text().strip() if os.path.exists(id_path) else None
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """Everything pending, as the collector would receive it (OTLP/JSON after ingest) plus raw journal."""
    s = settings_of(args)
    from otel_expansion.journal import store as journal

    pending_records: list[Mapping[str, object]] = []
    for path in journal.pending(s.home)[: args.limit]:
        try:
            pending_records.append(journal.read(path))
        except (journal.CorruptRecord, OSError) as exc:
            pending_records.append({"unreadable": os.path.basename(path), "error": str(exc)})
    out: dict[str, Any] = {"journal": pending_records}
    if os.path.exists(os.path.join(s.home, paths.SPOOL_FILE)):
        from otel_expansion.otlp.encode import metrics_request, to_dict, traces_request
        from otel_expansion.workers.sender import open_spool

        spool = open_spool(s.home, s)
        try:
            points, spans = spool.pending(limit=args.limit)
        finally:
            spool.close()
        for name, message in (("metrics", metrics_request(points)), ("traces", traces_request(spans))):
            out[name] = to_dict(message)
    print(json.dumps(out, indent=2, default=str))
    return EXIT_OK


def cmd_flush(args: argparse.Namespace) -> int:
    s = settings_of(args)
    from otel_expansion.workers.sender import SenderBusy, run_round

    if not os.path.isdir(s.home):
        print("nothing to send: no telemetry recorded yet")
        return EXIT_OK
    if not s.enabled:
        print(f"note: telemetry is off for new runs ({s.opt_out_reason or s.level_source}); sending what is pending")
    last = [0.0]

    def progress(stage: str, info: Any) -> None:
        if args.quiet or time.monotonic() - last[0] < 0.5:
            return
        last[0] = time.monotonic()
        if stage == "ingest":
            done, total = info
            print(f"  ingesting journal: {done}/{total} records", file=sys.stderr)
        elif info.error:
            print(f"  collector unavailable ({info.error}); retrying", file=sys.stderr)
        else:
            print(f"  sent {info.batches_sent} batches ({info.spans_sent} spans, {info.points_sent} points)",
                  file=sys.stderr)

    try:
        from otel_expansion.config.otlp import otlp_config_from_env

        config = otlp_config_from_env(endpoint=s.endpoint)
        if not args.quiet:
            print(f"sending to {safe_url(config.metrics_url)} and {safe_url(config.traces_url)} "
                  f"(timeout {args.timeout:g} s)",
                  file=sys.stderr)
        summary = run_round(s.home, s, force=True, persist=True, lock_wait_s=min(args.timeout, 10.0),
                            deadline_s=args.timeout, progress=progress)
    except SenderBusy:
        print("a background sender is running for this app; try again in a few seconds", file=sys.stderr)
        return EXIT_FAIL
    unreadable = f" ({summary.corrupt} unreadable, dropped)" if summary.corrupt else ""
    print(f"ingested {summary.ingested} run records{unreadable}")
    print(f"sent {summary.batches_sent} batches: {summary.spans_sent} spans, {summary.points_sent} metric points, "
          f"{summary.bytes_sent} bytes on the wire")
    if summary.rejected:
        print(f"collector reported {summary.rejected} items rejected (partial success)")
    if summary.disabled:
        print(f"kept {summary.disabled} items off the wire (OTEL_<SIGNAL>_EXPORTER=none)")
    if summary.dropped - summary.disabled:
        print(f"dropped {summary.dropped - summary.disabled} items the collector refused permanently")
    if summary.retries:
        print(f"retried {summary.retries} times after transient failures")
    print(f"pending: {summary.pending_series} series, {summary.pending_spans} spans")
    if summary.error:
        retry = f"; next automatic attempt after {_fmt_time(summary.retry_at)}" if summary.retry_at else ""
        print(f"error: {summary.error}{retry}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_clear(args: argparse.Namespace) -> int:
    s = settings_of(args)
    from otel_expansion.workers.sender import discard_pending

    records, rows = discard_pending(s.home, s)
    print(f"cleared {records} journal records and {rows} spool rows")
    return EXIT_OK


def _withdraw(args: argparse.Namespace, service: str) -> None:
    """Consent withdrawn: what was recorded before is deleted too, not sent later."""
    from otel_expansion.workers.sender import discard_pending

    records, rows = discard_pending(*_home_and_settings(args))
    if records or rows:
        print(f"{service}: deleted {records} pending run records and {rows} stored items")


def _home_and_settings(args: argparse.Namespace) -> tuple[str, Settings]:
    s = settings_of(args)
    return s.home, s


def _note_if_unknown(home: str, service: str) -> None:
    """A typo in --service must not pass silently: say when nothing was ever recorded under that name."""
    if os.path.isdir(home):
        return
    base = _base_dir()
    known = sorted(os.listdir(base)) if os.path.isdir(base) else []
    hint = f" (known: {', '.join(known)})" if known else ""
    print(f"note: no telemetry has been recorded for {service!r} yet{hint}; the choice is stored for it anyway",
          file=sys.stderr)


def cmd_level(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    _note_if_unknown(home, service)
    from otel_expansion.privacy import consent

    if args.level is None:
        print(str(settings_of(args).level))
        return EXIT_OK
    try:
        level = Level.parse(args.level)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if level == Level.OFF:
        consent.deny(home)
        _withdraw(args, service)
    else:
        consent.grant(home, level)
    print(f"{service}: telemetry level set to {level} (stored in {home})")
    return EXIT_OK


def cmd_consent(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    if args.action != "status":
        _note_if_unknown(home, service)
    from otel_expansion.privacy import consent

    if args.action == "grant":
        consent.grant(home)
        print(f"{service}: telemetry enabled (you can change it with `otel-expansion consent deny`)")
    elif args.action == "deny":
        consent.deny(home)
        print(f"{service}: telemetry disabled; nothing more will be recorded or sent")
        _withdraw(args, service)
    else:
        print(consent.stored_choice(home) or "not asked")
    return EXIT_OK


def cmd_reset_id(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    from otel_expansion.privacy.identity import reset

    reset(home)
    with contextlib.suppress(FileNotFoundError):  # the running session would link old and new ids
        os.unlink(os.path.join(home, paths.SESSION_FILE))
    print(f"{service}: new anonymous installation id created (and a new session)")
    return EXIT_OK


def cmd_debug(args: argparse.Namespace) -> int:
    """The effective configuration and every variable that shapes it."""
    s = settings_of(args)
    print("effective settings:")
    for field in ("service_name", "home", "level", "level_source", "opt_out_reason", "debug", "send", "endpoint",
                  "spool_max_bytes", "spool_max_age_s", "sender_timeout_s", "metric_interval_s"):
        print(f"  {field:<18} {getattr(s, field)}")
    from otel_expansion.config.otlp import otlp_config_from_env

    cfg = otlp_config_from_env(endpoint=s.endpoint)
    print(f"  {'traces_url':<18} {safe_url(cfg.traces_url)}\n  {'metrics_url':<18} {safe_url(cfg.metrics_url)}")
    print(f"  {'protocol':<18} {cfg.protocol}\n  {'compression':<18} {cfg.compression}")
    print("environment:")
    for var in VARIABLES:
        if var.name in os.environ:
            value = "<set>" if var.secret else os.environ[var.name]
            print(f"  {var.name}={value}")
    print("tip: OTEL_EXPANSION_DEBUG=1 prints each run's record to stderr; `show` lists everything pending")
    return EXIT_OK


def cmd_backend_serve(args: argparse.Namespace) -> int:
    from otel_expansion.backend.server import serve

    db = Path(args.db).expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)

    def ready(port: int) -> None:
        print(f"otel-expansion backend: OTLP/HTTP on http://{args.host}:{port} (POST /v1/traces, /v1/metrics, "
              f"/v1/logs), dashboard http://{args.host}:{port}/ , data in {db}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port, db, ready=ready)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from otel_expansion.backend.report import build_report, render_report

    db = Path(args.db).expanduser()
    if not db.exists():
        raise CliError(f"no backend database at {db}; run `otel-expansion backend serve` first")
    report = build_report(db)
    print(json.dumps(report, indent=2, default=str) if args.json else render_report(report))
    return EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    from otel_expansion.sdk.docs import telemetry_markdown

    text = telemetry_markdown()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    return EXIT_OK


def default_db() -> str:
    return os.path.join(os.path.dirname(_base_dir()), "backend", "telemetry.sqlite")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-expansion", description="Inspect and control product telemetry.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def target(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--service", help="the app's service name (as given to init())")
        p.add_argument("--home", help="the app's telemetry state directory")
        return p

    p = target(sub.add_parser("status", help="level, consent and what is pending"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = target(sub.add_parser("show", help="print everything pending, as it would be sent"))
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=cmd_show)
    p = target(sub.add_parser("flush", help="send everything pending now"))
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to keep retrying (default 30)")
    p.add_argument("--endpoint", help="collector base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_flush)
    p = target(sub.add_parser("clear", help="delete everything pending"))
    p.set_defaults(func=cmd_clear)
    p = target(sub.add_parser("level", help="show or set the telemetry level (off|basic|enhanced|full)"))
    p.add_argument("level", nargs="?")
    p.set_defaults(func=cmd_level)
    p = target(sub.add_parser("consent", help="grant, deny or show consent"))
    p.add_argument("action", choices=("grant", "deny", "status"))
    p.set_defaults(func=cmd_consent)
    p = target(sub.add_parser("reset-id", help="replace the anonymous installation id"))
    p.set_defaults(func=cmd_reset_id)
    p = target(sub.add_parser("debug", help="effective configuration and variables"))
    p.set_defaults(func=cmd_debug)
    backend = sub.add_parser("backend", help="the embedded analytics backend")
    bsub = backend.add_subparsers(dest="backend_command", metavar="ACTION")
    bsub.required = True
    p = bsub.add_parser("serve", help="receive OTLP/HTTP and serve the dashboard")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4318)
    p.add_argument("--db", default=default_db())
    p.set_defaults(func=cmd_backend_serve)
    p = sub.add_parser("report", help="usage report from the embedded backend")
    p.add_argument("--db", default=default_db())
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("docs", help="write TELEMETRY.md from the signal definitions")
    p.add_argument("--output", default="TELEMETRY.md")
    p.set_defaults(func=cmd_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"otel-expansion: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
