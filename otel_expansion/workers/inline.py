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

from otel_expansion.config.settings import Settings

LOCK_WAIT_S = 0.0  # never wait for a running sender (it may be stuck on the network): print the raw record


def ingest_now(settings: Settings, record: Mapping[str, Any]) -> None:
    """Replay pending journal records (this run's included) into the spool, printing what is added."""
    from otel_expansion.workers.sender import SenderBusy, ingest_journal, open_spool, sender_lock

    try:
        with sender_lock(settings.home, LOCK_WAIT_S):
            spool = open_spool(settings.home, settings)  # a DebugSpool: prints each add
            try:
                ingest_journal(settings.home, spool, settings, time.monotonic() + settings.sender_timeout_s)
            finally:
                spool.close()
    except SenderBusy:
        sys.stderr.write("otel-expansion debug: a sender is busy; this run's record will be converted by it:\n"
                         + json.dumps(dict(record), default=str, sort_keys=True, indent=2) + "\n")
