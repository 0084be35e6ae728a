"""``otel-expansion flush``: send everything pending now, and say what happened."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from otel_expansion.cli.common import EXIT_FAIL, EXIT_OK, add_target, fmt_time, safe_url, settings_of


def run(args: argparse.Namespace) -> int:
    s = settings_of(args)
    from otel_expansion.export.sender import SenderBusy, run_round

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
        from otel_expansion.export.otlp_config import otlp_config_from_env

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
        retry = f"; next automatic attempt after {fmt_time(summary.retry_at)}" if summary.retry_at else ""
        print(f"error: {summary.error}{retry}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_target(sub.add_parser("flush", help="send everything pending now"))
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to keep retrying (default 30)")
    p.add_argument("--endpoint", help="collector base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
