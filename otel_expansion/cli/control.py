"""The user's controls: ``clear``, ``level``, ``consent`` and ``reset-id``.

The functions taking (home, service) are the ones every front end uses (this command, the host CLI's
``telemetry`` group, the inspector page), so a choice made anywhere has the same effect.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from otel_expansion.cli.common import (
    EXIT_OK,
    CliError,
    add_json,
    add_target,
    emit_json,
    find_home,
    note_if_unknown,
    require_known,
    settings_for,
)
from otel_expansion.config import Level, paths


def clear(home: str, service: str) -> dict[str, int]:
    """Delete everything pending and the recently-sent history (the --json shape of ``clear``)."""
    if not os.path.isdir(home):
        return {"journal_records": 0, "spool_rows": 0, "sent_entries": 0}
    from otel_expansion.cli.common import spool_is_ours
    from otel_expansion.export import history
    from otel_expansion.workers.sender import discard_pending

    spool_is_ours(home, recover=True)  # a foreign file at the spool's path: refuse before touching anything
    records, rows = discard_pending(home, settings_for(home, service))
    return {"journal_records": records, "spool_rows": rows, "sent_entries": history.clear(home)}


def set_level(home: str, service: str, value: str) -> Level:
    """Store the user's level; ``off`` withdraws consent and deletes what is pending; a lower level
    applies to what is pending too (``workers.sender.lower_pending``)."""
    from otel_expansion.privacy import consent

    try:
        level = Level.parse(value)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if level == Level.OFF:
        consent.deny(home)
        clear(home, service)
    else:
        before = consent.level_ceiling(home) if os.path.isdir(home) else None
        consent.grant(home, level)
        _lower_pending(home, service, before, level)
    return level


def _lower_pending(home: str, service: str, before: Level | None, after: Level) -> tuple[int, int]:
    from otel_expansion.cli.common import spool_is_ours
    from otel_expansion.workers.sender import lower_pending

    if not os.path.isdir(home) or (before is not None and before <= after):
        return 0, 0
    spool_is_ours(home, recover=True)
    return lower_pending(home, settings_for(home, service), before, after)


def set_consent(home: str, service: str, action: str) -> dict[str, int]:
    """grant or deny; deny deletes what was recorded before (returned as ``clear`` counts)."""
    from otel_expansion.privacy import consent

    if action == "grant":
        consent.grant(home)
        return {"journal_records": 0, "spool_rows": 0, "sent_entries": 0}
    if action == "deny":
        consent.deny(home)
        return clear(home, service)
    raise CliError(f"unknown consent action {action!r} (use grant or deny)")


def run_clear(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    require_known(home, service, args)
    counts = clear(home, service)
    if args.json:
        emit_json({"service": service, "cleared": counts})
    else:
        print(f"cleared {counts['journal_records']} journal records and {counts['spool_rows']} spool rows"
              f" and {counts['sent_entries']} recently-sent entries")
    return EXIT_OK


def run_level(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    if args.level is None:
        require_known(home, service, args)
        s = settings_for(home, service)
        if args.json:
            emit_json({"service": service, "level": str(s.level), "level_source": s.level_source})
        else:
            print(str(s.level))
        return EXIT_OK
    note_if_unknown(home, service)
    level = set_level(home, service, args.level)
    if args.json:
        emit_json({"service": service, "level": str(level), "level_source": "user"})
    else:
        print(f"{service}: telemetry level set to {level} (stored in {home}; from the app's next run: a "
              "long-running program keeps the level it started with until it is restarted)")
    return EXIT_OK


def run_consent(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    from otel_expansion.privacy import consent

    if args.action == "status":
        require_known(home, service, args)
        choice = consent.stored_choice(home) or "not asked"
        if args.json:
            emit_json({"service": service, "consent": choice})
        else:
            kind, _, level = choice.partition(":")  # "granted:enhanced" is the stored form, not words
            if choice.startswith("granted<="):
                print(f"granted (at the first-run question, up to level {choice[9:]})")
            else:
                print(f"granted (level {level})" if kind == "granted" and level else kind)
        return EXIT_OK
    note_if_unknown(home, service)
    counts = set_consent(home, service, args.action)
    if args.json:
        emit_json({"service": service, "consent": consent.stored_choice(home), "deleted": counts})
    elif args.action == "grant":
        print(f"{service}: telemetry enabled (you can change it with `otel-expansion consent deny`)")
    else:
        print(f"{service}: telemetry disabled; nothing more will be recorded or sent")
        if counts["journal_records"] or counts["spool_rows"]:
            print(f"{service}: deleted {counts['journal_records']} pending run records and "
                  f"{counts['spool_rows']} stored items")
    return EXIT_OK


def reset_id(home: str) -> str:
    """A new anonymous installation id (and a new session); returns the id."""
    from otel_expansion.collect import reset_installation_id as reset

    new_id = reset(home)
    with contextlib.suppress(FileNotFoundError):  # the running session would link old and new ids
        os.unlink(os.path.join(home, paths.SESSION_FILE))
    return str(new_id)


def run_reset_id(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    require_known(home, service, args)
    new_id = reset_id(home)
    if args.json:
        emit_json({"service": service, "installation_id": new_id})
    else:
        print(f"{service}: new anonymous installation id created (and a new session)")
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_json(add_target(sub.add_parser("clear", help="delete everything pending and the sent history")))
    p.set_defaults(func=run_clear)
    p = add_json(add_target(sub.add_parser("level", help="show or set the telemetry level (off|basic|enhanced|full)")))
    p.add_argument("level", nargs="?")
    p.set_defaults(func=run_level)
    p = add_json(add_target(sub.add_parser("consent", help="grant, deny or show consent")))
    p.add_argument("action", choices=("grant", "deny", "status"))
    p.set_defaults(func=run_consent)
    p = add_json(add_target(sub.add_parser("reset-id", help="replace the anonymous installation id")))
    p.set_defaults(func=run_reset_id)
