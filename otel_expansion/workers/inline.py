"""Debug mode for CLIs: this run's journal record is converted in the CLI's own process, at exit.

Normally a detached sender replays journal records through the SDK later, where nobody sees its output.
In debug mode the CLI does that replay itself (under the sender lock, into the same spool, through the
same replay), so the debug stream printed on the user's terminal is the very data the sender
will export. It costs the OpenTelemetry SDK import at exit (a few hundred ms): debug mode only.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from otel_expansion.config import Settings

LOCK_WAIT_S = 0.0  # never wait for a running sender (it may be stuck on the network): print the raw record


def ingest_now(settings: Settings, record: Mapping[str, Any], path: str | None = None) -> None:
    """Replay pending journal records into the spool, showing only this run's (the record at ``path``).

    Records written before (a backlog from before debug was turned on, say) are converted first,
    silently, with one line saying how many: turning debug on never floods the terminal with old runs.
    Without ``path`` (a long-running program's hand-over) everything pending is this process's and shown.
    """
    from otel_expansion.journal import store as journal
    from otel_expansion.sdk.debug import DebugSpool
    from otel_expansion.spool.store import open_home
    from otel_expansion.workers.sender import SenderBusy, ingest_journal, sender_lock

    try:
        with sender_lock(settings.home, LOCK_WAIT_S):
            spool = open_home(settings.home, max_bytes=settings.spool_max_bytes, max_age_s=settings.spool_max_age_s,
                              busy_timeout_ms=5000)
            try:
                deadline = time.monotonic() + settings.sender_timeout_s
                shown = DebugSpool(spool, full=settings.debug_json, where="this run" if path else "recorded")
                if path is None:
                    ingest_journal(settings.home, shown, settings, deadline)
                    return
                earlier = [p for p in journal.pending(settings.home) if p != path]
                if earlier:
                    done, _ = ingest_journal(settings.home, spool, settings, deadline, only=earlier)
                    if done:
                        sys.stderr.write(f"{settings.service_name} telemetry (debug): {done} earlier run "
                                         f"record{'s' * (done != 1)} converted too, not shown "
                                         "(`otel-expansion show` lists what is pending, as does "
                                         "`telemetry show` in a program that adds its telemetry commands)\n")
                ingest_journal(settings.home, shown, settings, deadline, only=[path])
            finally:
                spool.close()
    except SenderBusy:
        sys.stderr.write(f"{settings.service_name} telemetry (debug): a sender is busy; this run's record will "
                         "be converted by it: "
                         + _brief(record) + "\n")


def _brief(record: Mapping[str, Any]) -> str:
    """This run's commands in one line (what a busy sender will convert), the whole record only as JSON."""
    commands = record.get("commands") or ()
    if not commands:
        return json.dumps(dict(record), default=str, sort_keys=True)
    return ", ".join(f"{c.get('name')} (exit {c.get('exit')})" for c in commands)
