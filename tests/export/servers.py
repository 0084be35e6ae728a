"""Real OTLP/HTTP endpoints on 127.0.0.1 for tests: a scriptable collector, a blackhole, a refused port.

Everything here is bounded in time and cleans up on exit: server threads stop, delayed replies end early,
open connections are shut down. Nothing listens beyond 127.0.0.1.

The collector::

    with otlp_server() as srv:                    # answers 200 + an empty Export*ServiceResponse
        config = otlp_config_from_env({}, endpoint=srv.url)
        ...                                       # POST to srv.url + "/v1/traces" etc.
        req = srv.requests[0]                     # RecordedRequest, in arrival order
        req.method, req.path, req.signal          # "POST", "/v1/traces", "traces"
        req.header("content-encoding")            # case-insensitive; all pairs in req.headers
        req.raw_body, req.body                    # as received / gunzipped when Content-Encoding: gzip
        req.message()                             # decoded Export*ServiceRequest (protobuf bodies)
        req.json()                                # parsed body (http/json bodies)
        req.batch_id, req.connection              # batch id header; serial number of the TCP connection
        srv.wait_for(3)                           # block (bounded) until 3 requests arrived

A *behaviour* decides each answer: a callable ``(RecordedRequest) -> Reply`` (a plain ``(status,
headers, body)`` tuple works too). It runs on the server's handler threads; the request is recorded
before it runs. ``srv.behaviour`` may be reassigned at any time (collector down, then up). Builders:

    ok(rejected=0, message="")    200 with an Export*ServiceResponse in the request's encoding, carrying
                                  partial_success when rejected > 0
    respond(status, body, headers, delay_s=, close_after=)   a fixed answer
    slow(delay_s, then=ok())      answer ``then`` after a delay (cut short when the server stops)
    hang_up()                     close the connection without answering
    flaky(n, failure=respond(503), then=ok())   n failures, then success
    sequence(b1, b2, ...)         each behaviour once in turn; the last one repeats
    cycle(b1, b2, ...)            round robin forever (a flapping collector)

``Reply`` fields beyond (status, headers, body): ``delay_s`` waits before answering; ``hang_up`` closes
without answering; ``close_after`` answers, then closes the kept-alive connection without announcing it
(``Connection: close`` is not sent), as idle-timeout proxies do.

Unreachable endpoints (both yield an :class:`Address` with ``.url`` and ``.port``)::

    with refused_port() as addr: ...    # nothing listens: connecting fails at once (ECONNREFUSED)
    with blackhole() as addr: ...       # connecting hangs: SYNs are dropped (full accept queue)
    with blackhole("response") as addr: # connecting works, but the request is never read or answered

TLS: ``make_certificates(tmp_path)`` (needs the ``openssl`` command) writes a CA, a server certificate
for 127.0.0.1 and a client certificate; ``otlp_server(tls=server_tls_context(certs))`` serves HTTPS,
``server_tls_context(certs, require_client_cert=True)`` also demands the client certificate. TLS
handshake failures are recorded in ``srv.errors`` instead of being printed.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import itertools
import json
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

HOST = "127.0.0.1"
_MAX_BODY = 64 * 2**20
_HANDLER_IDLE_S = 5.0  # a kept-alive connection left idle this long is closed by the server

_SIGNAL_MESSAGES = {
    "traces": ("trace.v1.trace_service_pb2", "ExportTraceService", "rejected_spans", "rejectedSpans"),
    "metrics": (
        "metrics.v1.metrics_service_pb2",
        "ExportMetricsService",
        "rejected_data_points",
        "rejectedDataPoints",
    ),
    "logs": ("logs.v1.logs_service_pb2", "ExportLogsService", "rejected_log_records", "rejectedLogRecords"),
}


def _message_class(signal: str, kind: str) -> Any:
    import importlib

    module, prefix, _, _ = _SIGNAL_MESSAGES[signal]
    return getattr(importlib.import_module("opentelemetry.proto.collector." + module), prefix + kind)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    raw_body: bytes
    body: bytes  # gunzipped when Content-Encoding is gzip; raw_body otherwise; b"" if the gzip was corrupt
    connection: int  # serial number of the TCP connection it arrived on, from 1

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found

    @property
    def signal(self) -> str | None:
        """traces | metrics | logs from an OTLP path ending in /v1/<signal>, else None."""
        tail = self.path.split("?")[0].rstrip("/").rsplit("/", 2)
        if len(tail) == 3 and tail[1] == "v1" and tail[2] in _SIGNAL_MESSAGES:
            return tail[2]
        return None

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    @property
    def batch_id(self) -> str | None:
        return self.header("x-otel-expansion-batch-id")

    def message(self) -> Any:
        """The body decoded as the signal's Export*ServiceRequest protobuf."""
        if self.signal is None:
            raise ValueError(f"not an OTLP path: {self.path}")
        return _message_class(self.signal, "Request").FromString(self.body)

    def json(self) -> Any:
        """The body parsed as JSON (for http/json requests)."""
        return json.loads(self.body)


