"""``otel-expansion ui``: the inspector page, a small local web server on 127.0.0.1.

It shows one app's settings and where each comes from, what is pending, what was recently sent (decoded),
drops and their reasons, self-health and a live view of new data; and it lets the user change the level,
consent and the debug switch with the same functions the ``level``/``consent``/``debug`` commands use.
Only 127.0.0.1; a random port unless one is given; changes need the page's per-run token (a custom header,
which a foreign web page cannot send without a CORS preflight we never answer) and a local Host header.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_expansion.cli.common import (
    EXIT_OK,
    CliError,
    add_json,
    add_target,
    find_home,
    port_number,
    require_known,
    settings_for,
)

MAX_BODY = 4096
PENDING_SHOWN = 500
LIVE_SHOWN = 200

SOURCES = {"default": "the program's default", "app": "set by the program", "file": "the settings file",
           "env": "an environment variable", "user": "set by the user", "consent-pending": "waiting for consent",
           "opt-out": "an opt-out variable", "environment": "the environment", "state directory": "where it is kept",
           "init()/--endpoint": "set by the program"}
"""Where a setting comes from, in words (the page shows these, not the internal source names)."""

DROP_MEANINGS = {
    "overflow": "commands dropped because the program recorded faster than they could be handed over",
    "overflow_features": "features of those dropped commands",
    "overflow_exceptions": "handled exceptions of those dropped commands",
    "undeclared": ("features or attributes not declared by the program, and names no declaration or code "
                   "fixes, sent as <dynamic> (data minimisation)"),
    "journal_full": "runs not saved because the journal was full",
    "staging": "spans beyond what one conversion holds",
    "corrupt": "run records that could not be read",
    "age": "pending data older than the spool's age limit",
    "size": "pending data beyond the spool's size cap (oldest first)",
    "duplicate": "data already stored once",
    "invalid": "data the collector refused as invalid",
}
"""One line per drop reason; an unknown reason is still shown, counted, with a generic meaning."""


def _settings_words(config: dict[str, Any], info: dict[str, Any], s: Any, home: str) -> dict[str, Any]:
    from otel_expansion.cli.status import consent_words

    def one(value: Any, words: str, source: str) -> dict[str, Any]:
        return {"value": value, "words": words, "source": source, "source_words": SOURCES.get(source, source)}

    dry = config["dry_run"]
    return {
        "level": one(config["level"], {"off": "off: nothing is recorded", "basic": "basic: counts and durations",
                                       "enhanced": "enhanced: + a span per command, sessions",
                                       "full": "full: + own-text messages and flags"}.get(config["level"],
                                                                                        config["level"]),
                     config["level_source"]),
        "consent": one(info["consent"], consent_words(str(info["consent"])),
                       "user" if info["consent"] != "not asked" else "default"),
        "debug": one(config["debug"], ("on: each run is printed to stderr" + (" in full (OTLP/JSON)"
                                                                              if config.get("debug_json") else
                                                                              " as a summary"))
                     if config["debug"] else "off", config["debug_source"]),
        "dry_run": one(dry, "on: recorded and shown, never sent" if dry else "off: data is sent",
                       config["debug_source"]),
        "endpoint": one(info["endpoint"], f"data is sent to {info['endpoint']}" if info["endpoint"] else
                        "the OpenTelemetry default (http://localhost:4318)",
                        "init()/--endpoint" if s.endpoint else "environment"),
        "opted_out_by": one(info["opted_out_by"], f"{info['opted_out_by']} is set: telemetry is off"
                            if info["opted_out_by"] else "no opt-out variable is set", "environment"),
        "app_opt_out_variable": one(info["app_opt_out_variable"],
                                    f"the program's own opt-out variable is {info['app_opt_out_variable']}"
                                    if info["app_opt_out_variable"] else "the program declares none", "app"),
        "home": one(home, home, "state directory"),
    }


def state(home: str, service: str) -> dict[str, Any]:
    """Everything the page shows, as one JSON document (also `GET /api/state`)."""
    from otel_expansion.cli import show
    from otel_expansion.cli.debug import config_info
    from otel_expansion.cli.status import no_round_result, status_info

    s = settings_for(home, service)
    info = status_info(s)
    config = config_info(s)
    pending = show.pending_data(s, limit=PENDING_SHOWN)
    sent = show.sent_data(home)
    counters: dict[str, int] = info["counters"]
    live: list[dict[str, Any]] = []
    for record in pending["journal"]:
        for cmd in record.get("commands") or ():
            live.append({"id": f"run:{cmd.get('start')}:{cmd.get('name')}", "kind": "run record",
                         "time": int(cmd.get("end", 0)) / 1e9, "text": f"{cmd.get('name')} exit {cmd.get('exit')}"})
    for span in show.spans_of(pending["traces"]):
        live.append({"id": f"span:{span.get('spanId')}", "kind": "span (pending)",
                     "time": int(span.get("endTimeUnixNano", 0)) / 1e9, "text": show.describe_span(span)})
    for item in sent:
        live.append({"id": f"sent:{item['time']}:{item['signal']}:{item['batch_id']}", "kind": f"sent {item['signal']}",
                     "time": item["time"], "text": f"{item['items']} items, {item['wire_bytes']} bytes"})
    live.sort(key=lambda e: e["time"])
    return {
        "service": service,
        "settings": _settings_words(config, info, s, home),
        "status": info,
        "pending": {
            "journal": len(pending["journal"]),
            "spans": [show.describe_span(span) for span in show.spans_of(pending["traces"])],
            "points": [show.describe_point(*pt) for pt in show.points_of(pending["metrics"])],
            "content": {"traces": pending["traces"], "metrics": pending["metrics"]},
            "shown_at_most": PENDING_SHOWN,
            "spans_total": info["spool_spans"],
            "series_total": info["spool_series"],
            "journal_total": info["journal_records"],
        },
        "sent": [dict(item, lines=[show.describe_span(sp) for sp in show.spans_of(item.get("content") or {})]
                      + [show.describe_point(*pt) for pt in show.points_of(item.get("content") or {})])
                 for item in reversed(sent)],
        "drops": {name.split(".", 1)[1]: n for name, n in sorted(counters.items()) if name.startswith("dropped.")},
        "drop_meanings": {name.split(".", 1)[1]: DROP_MEANINGS.get(name.split(".", 1)[1].split(".")[0],
                                                                    "counted drops of this kind")
                          for name in counters if name.startswith("dropped.")},
        "health": {
            "export_attempts": counters.get("export.attempts", 0),
            "export_failures": {name.split(".", 2)[2]: n for name, n in sorted(counters.items())
                                if name.startswith("export.failures.")},
            "spool_bytes": info["spool_bytes"],
            "journal_backlog": info["journal_records"],
            "sender_running": info["sender_running"],
            "last_send": info["last_send"],
            # with no round on record, what the files show, in the words `status` uses (never a guessed cause)
            "last_send_words": None if info["last_send"] else no_round_result(info),
        },
        "live": live[-LIVE_SHOWN:],
        "live_total": len(live),
    }


def apply(home: str, service: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A change from the page, through the same functions the commands use."""
    from otel_expansion.cli import control
    from otel_expansion.cli.debug import set_debug

    if action == "level":
        level = control.set_level(home, service, str(payload.get("level", "")))
        return {"level": str(level)}
    if action == "consent":
        return {"deleted": control.set_consent(home, service, str(payload.get("action", "")))}
    if action == "clear":
        return {"cleared": control.clear(home, service)}
    if action == "debug":
        set_debug(home, bool(payload.get("on")), bool(payload.get("dry_run")))
        return {"debug": bool(payload.get("on"))}
    raise CliError(f"unknown action {action!r}")


