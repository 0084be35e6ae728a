"""``otel-expansion show``: what is pending, as it would be sent."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from otel_expansion.cli.common import EXIT_OK, add_target, settings_of
from otel_expansion.config import paths


def run(args: argparse.Namespace) -> int:
    """Everything pending, as the collector would receive it (OTLP/JSON after ingest) plus raw journal."""
    s = settings_of(args)
    from otel_expansion.journal import store as journal

    pending_records = []
    for path in journal.pending(s.home)[: args.limit]:
        try:
            pending_records.append(journal.read(path))
        except (journal.CorruptRecord, OSError) as exc:
            pending_records.append({"unreadable": os.path.basename(path), "error": str(exc)})
    out: dict[str, Any] = {"journal": pending_records}
    if os.path.exists(os.path.join(s.home, paths.SPOOL_FILE)):
        from otel_expansion.export.encode import metrics_request, to_dict, traces_request
        from otel_expansion.export.sender import open_spool

        spool = open_spool(s.home, s)
        try:
            points, spans = spool.pending(limit=args.limit)
        finally:
            spool.close()
        for name, message in (("metrics", metrics_request(points)), ("traces", traces_request(spans))):
            out[name] = to_dict(message)
    print(json.dumps(out, indent=2, default=str))
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_target(sub.add_parser("show", help="print everything pending, as it would be sent"))
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=run)