class Reply(NamedTuple):
    """What the server does with one request."""

    status: int = 200
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    body: bytes = b""
    delay_s: float = 0.0
    hang_up: bool = False
    close_after: bool = False


Behaviour = Callable[[RecordedRequest], "Reply | tuple[int, Any, bytes]"]


# -- behaviours ------------------------------------------------------------------------------------------


def export_response(signal: str, *, rejected: int = 0, message: str = "", as_json: bool = False) -> bytes:
    """An encoded Export*ServiceResponse for ``signal``, with partial_success when given."""
    _, _, field, json_key = _SIGNAL_MESSAGES[signal]
    if as_json:
        doc: dict[str, Any] = {}
        if rejected or message:
            doc["partialSuccess"] = {json_key: str(rejected), "errorMessage": message}
        return json.dumps(doc).encode()
    response = _message_class(signal, "Response")()
    if rejected or message:
        setattr(response.partial_success, field, rejected)
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())


def ok(rejected: int = 0, message: str = "") -> Behaviour:
    """200 with an Export*ServiceResponse encoded like the request (protobuf or JSON)."""

    def behaviour(req: RecordedRequest) -> Reply:
        as_json = req.content_type == "application/json"
        body = export_response(req.signal or "traces", rejected=rejected, message=message, as_json=as_json)
        content_type = "application/json" if as_json else "application/x-protobuf"
        return Reply(200, {"Content-Type": content_type}, body)

    return behaviour


def respond(
    status: int = 200,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    delay_s: float = 0.0,
    close_after: bool = False,
) -> Behaviour:
    """Always the same answer."""
    reply = Reply(status, dict(headers or {}), body, delay_s=delay_s, close_after=close_after)
    return lambda req: reply


def slow(delay_s: float, then: Behaviour | None = None) -> Behaviour:
    """``then`` (default ok()) answered after ``delay_s``; the wait ends early when the server stops."""
    inner = then or ok()

    def behaviour(req: RecordedRequest) -> Reply:
        return Reply(*_as_reply(inner(req))[:3], delay_s=delay_s)

    return behaviour


def hang_up() -> Behaviour:
    """Close the connection without any answer."""
    return lambda req: Reply(hang_up=True)


def sequence(*behaviours: Behaviour) -> Behaviour:
    """Each behaviour for one request in turn; the last one answers every request after that."""
    if not behaviours:
        raise ValueError("sequence() needs at least one behaviour")
    lock = threading.Lock()
    index = itertools.count()

    def behaviour(req: RecordedRequest) -> Reply | tuple[int, Any, bytes]:
        with lock:
            i = next(index)
        return behaviours[min(i, len(behaviours) - 1)](req)

    return behaviour


def cycle(*behaviours: Behaviour) -> Behaviour:
    """The behaviours in turn, round robin, forever (e.g. cycle(respond(503), ok()) flaps)."""
    if not behaviours:
        raise ValueError("cycle() needs at least one behaviour")
    lock = threading.Lock()
    index = itertools.count()

    def behaviour(req: RecordedRequest) -> Reply | tuple[int, Any, bytes]:
        with lock:
            i = next(index)
        return behaviours[i % len(behaviours)](req)

    return behaviour


def flaky(n: int, failure: Behaviour | None = None, then: Behaviour | None = None) -> Behaviour:
    """The first ``n`` requests get ``failure`` (default 503), every later one ``then`` (default ok())."""
    return sequence(*([failure or respond(503)] * n), then or ok())


def _as_reply(value: Reply | tuple[int, Any, bytes]) -> Reply:
    if isinstance(value, Reply):
        return value
    status, headers, body = value
    return Reply(status, headers, body)


# -- the server ------------------------------------------------------------------------------------------


