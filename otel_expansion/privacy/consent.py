"""First-run notice and consent: what the user chose, persisted per service home.

Policies: ``notify`` (opt-out: collect at the app's level, tell the user once on an interactive terminal)
and ``ask`` (opt-in: collect nothing until the user says yes). Non-interactive and CI runs never prompt.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TextIO

import os
import sys

from otel_expansion.config import Level, detect_ci, paths, read_choice
from otel_expansion.config.paths import CONSENT_FILE, LEVEL_CHOICE_FILE, ensure_dir, read_small, write_private

NOTICE_FILE = paths.NOTICE_FILE


def stored_choice(home: str) -> str | None:
    """``granted:<level>``, ``denied`` or None when the user never chose (read by the settings loader)."""
    return read_choice(home)


def level_ceiling(home: str) -> Level | None:
    """The most the user allows for this home's data, from their stored choice: the level they chose
    (``telemetry level``), off when they refused; None when they chose no level (the level in effect at
    each run decided; a yes to the first-run question is not a choice of level: see ANSWERED_PREFIX).
    What is still pending is converted at no more than this (the sender), so lowering the level applies
    to runs recorded before it."""
    choice = read_choice(home)
    if choice is None or choice.startswith(ANSWERED_PREFIX):
        return None
    if choice == "denied":
        return Level.OFF
    raw = choice.partition(":")[2]
    try:
        return Level.parse(raw) if raw else None
    except ValueError:
        return Level.OFF  # a damaged choice allows nothing


def remembered_level(home: str) -> Level | None:
    """The last level the user chose with ``telemetry level``, kept while telemetry is disabled."""
    raw = read_small(os.path.join(home, LEVEL_CHOICE_FILE), 64)
    try:
        return Level.parse(raw.decode("ascii", "replace").strip()) if raw else None
    except ValueError:
        return None


def grant(home: str, level: Level | None = None) -> None:
    """Consent at ``level``; without one (``enable``), at the level the user chose last, if any: a
    ``level basic`` then ``disable`` then ``enable`` comes back at basic, not at the app's default."""
    ensure_dir(home)
    if level is None:
        level = remembered_level(home)
    else:
        write_private(os.path.join(home, LEVEL_CHOICE_FILE), str(level).encode("ascii"))
    choice = "granted" if level is None else f"granted:{level}"
    write_private(os.path.join(home, CONSENT_FILE), choice.encode("ascii"))


ANSWERED_PREFIX = "granted<="
"""The consent the first-run question stores: ``granted<=<level>``, a yes to the level it showed. That level
is a ceiling for the app's and the settings file's level, never a choice of level: the user's
``OTEL_EXPANSION_LEVEL`` still applies (only ``telemetry level`` stores a level that beats it). An older
release reads it as consent without a level."""


def grant_answered(home: str, level: Level) -> None:
    """The user said yes to the first-run question, which showed ``level``."""
    ensure_dir(home)
    write_private(os.path.join(home, CONSENT_FILE), f"{ANSWERED_PREFIX}{level}".encode("ascii"))


def deny(home: str) -> None:
    ensure_dir(home)
    choice = read_choice(home) or ""
    if choice.startswith("granted:") and remembered_level(home) is None:  # chosen before the file existed
        write_private(os.path.join(home, LEVEL_CHOICE_FILE), choice.partition(":")[2].encode("ascii", "replace"))
    write_private(os.path.join(home, CONSENT_FILE), b"denied")


def interactive(environ: Mapping[str, str], stream: TextIO | None = None) -> bool:
    """A person is watching: stderr and stdin are terminals and this is not CI."""
    err = sys.stderr if stream is None else stream
    try:
        return bool(err.isatty() and sys.stdin is not None and sys.stdin.isatty()) and detect_ci(environ) is None
    except (AttributeError, ValueError):
        return False