MAX_CONNECTIONS = 16
"""Connections served at once; more are closed at once (a page needs a handful; nothing may pile up)."""
IDLE_TIMEOUT_S = 15.0
"""Seconds a connection may sit idle or half-sent before its thread lets it go."""


class Inspector(ThreadingHTTPServer):
    """The local page's server: a bounded number of threads, each freed when its client goes quiet."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, home: str, service: str) -> None:
        self.home, self.service = home, service
        self.token = os.urandom(16).hex()
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(("127.0.0.1", port), Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most ``MAX_CONNECTIONS``: beyond that the connection is closed."""
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class Handler(BaseHTTPRequestHandler):
    server: Inspector
    timeout = IDLE_TIMEOUT_S  # a half-sent or idle connection lets its thread go

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows only the URL
        return

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.server_address[1]
        return host in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; "
                         "style-src 'self' 'unsafe-inline'; connect-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, default=str).encode(), "application/json")

    def do_GET(self) -> None:
        if not self._host_ok():
            self._json(403, {"error": "unexpected Host header"})
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            page = _page().replace("__TOKEN__", self.server.token).replace("__SERVICE__", _html(self.server.service))
            self._send(200, page.encode(), "text/html; charset=utf-8")
        elif path == "/look.css":
            self._send(200, shared_style().encode(), "text/css; charset=utf-8")
        elif path == "/api/state":
            try:
                with self.server.lock:
                    data = state(self.server.home, self.server.service)
            except CliError as exc:
                self._json(500, {"error": str(exc)})
                return
            self._json(200, data)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._host_ok() or self.headers.get("X-Inspector-Token") != self.server.token:
            self._json(403, {"error": "missing or wrong token"})
            return
        path = self.path.split("?", 1)[0]
        if not path.startswith("/api/"):
            self._json(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._json(400, {"error": "bad Content-Length"})
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError:
            self._json(400, {"error": "body must be a JSON object"})
            return
        try:
            with self.server.lock:
                result = apply(self.server.home, self.server.service, path[len("/api/"):], payload)
        except CliError as exc:
            self._json(400, {"error": str(exc)})
            return
        self._json(200, result)


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def _page() -> str:
    from importlib.resources import files

    return files("otel_expansion.cli").joinpath("inspector.html").read_text(encoding="utf-8")


def shared_style() -> str:
    """The dashboard's stylesheet (its one ``<style>`` block), which the inspector links as /look.css.

    Read from dashboard.html itself, so the two pages share one look by construction: a change to the
    dashboard's style is the inspector's too. Only the file is read; the backend package is not imported.
    """
    import re
    from importlib.resources import files

    page = files("otel_expansion").joinpath("backend").joinpath("dashboard.html").read_text(encoding="utf-8")
    found = re.search(r"<style>(.*?)</style>", page, re.S)
    return found.group(1) if found else ""


def run(args: argparse.Namespace) -> int:
    home, service = find_home(args)
    require_known(home, service, args)
    try:
        server = Inspector(args.port, home, service)
    except OSError as exc:
        raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", 1) from None
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    if args.json:
        print(json.dumps({"service": service, "url": url, "port": server.server_address[1]}), flush=True)
    else:
        print(f"otel-expansion inspector for {service}: {url} (Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_json(add_target(sub.add_parser("ui", help="the inspector page on 127.0.0.1: settings, pending, sent")))
    p.add_argument("--port", type=port_number, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.set_defaults(func=run)


