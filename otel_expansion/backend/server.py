"""The embedded backend's HTTP face: an OTLP/HTTP receiver plus the report API and dashboard.

Stdlib ``http.server`` on purpose: no framework to install, one thread per connection, and each
request opens its own SQLite connection (WAL lets writers and readers overlap). Every handler answers
something: errors the client caused get 4xx with a google.rpc.Status body (as OTLP/HTTP requires),
anything else 500 with a short message; a busy database gets 503 + Retry-After, which OTLP exporters
retry. There is no authentication, so the default bind address is loopback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from otel_expansion.backend.ingest import (
    JSON,
    MAX_BODY_BYTES,
    PROTOBUF,
    PayloadError,
    decode,
    decompress,
    encode_response,
    encode_status,
    flatten,
    media_type,
)
from otel_expansion.backend.report import build_report
from otel_expansion.backend.store import Store, connect
from otel_expansion.otlp.model import BATCH_ID_HEADER

__all__ = ["default_db_path", "serve"]

logger = logging.getLogger("otel_expansion.backend.server")

_SIGNAL_PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
_RPC_CODE = {400: 3, 404: 5, 413: 8, 415: 3, 500: 13, 503: 14}  # google.rpc.Code for each HTTP status
_MAX_BATCH_ID = 256
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self';"
    " img-src data:; base-uri 'none'; form-action 'none'"
)


def default_db_path() -> Path:
    """Per-user data directory: $XDG_DATA_HOME (or ~/.local/share)/otel-expansion/backend.sqlite."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "otel-expansion" / "backend.sqlite"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], db_path: Path, dashboard: bytes) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.db_path = db_path
        self.dashboard = dashboard
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        logger.warning("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse their connection
    timeout = 30  # seconds a slow client may hold a thread
    server_version = "otel-expansion-backend"

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        self._guard(self._post)

    def do_GET(self) -> None:
        self._guard(self._get)

    # -------------------------------------------------------------------------------------------- plumbing

    def _guard(self, handler: Callable[[], None]) -> None:
        self._responded = False
        try:
            handler()
        except Exception as exc:
            logger.exception("%s %s failed", self.command, self.path)
            self.close_connection = True
            if not self._responded:
                with contextlib.suppress(OSError):  # the client may be gone already
                    self._send(500, f"internal error: {type(exc).__name__}\n".encode(), "text/plain")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _status(
        self, status: int, message: str, encoding: str, headers: dict[str, str] | None = None
    ) -> None:
        body = encode_status(_RPC_CODE.get(status, 2), message, encoding)
        self._send(status, body, encoding, headers)

    def _read_body(self) -> bytes:
        """The raw request body, refusing more than MAX_BODY_BYTES before reading it."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            self.close_connection = True
            raise PayloadError(400, "bad Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise PayloadError(400, "bad Content-Length")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise PayloadError(413, f"body larger than {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise PayloadError(400, "body shorter than Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise PayloadError(400, "bad chunk size") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                self.close_connection = True
                raise PayloadError(413, f"body larger than {MAX_BODY_BYTES} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                self.close_connection = True
                raise PayloadError(400, "truncated chunk")
            body += chunk
            self.rfile.readline(1024)

    # ---------------------------------------------------------------------------------------------- OTLP

    def _post(self) -> None:
        signal = _SIGNAL_PATHS.get(urlsplit(self.path).path)
        if signal is None:
            self.close_connection = True
            self._send(404, b"not found\n", "text/plain")
            return
        encoding = media_type(self.headers.get("Content-Type"))
        if encoding is None:
            self.close_connection = True
            self._status(
                415,
                f"unsupported Content-Type {self.headers.get('Content-Type')!r}; use {PROTOBUF} or {JSON}",
                PROTOBUF,
            )
            return
        try:
            body = decompress(self._read_body(), self.headers.get("Content-Encoding"))
            resources = flatten(signal, decode(signal, body, encoding))
            batch_id = (self.headers.get(BATCH_ID_HEADER) or "").strip() or None
            if batch_id is not None and len(batch_id) > _MAX_BATCH_ID:
                logger.warning("ignoring a %d-character batch id header", len(batch_id))
                batch_id = None
            with Store(self.server.db_path) as store:
                result = store.write(signal, resources, batch_id)
        except PayloadError as exc:
            logger.info("refused %s request: %s %s", signal, exc.status, exc.message)
            self._status(exc.status, exc.message, encoding)
            return
        except OverflowError:  # e.g. a timestamp above SQLite's signed 64-bit range
            self._status(400, "a value is out of the storable range", encoding)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            logger.warning("database busy, asking the client to retry: %s", exc)
            self._status(503, "storage busy, retry later", encoding, {"Retry-After": "1"})
            return
        if result.duplicates:
            logger.info("dropped %d duplicate %s resource(s)", result.duplicates, signal)
        self._send(200, encode_response(signal, encoding), encoding)

    # --------------------------------------------------------------------------------------------- pages

    def _get(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(
                200,
                self.server.dashboard,
                "text/html; charset=utf-8",
                {"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
            )
        elif url.path == "/api/report":
            since_ns = _since(parse_qs(url.query))
            report = build_report(self.server.db_path, since_ns)
            body = json.dumps(report, allow_nan=False, separators=(",", ":")).encode()
            self._send(200, body, "application/json", {"Cache-Control": "no-store"})
        elif url.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif url.path in _SIGNAL_PATHS:
            self._send(405, b"use POST\n", "text/plain", {"Allow": "POST"})
        else:
            self._send(404, b"not found\n", "text/plain")


def _since(query: dict[str, list[str]]) -> int | None:
    """?since_ns=N or ?days=N (floats allowed); anything unparsable means all time."""
    try:
        if "since_ns" in query:
            return int(query["since_ns"][0])
        if "days" in query:
            days = float(query["days"][0])
            if days > 0:
                return time.time_ns() - int(days * 86400e9)
    except (ValueError, OverflowError):
        pass
    return None


def serve(
    host: str = "127.0.0.1",
    port: int = 4318,
    db_path: Path | None = None,
    *,
    ready: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the receiver and dashboard until ``stop`` is set (or forever); ``ready`` gets the bound port."""
    db_path = Path(db_path) if db_path is not None else default_db_path()
    connect(db_path).close()  # create the schema now: an unwritable path fails here, not on first export
    dashboard = Path(__file__).with_name("dashboard.html").read_bytes()
    server = _Server((host, port), db_path, dashboard)
    try:
        if stop is not None:

            def stopper() -> None:
                stop.wait()
                server.shutdown()

            threading.Thread(target=stopper, name="otel-expansion-backend-stop", daemon=True).start()
        logger.info("listening on %s:%d, storing into %s", host, server.server_address[1], db_path)
        if ready is not None:
            ready(int(server.server_address[1]))
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
