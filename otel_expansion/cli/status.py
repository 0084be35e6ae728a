"""``otel-expansion status``: level, consent, endpoint, the last send and what is pending, for one app."""

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
    find_home,
    fmt_time,
    require_known,
    settings_for,
    spool_is_ours,
)
from otel_expansion.config import Settings, paths


def spool_stats(s: Settings) -> Any:
    if not spool_is_ours(s.home):
        return None
    from otel_expansion.spool.store import Spool

    spool = Spool.open_readonly(os.path.join(s.home, paths.SPOOL_FILE))  # a read command never writes
    try:
        return spool.stats()
    finally:
        spool.close()


def _sender_running(home: str) -> bool:
    if not os.path.exists(os.path.join(home, paths.SENDER_LOCK)):  # never creates the lock file
        return False
    from otel_expansion.export import launcher

    return launcher.sender_running(home)


def app_opt_out(home: str) -> tuple[str | None, bool]:
    """(the app's own opt-out variable as its init() declared it, whether it is set now)."""
    from otel_expansion.config import opt_out_set, read_stored

    name = read_stored(home).opt_out_env
    return (name, opt_out_set(os.environ, name)) if name else (None, False)


def status_info(s: Settings) -> dict[str, Any]:
    """Everything ``status`` shows, as one dict (the --json shape; the inspector uses it too)."""
    from otel_expansion.config.otlp import otlp_config_from_env
    from otel_expansion.export import history, launcher
    from otel_expansion.journal import store as journal
    from otel_expansion.privacy.consent import stored_choice

    stats = spool_stats(s)
    opt_var, opt_set = app_opt_out(s.home)
    next_send = launcher.next_send_at(s.home)
    cfg = otlp_config_from_env(endpoint=s.endpoint)
    info: dict[str, Any] = {
        "service": s.service_name,
        "home": s.home,
        "level": str(s.level),
        "level_source": s.level_source,
        "opted_out_by": s.opt_out_reason,
        "app_opt_out_variable": opt_var,
        "app_opt_out_set": opt_set,
        "consent": stored_choice(s.home) or "not asked",
        "debug": s.debug,
        "dry_run": s.dry_run,
        "endpoint_problem": cfg.endpoint_problem,  # misconfigured: nothing is sent, the data waits
        "endpoint": endpoint_of(cfg),
        "last_send": history.last_round(s.home),
        "journal_records": journal.count(s.home),
        "spool_series": stats.series if stats else 0,
        "spool_spans": stats.spans if stats else 0,
        "spool_batches_in_flight": stats.batches if stats else 0,
        "spool_bytes": stats.bytes_on_disk if stats else 0,
        "sent_kept": len(history.entries(s.home)),
        "counters": stats.counters if stats else {},
        "sender_running": _sender_running(s.home),
        "next_send": "",
    }
    info["next_send"] = next_send_words(next_send, {**info, "send": s.send})
    id_path = os.path.join(s.home, paths.INSTALL_ID_FILE)
    raw_id = paths.read_small(id_path, 128)
    info["installation_id"] = raw_id.decode("ascii", "replace").strip() if raw_id else None
    return info


def next_send_words(due: float, info: dict[str, Any], now: float | None = None) -> str:
    """When pending data goes, as the files can tell it. Nothing sends on a timer between a CLI's runs: a
    due time only lets the app's first run from then on start a sender, so a time already past is said as
    "with the app's next run (due since ...)", never as a time still to come."""
    import time

    if info.get("dry_run"):
        return "never: dry run (recorded and shown, never sent; `otel-expansion debug off` ends it)"
    if info.get("send") is False:
        return "not by itself: sending is off (OTEL_EXPANSION_SEND=false); `otel-expansion flush` sends"
    if info.get("sender_running"):
        return "now: a send round is running"
    if not (info.get("journal_records") or info.get("spool_series") or info.get("spool_spans")):
        return "nothing pending"
    now = time.time() if now is None else now
    if not due:
        return "with the app's next run"
    if due <= now:
        return f"with the app's next run (due since {fmt_time(due)})"
    return f"with the app's first run after {fmt_time(due)}"


