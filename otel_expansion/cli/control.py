"""The user's controls: ``clear``, ``level``, ``consent`` and ``reset-id``.

The functions taking (home, service) are the ones every front end uses (this command, the host CLI's
``telemetry`` group, the inspector page), so a choice made anywhere has the same effect.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from otel_expansion.cli.common import EXIT_OK, CliError, add_target, find_home, note_if_unknown, settings_for
from otel_expansion.config import paths
from otel_expansion.config.levels import Level


def clear(home: str, service: str) -> tuple[int, int]:
    """Delete everything pending: (journal records, spool rows)."""
    from otel_expansion.export.sender import discard_pending

    return discard_pending(home, settings_for(home, service))


def set_level(home: str, service: str, value: str) -> Level:
    """Store the user's level; ``off`` withdraws consent and deletes what is pending."""
    from otel_expansion.privacy import consent

    try:
        level = Level.parse(value)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if level == Level.OFF:
        consent.deny(home)
        clear(home, service)
    else:
        consent.grant(home, level)
    return level


def set_consent(home: str, service: str, action: str) -> tuple[int, int]:
    """grant or deny; deny deletes what was recorded before (returned as records, rows)."""
    from otel_expansion.privacy import consent

    if action == "grant":
        consent.grant(home)
        return 0, 0
    if action == "deny":
        consent.deny(home)
        return clear(home, service)
    raise CliError(f"unknown consent action {action!r} (use grant or deny)")


def run_clear(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    records, rows = clear(home, service)
    print(f"cleared {records} journal records and {rows} spool rows")
    return EXIT_OK


def run_level(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    note_if_unknown(home, service)
    if args.level is None:
        print(str(settings_for(home, service).level))
        return EXIT_OK
    level = set_level(home, service, args.level)
    print(f"{service}: telemetry level set to {level} (stored in {home})")
    return EXIT_OK


def run_consent(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    if args.action != "status":
        note_if_unknown(home, service)
    from otel_expansion.privacy import consent

    if args.action == "status":
        print(consent.stored_choice(home) or "not asked")
        return EXIT_OK
    records, rows = set_consent(home, service, args.action)
    if args.action == "grant":
        print(f"{service}: telemetry enabled (you can change it with `otel-expansion consent deny`)")
    else:
        print(f"{service}: telemetry disabled; nothing more will be recorded or sent")
        if records or rows:
            print(f"{service}: deleted {records} pending run records and {rows} stored items")
    return EXIT_OK


def reset_id(home: str) -> None:
    from otel_expansion.privacy.identity import reset

    reset(home)
    with contextlib.suppress(FileNotFoundError):  # the running session would link old and new ids
        os.unlink(os.path.join(home, paths.SESSION_FILE))


def run_reset_id(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    reset_id(home)
    print(f"{service}: new anonymous installation id created (and a new session)")
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_target(sub.add_parser("clear", help="delete everything pending"))
    p.set_defaults(func=run_clear)
    p = add_target(sub.add_parser("level", help="show or set the telemetry level (off|basic|enhanced|full)"))
    p.add_argument("level", nargs="?")
    p.set_defaults(func=run_level)
    p = add_target(sub.add_parser("consent", help="grant, deny or show consent"))
    p.add_argument("action", choices=("grant", "deny", "status"))
    p.set_defaults(func=run_consent)
    p = add_target(sub.add_parser("reset-id", help="replace the anonymous installation id"))
    p.set_defaults(func=run_reset_id)