class OtlpServer:
    """A running collector stand-in; see the module docstring."""

    def __init__(self, behaviour: Behaviour, tls: ssl.SSLContext | None) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._arrived = threading.Condition()
        self._connections: dict[int, socket.socket] = {}
        self._serial = itertools.count(1)
        self._opened = 0
        self._httpd = _HTTPServer((HOST, 0), _Handler, self)
        self.port: int = self._httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{HOST}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"otlp-server-{self.port}",
            daemon=True,
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._arrived:
            return list(self._requests)

    @property
    def connections_opened(self) -> int:
        """How many TCP connections were accepted so far (TLS handshake failures included)."""
        with self._arrived:
            return self._opened

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[RecordedRequest]:
        """Wait until ``count`` requests arrived (AssertionError after ``timeout_s``)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout_s):
                raise AssertionError(f"expected {count} requests, got {len(self._requests)}")
            return list(self._requests)

    def _record(self, req: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(req)
            self._arrived.notify_all()

    def _open(self, sock: socket.socket) -> int:
        with self._arrived:
            serial = next(self._serial)
            self._opened = serial
            self._connections[serial] = sock
            return serial

    def _closed(self, serial: int) -> None:
        with self._arrived:
            self._connections.pop(serial, None)

    def _start(self) -> None:
        self._thread.start()

    def _stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        with self._arrived:
            open_sockets = list(self._connections.values())
        for sock in open_sockets:  # wake handlers blocked on idle kept-alive connections
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(5)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[_Handler], owner: OtlpServer) -> None:
        self.owner = owner
        super().__init__(address, handler)
        if owner.tls is not None:
            self.socket = owner.tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if error is not None:
            self.owner.errors.append(error)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _HANDLER_IDLE_S
    server: _HTTPServer

    def setup(self) -> None:
        self.serial = self.server.owner._open(self.request)
        self.request.settimeout(self.timeout)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # here, on the handler's thread, not in the accept loop
        super().setup()

    def finish(self) -> None:
        self.server.owner._closed(self.serial)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self._handle()

    do_PUT = do_GET = do_POST

    def _handle(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, _MAX_BODY))
        body = raw
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            try:
                body = gzip.decompress(raw)
            except (OSError, EOFError):
                body = b""
        req = RecordedRequest(self.command, self.path, tuple(self.headers.items()), raw, body, self.serial)
        owner._record(req)
        reply = _as_reply(owner.behaviour(req))
        if reply.delay_s > 0 and owner.stopping.wait(reply.delay_s):
            self.close_connection = True
            return
        if reply.hang_up:
            self.close_connection = True
            return
        self.send_response(reply.status)
        items = reply.headers.items() if isinstance(reply.headers, Mapping) else reply.headers
        for key, value in items:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)
        self.wfile.flush()
        if reply.close_after:
            self.close_connection = True


@contextlib.contextmanager
def otlp_server(
    behaviour: Behaviour | None = None, *, tls: ssl.SSLContext | None = None
) -> Iterator[OtlpServer]:
    """A collector stand-in on 127.0.0.1 (a free port), answering with ``behaviour`` (default ok())."""
    server = OtlpServer(behaviour or ok(), tls)
    server._start()
    try:
        yield server
    finally:
        server._stop()


# -- unreachable endpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """An endpoint with nothing useful behind it."""

    port: int
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def refused_port() -> Iterator[Address]:
    """A port where nothing listens; the bound (never listening) socket keeps it reserved meanwhile."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        yield Address(sock.getsockname()[1])


@contextlib.contextmanager
def blackhole(mode: str = "connect") -> Iterator[Address]:
    """A port that never answers.

    ``"connect"``: the listener never accepts and its accept queue is full, so the kernel drops SYNs and
    connecting hangs. ``"response"``: connecting succeeds (the kernel queues the connection) but nobody
    ever reads the request or answers.
    """
    if mode not in ("connect", "response"):
        raise ValueError("mode is 'connect' or 'response'")
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind((HOST, 0))
        port = listener.getsockname()[1]
        if mode == "response":
            listener.listen(64)
        else:
            listener.listen(0)
            for _ in range(8):  # fill the accept queue until a connect times out
                filler = stack.enter_context(socket.socket())
                filler.settimeout(0.2)
                try:
                    filler.connect((HOST, port))
                except OSError:
                    break
            else:
                raise RuntimeError("could not fill the accept queue")
        yield Address(port)


# -- TLS -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM files: a CA, a server certificate for 127.0.0.1 and a client certificate, both CA-signed."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_certificates(directory: str | os.PathLike[str]) -> Certificates:
    """Generate a throwaway CA, server and client certificates in ``directory`` with openssl."""
    d = Path(directory)
    quiet = {"check": True, "capture_output": True, "timeout": 60}

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], **quiet)  # type: ignore[call-overload]

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=otel-expansion test CA",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN=otel-expansion test {name}",
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        run(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.pem"),
        )
    return Certificates(
        str(d / "ca.pem"),
        str(d / "server.pem"),
        str(d / "server.key"),
        str(d / "client.pem"),
        str(d / "client.key"),
    )


def server_tls_context(certs: Certificates, *, require_client_cert: bool = False) -> ssl.SSLContext:
    """A server-side context for otlp_server(tls=...); optionally demanding a CA-signed client cert."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certs.ca)
    return context