def notice_text(service: str, level: Level, opt_out_env: str | None, program: str | None = None,
                policy: str = "notify") -> str:
    """The first-run notice: short, names the level, how to see what is sent and how to opt out.

    ``program`` is the host's own name when it offers ``<program> telemetry ...`` commands (an app
    installed with pipx does not put ``otel-expansion`` on the user's PATH, so only its own name works).
    """
    extra = " At this level redacted error messages and stack traces are included too." if level >= Level.FULL \
        else ""
    what = ("which commands run, how long they take and whether they fail, plus coarse environment facts "
            f"(OS, Python, CI). No argument values, file contents or personal data.{extra}")
    opt = f"{opt_out_env}=1 or " if opt_out_env else ""
    if policy == "ask":
        head = f"{service} would like to collect anonymous usage telemetry (level: {level}): {what}"
        if program:
            return (f"{head}\nNothing is collected unless you agree. Change your answer any time with "
                    f"`{program} telemetry enable` or `{program} telemetry disable`; "
                    f"`{program} telemetry show` shows what is sent.\n")
        return f"{head}\nNothing is collected unless you agree.\n"
    head = f"{service} collects anonymous usage telemetry (level: {level}): {what}"
    if program:
        return (f"{head}\nSee what is sent: `{program} telemetry show`. Opt out: `{program} telemetry disable`, "
                f"or set {opt}DO_NOT_TRACK=1. More: `{program} telemetry --help`.\n")
    return (f"{head}\nSee what is sent: set OTEL_EXPANSION_DEBUG=1. "
            f"To opt out, set {opt}DO_NOT_TRACK=1 in your environment.\n")


def first_run_due(home: str, policy: str, environ: Mapping[str, str]) -> bool:
    """A person is watching and has not been told (notify) or asked (ask) yet."""
    if not interactive(environ):
        return False
    return policy == "ask" or not os.path.exists(os.path.join(home, NOTICE_FILE))


_pending: dict[str, Any] = {}


def defer(home: str, service: str, level: Level, policy: str, opt_out_env: str | None,
          on_grant: Callable[[], None] | None = None) -> None:
    """Hold the first-run notice (or question) until :func:`settle`.

    init() runs before the app has built its command line, so it cannot yet know whether the app offers
    ``telemetry`` commands to name. The app's ``add_telemetry_commands()`` settles it (before any
    command runs), and otherwise process exit does. Nothing is collected before a question is answered:
    under ``ask`` the run stays off; ``on_grant`` restarts telemetry when the answer comes in time.
    """
    _pending.clear()
    _pending.update(home=home, service=service, level=level, policy=policy, opt_out_env=opt_out_env,
                    on_grant=on_grant)


def discard_pending() -> None:
    """Forget the held notice: the user is running a telemetry command, which is the choice."""
    _pending.clear()


def settle(program: str | None = None, in_time: bool = False) -> Level | None:
    """Show the pending notice or ask the pending question now; returns the level chosen when asked."""
    if not _pending:
        return None
    p = dict(_pending)
    _pending.clear()
    try:
        level = p["level"]
        if p["policy"] == "notify":
            sys.stderr.write(notice_text(p["service"], level, p["opt_out_env"], program))
            sys.stderr.flush()
            ensure_dir(p["home"])
            write_private(os.path.join(p["home"], NOTICE_FILE), b"1")
            return None
        sys.stderr.write(notice_text(p["service"], level, p["opt_out_env"], program, policy="ask"))
        asked = False
        try:  # from the question on: Ctrl-C typed the moment it shows must still end its line
            sys.stderr.write(f"Share anonymous usage data with the {p['service']} developers? [y/N] ")
            sys.stderr.flush()
            asked = True
            line = sys.stdin.readline()
        except (OSError, ValueError):
            if not asked:
                return None  # stderr closed: nobody was asked
            line = ""
        except BaseException:  # Ctrl-C (or what the host's SIGINT handler raises): end the prompt's line,
            _end_line()        # store no answer, and let it stop the program as Ctrl-C anywhere would
            raise
        if not line.endswith("\n"):  # Ctrl-D: the terminal echoed no newline; the host's output is next
            _end_line()
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            grant_answered(p["home"], level)
            if in_time and p["on_grant"] is not None:
                p["on_grant"]()
            return Level(level)
        deny(p["home"])
        return Level.OFF
    except (OSError, ValueError):  # closed stderr, read-only home: never break the host
        return None


def _end_line() -> None:
    try:
        sys.stderr.write("\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def first_run(
    home: str, service: str, level: Level, policy: str, opt_out_env: str | None, environ: Mapping[str, str]
) -> Level | None:
    """Show the notice or ask, once, right now; returns the level the user chose when asked, else None."""
    if not first_run_due(home, policy, environ):
        return None
    defer(home, service, level, policy, opt_out_env)
    return settle()
