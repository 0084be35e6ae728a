"""What every ``otel-expansion`` subcommand shares: finding the app, its settings, errors and output.

Other front ends (the host CLI's ``telemetry`` group, the inspector page) call these too, so that every
way in resolves the same app and prints the same words.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from otel_expansion.config import Settings, load, paths
from otel_expansion.config.otlp import masked_url

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

safe_url = masked_url  # the CLI's name for it: credentials and query string masked before printing


class CliError(Exception):
    """A user-facing error: printed as one line without a traceback, exit status 2 unless given."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def base_dir() -> str:
    return os.path.dirname(paths.default_home("x"))


def known_services() -> list[str]:
    base = base_dir()
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


def find_home(args: argparse.Namespace) -> tuple[str, str]:
    """(home, service): --home, then --service (in OTEL_EXPANSION_HOME when that is set and holds this app's
    data or none, as the app itself would write there), then OTEL_EXPANSION_HOME, then the only known
    service.

    A home the library refuses (a symbolic link, another user's, not a directory) is refused here too, in
    words, exit 1: telemetry stands down there, so its files say nothing true about the app."""
    home, service = _find_home(args)
    why = refusal(home)
    if why:
        raise CliError(f"the home {home} is refused: it {why}; telemetry stands down there (nothing is "
                       "recorded, sent or changed through it)", EXIT_FAIL)
    return home, service


def refusal(home: str) -> str | None:
    """Why the library will not use ``home``: a link, or a directory that is not ours (paths.check_dir's
    reason). None for an absent home or a file (require_known says those, with its own exit status)."""
    try:
        if not os.path.islink(home) and not os.path.isdir(home):
            return None
        paths.check_dir(home)
    except paths.UnsafePath as exc:
        return exc.why
    except OSError:
        return None
    return None


def _find_home(args: argparse.Namespace) -> tuple[str, str]:
    if getattr(args, "home", None):
        home = os.path.abspath(args.home)
        return home, args.service or service_of(home)
    from otel_expansion.config import variable

    env_home = variable("OTEL_EXPANSION_HOME")
    if getattr(args, "service", None):
        if isinstance(env_home, str):  # where the app writes when this variable is set (config.home_of),
            home = os.path.abspath(env_home)  # unless that directory holds another app's data
            recorded = paths.read_small(os.path.join(home, paths.SERVICE_FILE), 256)
            if recorded is None or recorded.decode("utf-8", "replace").strip() == args.service:
                return home, args.service
        return paths.default_home(args.service), args.service
    if isinstance(env_home, str):
        home = os.path.abspath(env_home)
        return home, service_of(home)
    known = known_services()
    if len(known) == 1:
        return os.path.join(base_dir(), known[0]), known[0]
    hint = f" Known services: {', '.join(known)}." if known else " No service has recorded telemetry yet."
    raise CliError(f"which app? pass --service NAME or --home DIR (or set OTEL_EXPANSION_HOME).{hint}")


def service_of(home: str) -> str:
    """The app's name as its telemetry recorded it, else the directory's name."""
    raw = paths.read_small(os.path.join(home, paths.SERVICE_FILE), 256)
    return raw.decode("utf-8", "replace").strip() if raw else os.path.basename(home)


def endpoint_of(cfg: Any) -> str:
    """The collector's base URL a send goes to, as resolved (credentials masked): the traces URL without its
    ``/v1/traces`` path, or the traces URL itself when it was set on its own."""
    url = str(cfg.traces_url)
    return safe_url(url.rsplit("/v1/", 1)[0]) if url.endswith("/v1/traces") else safe_url(url)


def endpoint_source(s: Settings, environ: Any = None) -> str:
    """Where the endpoint comes from, in words: the program or --endpoint, the environment, or the default."""
    env = os.environ if environ is None else environ
    if s.endpoint:
        return "set by the program (init(endpoint=...)) or --endpoint"
    named = [n for n in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                         "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") if env.get(n, "").strip()]
    return f"from {' and '.join(named)}" if named else "the OpenTelemetry default"


def settings_for(home: str, service: str, endpoint: str | None = None) -> Settings:
    """The settings a run of ``service`` would use, with the user's stored choices applied."""
    return load(service, home=home, endpoint=endpoint)


