"""``otel-expansion status``: level, consent and what is pending for one app."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from otel_expansion.cli.common import EXIT_OK, add_target, emit_json, fmt_time, settings_of
from otel_expansion.config import paths
from otel_expansion.config.settings import Settings


def spool_stats(s: Settings) -> Any:
    if not os.path.exists(os.path.join(s.home, paths.SPOOL_FILE)):
        return None
    from otel_expansion.export.sender import open_spool

    spool = open_spool(s.home, s)
    try:
        return spool.stats()
    finally:
        spool.close()


def status_info(s: Settings) -> dict[str, Any]:
    from otel_expansion.export import launcher
    from otel_expansion.journal import store as journal
    from otel_expansion.privacy.consent import stored_choice

    stats = spool_stats(s)
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
        "next_send": fmt_time(launcher.next_send_at(s.home)) if launcher.next_send_at(s.home) else "on next run",
    }
    id_path = os.path.join(s.home, paths.INSTALL_ID_FILE)
    info["installation_id"] = Path(id_path).read_text().strip() if os.path.exists(id_path) else None
    return info


def run(args: argparse.Namespace) -> int:
    info = status_info(settings_of(args))
    if args.json:
        emit_json(info)
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_target(sub.add_parser("status", help="level, consent and what is pending"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
