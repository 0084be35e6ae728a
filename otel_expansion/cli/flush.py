"""``otel-expansion flush``: send everything pending now, and say what happened."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from otel_expansion.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    CliError,
    add_json,
    add_target,
    emit_json,
    find_home,
    fmt_time,
    require_known,
    safe_url,
    settings_for,
    spool_is_ours,
)

QUIET_HELP = "print nothing unless it fails (errors and warnings still go to stderr; the exit status says)"


def run(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    s = settings_for(home, service, args.endpoint)
    from otel_expansion.workers.sender import SenderBusy, run_round

    say = (lambda *a, **k: None) if args.json or args.quiet else print
    require_known(home, service, args)
    if s.dry_run:
        raise CliError(f"{service} is in dry-run mode (recorded and shown, never sent); "
                       "`otel-expansion debug off` or OTEL_EXPANSION_DRY_RUN=false to send", EXIT_FAIL)
    _refuse_under_opt_out(args, s, service)
    spool_is_ours(s.home, recover=True)
    if not s.enabled:
        say(f"note: telemetry is off for new runs ({s.opt_out_reason or s.level_source}); sending what is pending")
    last = [0.0]
    retries_said = [0]

    def progress(stage: str, info: Any) -> None:
        if args.quiet or args.json:
            return
        if stage != "ingest" and info.retries > retries_said[0]:
            # one line per retry the summary counts, never throttled: the lines and "retried N times" agree
            for n in range(retries_said[0] + 1, info.retries + 1):
                print(f"  retry {n}: collector unavailable ({info.error or 'no answer'}); trying again",
                      file=sys.stderr)
            retries_said[0] = info.retries
            return
        if time.monotonic() - last[0] < 0.5:  # progress figures only: at most two lines a second
            return
        last[0] = time.monotonic()
        if stage == "ingest":
            done, total = info
            print(f"  ingesting journal: {done}/{total} records", file=sys.stderr)
        else:
            print(f"  so far: sent {info.batches_sent} batches ({info.spans_sent} spans, {info.points_sent} points)",
                  file=sys.stderr)

    from otel_expansion.config.otlp import otlp_config_from_env

    config = otlp_config_from_env(endpoint=s.endpoint)
    if config.endpoint_problem:
        if not args.json:
            print(f"otel-expansion: warning: {config.endpoint_problem}; nothing is sent until it is fixed",
                  file=sys.stderr)
    elif not (args.quiet or args.json):
        print(f"sending to {safe_url(config.metrics_url)} and {safe_url(config.traces_url)} "
              f"(timeout {args.timeout:g} s)", file=sys.stderr)
    try:
        summary = run_round(s.home, s, force=True, persist=True, lock_wait_s=min(args.timeout, 10.0),
                            deadline_s=args.timeout, progress=progress)
    except SenderBusy:
        raise CliError("a background sender is running for this app; try again in a few seconds", EXIT_FAIL) from None
    result = {
        "service": service, "ok": summary.ok, "error": summary.error, "ingested": summary.ingested,
        "unreadable": summary.corrupt, "batches_sent": summary.batches_sent, "spans_sent": summary.spans_sent,
        "points_sent": summary.points_sent, "bytes_sent": summary.bytes_sent, "rejected": summary.rejected,
        "dropped": summary.dropped, "kept_off_wire": summary.disabled, "retries": summary.retries,
        "pending_series": summary.pending_series, "pending_spans": summary.pending_spans,
        "retry_at": summary.retry_at,
    }
    unreadable = f" ({summary.corrupt} unreadable, dropped)" if summary.corrupt else ""
    # run records a background sender already took into the spool are sent from there, not ingested again
    lines = [(f"ingested {summary.ingested} run records{unreadable}" if summary.ingested or unreadable
              else "ingested 0 run records (earlier runs were already taken from the journal)"),
             f"sent {summary.batches_sent} batches: {summary.spans_sent} spans, {summary.points_sent} metric points, "
             f"{summary.bytes_sent} bytes on the wire"]
    if summary.rejected:
        lines.append(f"collector reported {summary.rejected} items rejected (partial success)")
    if summary.disabled:
        lines.append(f"kept {summary.disabled} items off the wire (OTEL_<SIGNAL>_EXPORTER=none)")
    if summary.dropped - summary.disabled:
        lines.append(f"dropped {summary.dropped - summary.disabled} items the collector refused permanently")
    if summary.retries:
        lines.append(f"retried {summary.retries} times after transient failures")
    lines.append(f"pending: {summary.pending_series} series, {summary.pending_spans} spans")
    _done(args, result, lines)
    if summary.error:
        # nothing retries on a timer between a CLI's runs: the first run after the backoff sends again
        retry = (f"; the data is kept: the app's first run after {fmt_time(summary.retry_at)} sends it again "
                 "(or `flush` now)") if summary.retry_at else ""
        if not args.json:
            print(f"error: {summary.error}{retry}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _refuse_under_opt_out(args: argparse.Namespace, s: Any, service: str) -> None:
    """Opt-out wins over everything, flush too: under DO_NOT_TRACK, OTEL_SDK_DISABLED, the app's own
    variable or OTEL_EXPANSION_LEVEL=off nothing is sent and nothing is touched; the pending data is kept,
    and the error says how to send it (without the opt-out) or delete it. Checked before the spool is
    opened (no file is written)."""
    import os

    from otel_expansion.config import opted_out

    reason = s.opt_out_reason or opted_out(os.environ, getattr(args, "opt_out_env", None))
    if not reason and s.level_source == "env" and not s.level:  # the user's own level variable says off
        reason = "OTEL_EXPANSION_LEVEL"  # (=off)
    if not reason:
        return
    from otel_expansion.cli.status import spool_stats
    from otel_expansion.journal import store as journal

    stats = spool_stats(s)
    records, series, spans = journal.count(s.home), stats.series if stats else 0, stats.spans if stats else 0
    prog = getattr(args, "prog", None)
    target = "".join(f" --{flag} {getattr(args, flag)}" for flag in ("service", "home") if getattr(args, flag, None))
    if prog:  # the program's own telemetry commands: disable deletes what is pending (and turns telemetry off)
        send_cmd = f"{prog} flush"
        delete_words = f"`{prog} disable` (which also turns telemetry off until `{prog} enable`)"
    else:  # the user's own target, repeated
        to = f" --endpoint {safe_url(args.endpoint)}" if getattr(args, "endpoint", None) else ""
        send_cmd, delete_words = f"otel-expansion flush{target}{to}", f"`otel-expansion clear{target}`"
    said = f"{reason} is set: telemetry is off and flush sends nothing (opt-out wins over everything)"
    if not (records or series or spans):
        raise CliError(f"{said}; nothing is pending", EXIT_FAIL)
    kept = (f"{records} run record{'s' * (records != 1)}, {series} metric series and {spans} "
            f"span{'s' * (spans != 1)} pending, kept")
    raise CliError(f"{said}; {kept}. To send them, run `{send_cmd}` without {reason} set; to delete them, "
                   f"{delete_words}", EXIT_FAIL)


def _done(args: argparse.Namespace, result: dict[str, Any], lines: list[str]) -> int:
    if args.json:
        emit_json(result)
    elif not args.quiet:
        print("\n".join(lines))
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_json(add_target(sub.add_parser("flush", help="send everything pending now")))
    p.add_argument("--timeout", type=_seconds, default=30.0, help="seconds to keep retrying (default 30)")
    p.add_argument("--endpoint", help="collector base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=run)


def _seconds(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < n <= 3600:
        raise argparse.ArgumentTypeError("must be between 0 and 3600 seconds")
    return n