def settings_of(args: argparse.Namespace) -> Settings:
    home, service = find_home(args)
    return settings_for(home, service, getattr(args, "endpoint", None))


def fmt_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def emit_json(data: Any) -> None:
    """The --json output: one JSON document on stdout."""
    print(json.dumps(data, indent=2, default=str))


def note(message: str) -> None:
    print(message, file=sys.stderr)


def note_if_unknown(home: str, service: str) -> None:
    """A typo in --service must not pass silently: say when nothing was ever recorded under that name."""
    if os.path.isdir(home):
        return
    known = known_services()
    hint = f" (known: {', '.join(known)})" if known else ""
    note(f"note: no telemetry has been recorded for {service!r} yet{hint}; the choice is stored for it anyway")


def add_target(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--service/--home: which app's telemetry a command acts on."""
    p.add_argument("--service", help="the app's service name (as given to init())")
    p.add_argument("--home", help="the app's telemetry state directory")
    return p


def add_json(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--json", action="store_true", help="print one JSON document (shapes: README, `--json` output)")
    return p


def require_known(home: str, service: str, args: argparse.Namespace | None = None) -> None:
    """Read commands on an app that never recorded anything: say so (exit 2) rather than create anything."""
    if os.path.isdir(home):
        return
    if args is not None and getattr(args, "home", None) and os.path.exists(home):
        raise CliError(f"{home} is not a directory")
    known = known_services()
    hint = f" (known: {', '.join(known)})" if known else ""
    raise CliError(f"no telemetry has been recorded for {service!r} at {home}{hint}")


def spool_is_ours(home: str, recover: bool = False) -> bool:
    """True when the home holds a spool to use. Never writes.

    A valid SQLite file with other tables is not ours: CliError, left untouched. A damaged file at our
    path is ours to recover: with ``recover`` (flush, clear) the spool's own opening moves it aside;
    otherwise (status, show) it is reported as unreadable and read as empty.
    """
    path = os.path.join(home, paths.SPOOL_FILE)
    if not os.path.exists(path):
        return False
    try:
        if not require_tables(path, {"series", "spans", "counters"}, "an otel-expansion spool"):
            return recover  # created but never finished: empty to a reader, made whole by flush/clear
    except _Damaged:
        if recover:
            return True
        note(f"note: {path} is damaged; the next send moves it aside (its data is lost and counted)")
        return False
    return True


class _Damaged(CliError):
    """The file at a path of ours is not a readable SQLite database."""


def require_tables(path: str, needed: set[str], what: str) -> set[str]:
    """CliError unless the SQLite file at ``path`` has ``needed`` tables (or none yet); opened read-only,
    never changed. Returns the tables found."""
    import sqlite3

    from otel_expansion.spool.connection import readonly_uri

    try:  # read-only for real: no -wal/-shm created, none rewritten (issue 24, #1)
        conn = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _Damaged(f"{path} is not {what} ({exc}); left untouched", EXIT_FAIL) from None
    if tables and not needed <= tables:  # no table at all: ours, never finished (a full disk at creation)
        raise CliError(f"{path} is not {what} (other tables); left untouched", EXIT_FAIL)
    return tables


def parse_since(value: str | None) -> float | None:
    """``--since``: a duration back from now (90s, 10m, 2h, 7d) or a date/time (2026-11-30, 2026-11-30T10:00)."""
    if value is None:
        return None
    text = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text and text[-1] in units:
        try:
            amount = float(text[:-1])
        except ValueError:
            amount = -1.0
        if amount >= 0:
            return time.time() - amount * units[text[-1]]
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise CliError(f"--since {value!r}: use a duration (90s, 10m, 2h, 7d) or a date (2026-11-30T10:00)") from None


def port_number(value: str) -> int:
    """argparse type of a TCP port: 0-65535 (0 picks a free one); anything else is a usage mistake."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port number (0-65535; 0 picks a free one)")
    return n


def port_free(host: str, port: int) -> None:
    """CliError (exit 1) when ``host:port`` cannot be listened on; checked before anything is created."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAIL) from None


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming it (and where to look), exit status 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")
