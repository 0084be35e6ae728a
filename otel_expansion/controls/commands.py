"""``<prog> telemetry ...``: the ``otel-expansion`` user controls, scoped to the host app, in its process.

Loaded only when the user runs one of these commands. Each one reuses the matching ``otel-expansion``
command (same files, same output) with the app's own state directory and settings, and talks about
the program by the name the user typed. Running one is recorded as a plain invocation of
``telemetry`` only: no arguments, no subcommand; ``disable`` (and ``level off``) stands telemetry down
for this very run before anything of it is stored.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from otel_expansion.config import LEVELS, Level, Settings

OVERVIEW = """usage: {prog} COMMAND [options]

See and control the anonymous usage telemetry {service} collects.

commands:
  status          whether telemetry is on, at what level and why, and what is pending
  enable          turn telemetry on (at the level configured)
  disable         turn telemetry off and delete what was not sent yet
  level [LEVEL]   show or set the level: off, basic, enhanced or full
  show            a summary of what is pending (--sent: also what was sent; --json: as sent)
  flush           send everything pending now
  reset-id        replace the anonymous installation id
  debug [on|off]  show the effective configuration, or print a summary of each run to stderr
  docs            print what {service} collects (TELEMETRY.md for this program)

Settings, lowest precedence first: the program's defaults < {settings_file}
< environment variables (OTEL_EXPANSION_LEVEL, ...) < these commands. DO_NOT_TRACK=1 always wins.
"""


class _Stop(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse that returns its exit status instead of ending the host's process."""

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            sys.stderr.write(message)
        raise _Stop(status)


def _context(service: str | None, prog: str) -> tuple[Settings, Any]:
    """The app's settings and telemetry handle (from its init()), else settings resolved for ``service``."""
    from otel_expansion import _runtime

    t = _runtime._handle
    if t is not None:
        return t.settings, t
    from otel_expansion.config import load

    return load(service or prog.split()[0]), None


def _plain_invocation(t: Any) -> Any:
    """Forget the held first-run notice (running these commands is the user's choice) and the run the
    framework hook started for this command: it is recorded by :func:`_count` as a bare invocation.

    Returns a placeholder that stays the recorder's active run while the command runs, so the argparse
    this module uses is not taken for a new command of the host.
    """
    from otel_expansion.privacy import consent

    consent.discard_pending()
    if t is None:
        return None
    from otel_expansion.collect import CommandRun

    placeholder = CommandRun("telemetry", "")
    t.recorder.active = placeholder
    return placeholder


def _count(t: Any, name: str, code: int, start_ns: int) -> None:
    """One invocation of ``name`` with its exit status and how long it took (a zero duration would pull
    the report's percentiles down): no resources, flags or subcommand."""
    if t is None or not t.enabled or t.recorder.level <= Level.OFF:
        return
    import time

    from otel_expansion.collect import default_executable

    now = time.time_ns()
    exe = t.recorder.executable_name(default_executable())  # a console script's name, else the service's
    cmd = {"name": name, "exe": exe, "start": min(start_ns, now), "end": now, "exit": code}
    if code:
        cmd["error"] = str(code)
    t.recorder.commands.append(cmd)


def _stand_down(t: Any) -> None:
    """Nothing of this run is stored: drop the active run and what was recorded, then stop."""
    if t is None:
        return
    t.recorder.active = None
    t.recorder.drain()
    t.retire()


def _ns(s: Settings, **extra: Any) -> argparse.Namespace:
    return argparse.Namespace(home=s.home, service=s.service_name, **extra)


def run(argv: list[str], prog: str, service: str | None = None) -> int:
    """Run one ``telemetry`` subcommand; returns its exit status. Errors print without a traceback."""
    import time

    started = time.time_ns()
    s, t = _context(service, prog)
    placeholder = _plain_invocation(t)
    try:
        code = _run(argv, prog, s, t)
    finally:
        if t is not None and t.recorder.active is placeholder:
            t.recorder.active = None
    # a reader that left (`mycli telemetry show | head`) got what it wanted: not a failed command
    _count(t, prog.rsplit(" ", 1)[-1], 0 if code == EXIT_PIPE else code, started)
    return code