def consent_words(raw: str) -> str:
    """The stored consent (``granted:basic``, ``denied``) in words a person reads; the stored word stays in
    the text so it can still be searched for."""
    if raw.startswith("granted<="):
        return f"allowed by the user ({raw}: a yes to the first-run question, up to level {raw[9:]})"
    if raw.startswith("granted"):
        level = raw.partition(":")[2]
        return "allowed by the user (granted" + (f", level {level})" if level else ")")
    if raw == "denied":
        return "refused by the user (denied): nothing is recorded or sent"
    return "not asked yet"


def render(info: dict[str, Any]) -> list[str]:
    """Plain words for the things people ask about first, then the rest as a table."""
    lines = [f"{info['service']}: telemetry level {info['level']} ({info['level_source']})"]
    if info["opted_out_by"]:
        lines.append(f"  off because {info['opted_out_by']} is set in the environment")
    if info["app_opt_out_variable"]:
        state = "set: telemetry is off" if info["app_opt_out_set"] else "not set"
        lines.append(f"  this app's own opt-out variable: {info['app_opt_out_variable']} ({state})")
    if info.get("endpoint_problem"):  # nothing goes to the default endpoint instead: say only that
        lines.append(f"  NOT SENDING: {info['endpoint_problem']}; pending data waits until it is fixed")
    else:
        lines.append(f"  sends to {info['endpoint']}" + ("  [dry run: nothing is sent]" if info["dry_run"] else ""))
    last = info["last_send"]
    if last is None:
        lines.append("  last send: " + no_round_result(info))
    elif last.get("ok"):
        lines.append(f"  last send: {fmt_time(last['time'])} ok, {last.get('batches', 0)} batches, "
                     f"{last.get('bytes', 0)} bytes")
    else:
        lines.append(f"  last send: {fmt_time(last['time'])} FAILED: {last.get('error')}")
    lines.append(f"  debug stream: {'on' if info['debug'] else 'off'}")
    skip = {"service", "level", "level_source", "opted_out_by", "app_opt_out_variable", "app_opt_out_set",
            "endpoint", "endpoint_problem", "last_send", "debug", "dry_run"}  # said in words above
    rest = {k: v for k, v in info.items() if k not in skip}
    width = max(len(k) for k in rest)
    rest["consent"] = consent_words(str(rest.get("consent")))
    lines += [f"  {key.replace('_', ' '):<{width}}  {_plain(value)}" for key, value in rest.items()]
    return lines


def no_round_result(info: dict[str, Any]) -> str:
    """No round's result is kept: say only what the files show (attempts counted, batches still in flight,
    a sender running), never a cause they cannot tell apart (a round killed mid-send, a cleared history)."""
    attempts = int((info.get("counters") or {}).get("export.attempts", 0) or 0)
    if not attempts:
        return "none yet (no send attempt counted)"
    counted = f"{attempts} send attempt{'s' if attempts != 1 else ''} counted"
    in_flight = int(info.get("spool_batches_in_flight") or 0)
    if info.get("sender_running"):
        return f"no result yet ({counted}; a send round is running now)"
    if in_flight:
        them = "them" if in_flight != 1 else "it"
        return (f"no result recorded ({counted}; {in_flight} batch{'es' if in_flight != 1 else ''} still in "
                f"flight: a send round stopped before it finished; the next one sends {them} again)")
    return f"no result kept ({counted}; the round that made them kept no result, or the sent history was cleared)"


def _plain(value: Any) -> str:
    """A value in words: mappings as ``name=value`` pairs (``none`` when empty), not Python reprs."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    return str(value)


def run(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    require_known(home, service, args)
    info = status_info(settings_for(home, service))
    if args.json:
        emit_json(info)
    else:
        print("\n".join(render(info)))
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_json(add_target(sub.add_parser("status", help="level, consent, endpoint, last send, what is pending")))
    p.set_defaults(func=run)
