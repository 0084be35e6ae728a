"""First-run notice and consent: what the user chose, persisted per service home.

Policies: ``notify`` (opt-out: collect at the app's level, tell the user once on an interactive terminal)
and ``ask`` (opt-in: collect nothing until the user says yes). Non-interactive and CI runs never prompt.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

import os
import sys

from otel_expansion.config.ci import detect_ci
from otel_expansion.config.levels import Level
from otel_expansion.config.paths import CONSENT_FILE, ensure_dir, read_small, write_private

NOTICE_FILE = "notice-shown"


def stored_choice(home: str) -> str | None:
    """``granted:<level>``, ``denied`` or None when the user never chose."""
    raw = read_small(os.path.join(home, CONSENT_FILE), 64)
    if not raw:
        return None
    text = raw.decode("ascii", "replace").strip()
    if text == "denied" or text.startswith("granted"):
        return text
    return None


def grant(home: str, level: Level | None = None) -> None:
    ensure_dir(home)
    choice = "granted" if level is None else f"granted:{level}"
    write_private(os.path.join(home, CONSENT_FILE), choice.encode("ascii"))


def deny(home: str) -> None:
    ensure_dir(home)
    write_private(os.path.join(home, CONSENT_FILE), b"denied")


def interactive(environ: Mapping[str, str], stream: TextIO | None = None) -> bool:
    """A person is watching: stderr and stdin are terminals and this is not CI."""
    err = sys.stderr if stream is None else stream
    try:
        return bool(err.isatty() and sys.stdin is not None and sys.stdin.isatty()) and detect_ci(environ) is None
    except (AttributeError, ValueError):
        return False


def notice_text(service: str, level: Level, opt_out_env: str | None) -> str:
    opt = f"{opt_out_env}=1 or " if opt_out_env else ""
    extra = " At this level redacted error messages and stack traces are included too." if level >= Level.FULL \
        else ""
    return (
        f"{service} collects anonymous usage telemetry (level: {level}): which commands run, how long they "
        "take and whether they fail, plus coarse environment facts (OS, Python, CI). No argument values, "
        f"file contents or personal data.{extra} To opt out, set {opt}DO_NOT_TRACK=1 in your environment.\n"
    )


def first_run(
    home: str, service: str, level: Level, policy: str, opt_out_env: str | None, environ: Mapping[str, str]
) -> Level | None:
    """Show the notice or ask, once; returns the level the user chose when asked, else None."""
    if not interactive(environ):
        return None
    marker = os.path.join(home, NOTICE_FILE)
    if policy == "notify":
        if os.path.exists(marker):
            return None
        sys.stderr.write(notice_text(service, level, opt_out_env))
        ensure_dir(home)
        write_private(marker, b"1")
        return None
    sys.stderr.write(notice_text(service, level, opt_out_env))
    sys.stderr.write(f"Share anonymous usage data with the {service} developers? [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline().strip().lower()
    except (OSError, ValueError):
        answer = ""
    # Ctrl-C at the prompt propagates: the user stopped the program, and made no choice
    if answer in ("y", "yes"):
        grant(home, level)
        return level
    deny(home)
    return Level.OFF