def _run(argv: list[str], prog: str, s: Settings, t: Any) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("status", [])
    if command in ("-h", "--help", "help"):
        from otel_expansion.config.file import SETTINGS_FILE

        sys.stdout.write(OVERVIEW.format(prog=prog, service=s.service_name,
                                         settings_file=os.path.join(s.home, SETTINGS_FILE)))
        return 0
    handler = _HANDLERS.get(command)
    if handler is None:
        sys.stderr.write(f"{prog}: unknown command {command!r} (try `{prog} --help`)\n")
        return 2
    parser = _Parser(prog=f"{prog} {command}")
    handler[0](parser)
    try:
        args = parser.parse_args(rest)
        code = int(handler[1](args, s, t, prog))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except _Stop as stop:
        return stop.code
    except Exception as exc:
        from otel_expansion.cli.common import CliError

        if isinstance(exc, BrokenPipeError):  # `mycli telemetry show | head`: the reader left; end quietly
            _quiet_stdout()
            return EXIT_PIPE
        if isinstance(exc, CliError):
            sys.stderr.write(f"{prog}: {exc}\n")
            return exc.code
        sys.stderr.write(f"{prog}: {type(exc).__name__}: {exc}\n")
        return 1


EXIT_PIPE = 141
"""A closed pipe ends the command quietly with 128 + SIGPIPE, the status ``git log | head`` leaves."""


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot complain about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# -- subcommands -----------------------------------------------------------------------------------------
def _none(p: argparse.ArgumentParser) -> None:
    return None


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable")


