"""``otel-expansion debug [on|off] [--dry-run]``: the debug stream switch, and the effective configuration.

``debug on`` is stored for that app (its state directory), so every later run of it, in any mode, prints
each recorded signal to stderr as it will be sent and logs it through the ``otel_expansion`` logger.
``OTEL_EXPANSION_DEBUG`` still wins. ``--dry-run`` also stops sending: data is recorded and shown only.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from otel_expansion.cli.common import (
    EXIT_OK,
    add_json,
    add_target,
    emit_json,
    endpoint_of,
    endpoint_source,
    find_home,
    note_if_unknown,
    safe_url,
    settings_for,
)
from otel_expansion.config import VARIABLES, Settings

SECRET_VARIABLES = ("HEADERS", "SALT", "CERTIFICATE", "CLIENT_KEY")


def _shown(name: str, value: str, secret: bool) -> str:
    """A variable's value fit to print: secrets as <set>, endpoints without credentials or query."""
    if secret or any(w in name for w in SECRET_VARIABLES):
        return "<set>"
    return safe_url(value) if "ENDPOINT" in name else value


def set_debug(home: str, on: bool, dry_run: bool = False, json: bool = False) -> None:
    """Store the app's debug switch (the function every front end uses)."""
    from otel_expansion.config import set_debug_choice

    set_debug_choice(home, on, dry_run, json)


def config_info(s: Settings) -> dict[str, Any]:
    """The effective configuration with where each choice comes from; secrets masked."""
    from otel_expansion.config.otlp import otlp_config_from_env

    cfg = otlp_config_from_env(endpoint=s.endpoint)
    env = {v.name: _shown(v.name, os.environ[v.name], v.secret) for v in VARIABLES if v.name in os.environ}
    if s.opt_out_env and s.opt_out_env in os.environ:
        env[s.opt_out_env] = os.environ[s.opt_out_env]
    return {
        "service": s.service_name,
        "home": s.home,
        "level": str(s.level),
        "level_source": s.level_source,
        "opted_out_by": s.opt_out_reason,
        "debug": s.debug,
        "debug_source": s.debug_source,
        "debug_json": s.debug_json,
        "dry_run": s.dry_run,
        "send": s.send,
        "endpoint": endpoint_of(cfg),  # as resolved (the program's, the environment's or the default), never None
        "traces_url": safe_url(cfg.traces_url),
        "metrics_url": safe_url(cfg.metrics_url),
        "protocol": cfg.protocol,
        "compression": cfg.compression,
        "spool_max_bytes": s.spool_max_bytes,
        "spool_max_age_s": s.spool_max_age_s,
        "sender_timeout_s": s.sender_timeout_s,
        "metric_interval_s": s.metric_interval_s,
        "sent_max_batches": s.sent_max_batches,
        "sent_max_bytes": s.sent_max_bytes,
        "environment": env,
    }


def run(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    if args.action in ("on", "off"):
        note_if_unknown(home, service)
        on = args.action == "on"
        set_debug(home, on, args.dry_run, on and args.full_json)
        s = settings_for(home, service)
        result = {"service": service, "debug": on, "dry_run": on and args.dry_run,
                  "effective_debug": s.debug, "debug_source": s.debug_source, "debug_json": s.debug_json}
        if args.json:
            emit_json(result)
            return EXIT_OK
        mode = " (dry run: recorded and shown, never sent)" if result["dry_run"] else ""
        if on:
            shape = "in full as OTLP/JSON" if s.debug_json else "as a short summary (`debug on --otlp`: in full)"
            print(f"{service}: debug on{mode}: each run's telemetry is printed to stderr {shape}; stored in {home}")
        else:
            print(f"{service}: debug off; stored in {home}")
        if s.debug != result["debug"]:
            print(f"note: OTEL_EXPANSION_DEBUG={os.environ.get('OTEL_EXPANSION_DEBUG')} is set and wins")
        return EXIT_OK
    info = config_info(settings_for(home, service))
    if args.json:
        emit_json(info)
        return EXIT_OK
    print("effective settings:")
    for key, value in info.items():
        if key == "endpoint":
            value = f"{value} ({endpoint_source(settings_for(home, service))})"
        if key != "environment":
            print(f"  {key:<18} {'none' if value is None else value}")
    print("environment:")
    for name, value in info["environment"].items():
        print(f"  {name}={value}")
    prog = getattr(args, "prog", None)
    debug_cmd, show_cmd = (f"{prog} debug on", f"{prog} show") if prog else ("otel-expansion debug on",
                                                                             "otel-expansion show")
    print(f"tip: `{debug_cmd}` prints a summary of each run's telemetry to stderr; `{show_cmd}` lists what is "
          "pending")
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_json(add_target(sub.add_parser(
        "debug", help="debug on|off: print every recorded signal to stderr; alone: the effective configuration")))
    p.add_argument("action", nargs="?", choices=("on", "off"), help="turn the debug stream on or off for this app")
    p.add_argument("--dry-run", action="store_true", help="with `on`: record and show, never send")
    p.add_argument("--otlp", dest="full_json", action="store_true",
                   help="with `on`: print each record in full as OTLP/JSON instead of a summary")
    p.set_defaults(func=run)