def _status(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    import json

    from otel_expansion.cli.status import next_send_words, spool_stats
    from otel_expansion.config import paths
    from otel_expansion.config.file import SETTINGS_FILE
    from otel_expansion.export import launcher
    from otel_expansion.journal import store as journal
    from otel_expansion.privacy.consent import stored_choice

    stats = spool_stats(s)
    next_at = launcher.next_send_at(s.home) if os.path.isdir(s.home) else None
    id_raw = paths.read_small(os.path.join(s.home, paths.INSTALL_ID_FILE), 128)
    info: dict[str, Any] = {
        "service": s.service_name,
        "enabled": s.enabled,
        "level": str(s.level),
        "level_source": s.level_source,
        "opted_out_by": s.opt_out_reason,
        "consent": stored_choice(s.home) or "not asked",
        "consent_policy": s.consent_policy,
        "debug": s.debug,
        "send": s.send,
        "journal_records": journal.count(s.home),
        "spool_series": stats.series if stats else 0,
        "spool_spans": stats.spans if stats else 0,
        "next_send": None,  # in words below, as `otel-expansion status` says it
        "installation_id": id_raw.decode("ascii", "replace").strip() if id_raw else None,
        "home": s.home,
        "settings_file": os.path.join(s.home, SETTINGS_FILE),
    }
    info["next_send"] = next_send_words(next_at or 0.0, {**info, "sender_running": launcher.sender_running(s.home),
                                                         "dry_run": s.dry_run})
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    why = {"default": "the program's default", "app": "set by the program", "file": "from the settings file",
           "env": "from OTEL_EXPANSION_LEVEL", "user": "your choice", "consent-pending": "not asked yet",
           "opt-out": f"{s.opt_out_reason} is set"}.get(s.level_source, s.level_source)
    state = f"enabled, level {s.level}" if s.enabled else "disabled"
    print(f"{s.service_name} telemetry: {state} ({why})")
    print(f"pending: {info['journal_records']} run records, {info['spool_series']} metric series, "
          f"{info['spool_spans']} spans; next send: {info['next_send']}")
    print(f"installation id: {info['installation_id'] or 'none yet'}")
    print(f"state directory: {s.home}")
    print(f"see what is sent: `{prog} show`; " +
          (f"opt out: `{prog} disable`" if s.enabled else f"opt in: `{prog} enable`"))
    return 0


def _enable(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    from otel_expansion.privacy import consent

    choice = consent.stored_choice(s.home)
    if not (choice and choice.startswith("granted")):
        consent.grant(s.home)
    level = _effective(s).level
    print(f"{s.service_name}: telemetry enabled (level {level}); `{prog} disable` turns it off")
    _note_opt_out(s)
    return 0


def _disable(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    from otel_expansion.cli.control import set_consent

    _stand_down(t)
    removed = set_consent(s.home, s.service_name, "deny")  # what was recorded before is deleted, not sent
    print(f"{s.service_name}: telemetry disabled; nothing more will be recorded or sent "
          f"(`{prog} enable` turns it back on)")
    if removed["journal_records"] or removed["spool_rows"]:
        print(f"{s.service_name}: deleted {removed['journal_records']} pending run records and "
              f"{removed['spool_rows']} stored items")
    return 0


def _level_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("level", nargs="?", help="|".join(str(level) for level in LEVELS))


def _level(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    from otel_expansion.privacy import consent

    if args.level is None:
        print(str(_effective(s).level))
        return 0
    try:
        level = Level.parse(args.level)
    except ValueError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    if level == Level.OFF:
        return _disable(args, s, t, prog)
    before = _effective(s).level
    consent.grant(s.home, level)
    if level < before and os.path.isdir(s.home):  # what is pending was recorded above it: it applies there too
        from otel_expansion.workers.sender import lower_pending

        try:
            lower_pending(s.home, s, int(before), int(level))
        except OSError as exc:
            sys.stderr.write(f"{prog}: could not apply the level to pending data: {exc}\n")
    print(f"{s.service_name}: telemetry level set to {level} (from the next run)")
    _note_opt_out(s)
    return 0


def _show_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=1000, help="most records and items to print")
    p.add_argument("--json", action="store_true", help="OTLP/JSON, as it will be (or was) sent")
    p.add_argument("--sent", action="store_true", help="also what was sent recently")
    p.add_argument("--detail", action="store_true", help="every record, span and metric point, one line each")


def _show(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    from otel_expansion.cli import show

    return int(show.run(_ns(s, limit=args.limit, pending=args.sent, sent=args.sent, signal=None, since=None,
                            json=args.json, detail=args.detail)))


def _flush_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to keep retrying (default 30)")
    p.add_argument("--quiet", action="store_true",  # the words of cli/flush.py's QUIET_HELP (not imported here)
                   help="print nothing unless it fails (errors and warnings still go to stderr; the exit status says)")


def _flush(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    from otel_expansion.cli import flush

    if t is not None and not s.opt_out_reason:
        t.flush()  # anything this process recorded before the command goes too
    # under an opt-out (the app's own variable included) flush.run sends nothing and says how to send or delete
    return int(flush.run(_ns(s, timeout=args.timeout, quiet=args.quiet, endpoint=s.endpoint, json=False,
                             prog=prog, opt_out_env=s.opt_out_env)))


def _reset_id(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    from otel_expansion.cli.control import run_reset_id

    return int(run_reset_id(_ns(s, json=False)))


def _debug_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("state", nargs="?", choices=("on", "off"), help="print each run's record to stderr, or stop")
    p.add_argument("--otlp", action="store_true", help="with `on`: the full OTLP/JSON instead of a summary")


def _debug(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    if args.state is None:
        from otel_expansion.cli import debug

        return int(debug.run(_ns(s, action=None, dry_run=False, json=False, prog=prog)))
    from otel_expansion.config import set_debug_choice

    on = args.state == "on"
    set_debug_choice(s.home, on, json=on and args.otlp)
    if t is not None and t.settings.debug and not on:
        t.settings = _effective(s)  # switched off by this very command: this run is not printed either
    if on:
        shape = "in full, as OTLP/JSON" if args.otlp else "as a short summary"
        print(f"{s.service_name}: from the next run, each run's telemetry is printed to stderr {shape} "
              f"(`{prog} debug off` stops it)")
    else:
        print(f"{s.service_name}: telemetry is no longer printed")
    return 0


def _docs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="-", help="file to write (default: print)")


def _docs(args: argparse.Namespace, s: Settings, t: Any, prog: str) -> int:
    from otel_expansion.sdk.docs import app_markdown

    level = (getattr(t, "init_options", None) or {}).get("level") if t is not None else None
    text = app_markdown(s.service_name, program=prog.rsplit(" ", 1)[0], version=s.service_version, level=level,
                        consent_policy=s.consent_policy, opt_out_env=s.opt_out_env)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {args.output}")
    return 0


def _effective(s: Settings) -> Settings:
    """Settings as the next run will see them (after a choice made by this command)."""
    from otel_expansion import _runtime
    from otel_expansion.config import Stored, load, read_stored

    t = _runtime._handle
    options = dict(getattr(t, "init_options", None) or {}) if t is not None else {}
    options = {k: v for k, v in options.items() if k in ("level", "opt_out_env", "home", "debug", "send")}
    options["home"] = s.home
    stored = read_stored(s.home)
    return load(s.service_name, stored=Stored(stored.choice, stored.debug), **options)


def _note_opt_out(s: Settings) -> None:
    from otel_expansion.config import opted_out

    reason = opted_out(os.environ, s.opt_out_env)
    if reason:
        print(f"note: {reason} is set in your environment, which keeps telemetry off while it is set")


_HANDLERS: dict[str, tuple[Any, Any]] = {
    "status": (_status_args, _status),
    "enable": (_none, _enable),
    "disable": (_none, _disable),
    "level": (_level_args, _level),
    "show": (_show_args, _show),
    "flush": (_flush_args, _flush),
    "reset-id": (_none, _reset_id),
    "debug": (_debug_args, _debug),
    "docs": (_docs_args, _docs),
}

