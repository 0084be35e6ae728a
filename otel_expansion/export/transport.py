"""The one module that knows HTTP: POST one encoded OTLP request and say what the sender should do next.

Runs in the background sender, never in a CLI's hot path. Every request is bounded in time: connecting
(and the TLS handshake) by ``min(timeout, 3 s)`` so a blackholed collector ends quickly, and the whole
exchange (send, headers, body) by the configured timeout and the caller's deadline, whatever the server
does. Only DNS resolution is not bounded here (the system resolver has its own timeouts).

The transport never retries on its own except once, immediately, when a kept-alive connection turned
out to be closed by the server; waiting and retrying is the sender's job, guided by :class:`SendResult`.
Proxies (``HTTPS_PROXY``) are not supported.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import gzip
import http.client
import io
import logging
import math
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from otel_expansion._version import __version__
from otel_expansion.config.otlp import HTTP_JSON, SIGNALS, OtlpConfig, SignalConfig, masked_url
from otel_expansion.otlp import messages as otlp_messages
from otel_expansion.otlp.model import BATCH_ID_HEADER

__all__ = [
    "HttpTransport",
    "MemoryTransport",
    "Outcome",
    "SendResult",
    "SentRequest",
    "Transport",
    "backoff_delay",
    "classify_status",
    "masked_url",
    "parse_retry_after",
]

logger = logging.getLogger("otel_expansion.export")

CONNECT_TIMEOUT_CAP_S = 3.0
MAX_RESPONSE_BYTES = 64 * 1024
"""Response bodies are read up to this size (an OTLP response is tiny); beyond it the connection closes."""
MAX_RETRY_AFTER_S = 86400.0

# Framing headers belong to the transport; configured headers must not break them.
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-encoding", "content-length", "transfer-encoding", "connection"}
)
_STALE_ERRORS = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class Outcome(enum.Enum):
    """What the sender should do with the batch."""

    SUCCESS = "success"  # delivered (maybe partly rejected: see SendResult.rejected); acknowledge it
    RETRY = "retry"  # transient: keep it, back off (honouring retry_after_s), send again
    DROP = "drop"  # the collector will never take it: delete it and count the loss
    TOO_LARGE = "too_large"  # 413: split the batch and send the halves
    HOLD = "hold"  # the endpoint looks misconfigured (404, 401...): keep the data, back off, say so


MISCONFIGURED = frozenset({401, 403, 404, 405, 407, 410, 421})
"""Statuses that say "wrong endpoint, path or credentials", not "bad data": a user can fix them, so the data
is held (within the spool's cap) rather than destroyed."""


@dataclass(frozen=True)
class SendResult:
    """The whole story of one request, for the sender's decision and its self-health metrics."""

    outcome: Outcome
    status: int | None = None
    retry_after_s: float | None = None
    rejected: int = 0
    error: str | None = None
    sent_bytes: int = 0
    elapsed_s: float = 0.0


def classify_status(status: int) -> Outcome:
    """HTTP status to outcome: 2xx success; 408, 429 and 5xx but 501 retry; 413 too large; a misconfigured
    endpoint (404, 401, 403...) holds; others drop."""
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if status == 413:
        return Outcome.TOO_LARGE
    if status in (408, 429) or (500 <= status < 600 and status != 501):
        return Outcome.RETRY
    if status in MISCONFIGURED:
        return Outcome.HOLD
    return Outcome.DROP


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), capped at one day.

    A date in the past means 0; anything unparseable means None. ``now`` is wall-clock epoch seconds.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text) if text[0].isdigit() else None
    except ValueError:
        return None
    if seconds is None:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000" or no zone: HTTP-dates are always GMT
            import datetime

            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff_delay(
    attempt: int, base_s: float = 1.0, cap_s: float = 300.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap_s, base_s * 2**attempt)]``.

    Full jitter spreads many clients that failed together (a collector restart) instead of syncing them.
    """
    attempt = max(0, attempt)
    ceiling = cap_s if attempt >= 64 else min(cap_s, base_s * 2.0**attempt)
    ceiling = max(0.0, ceiling)
    return (rng or random).uniform(0.0, ceiling)


class Transport(Protocol):
    """What the sender needs of a transport: POST one encoded request, classify the answer, never raise."""

    def send(self, signal: str, body: bytes, batch_id: str, deadline_s: float | None = None) -> SendResult:
        """Deliver ``body`` (an encoded Export*ServiceRequest) for ``signal``; say what happened."""
        ...

    def close(self) -> None:
        """Release connections; the transport stays usable."""
        ...


@dataclass(frozen=True)
class SentRequest:
    """One request as a :class:`MemoryTransport` saw it."""

    signal: str
    body: bytes
    batch_id: str


Responder = Callable[[SentRequest], SendResult]


class MemoryTransport:
    """An in-memory :class:`Transport` for fast tests of the sender's decisions (413 splits, Retry-After,
    partial success, persisted backoff): records every request and answers from a script.

    ``script`` holds one answer per request, in order (a :class:`SendResult`, or a callable taking the
    :class:`SentRequest`); once it runs out, ``default`` answers. ``accepted`` lists the requests a receiver
    would have stored: every SUCCESS, plus those answered by a result marked in ``ambiguous`` (the receiver
    stored them but the reply was lost, as with a connection reset after the body arrived).
    """

    def __init__(self, *script: SendResult | Responder, default: SendResult | Responder | None = None) -> None:
        self.script: list[SendResult | Responder] = list(script)
        self.default: SendResult | Responder = default or SendResult(Outcome.SUCCESS, status=200)
        self.requests: list[SentRequest] = []
        self.accepted: list[SentRequest] = []
        self.ambiguous: set[int] = set()  # ids of SendResult objects that mean "stored, reply lost"
        self.closed = 0

    def send(self, signal: str, body: bytes, batch_id: str, deadline_s: float | None = None) -> SendResult:
        delivery = SentRequest(signal, bytes(body), batch_id)
        self.requests.append(delivery)
        answer = self.script.pop(0) if self.script else self.default
        result = answer(delivery) if callable(answer) else answer
        if result.outcome is Outcome.SUCCESS or id(result) in self.ambiguous:
            self.accepted.append(delivery)
        if not result.sent_bytes:
            result = SendResult(result.outcome, result.status, result.retry_after_s, result.rejected,
                                result.error, len(body), result.elapsed_s)
        return result

    def reset_after_storing(self) -> SendResult:
        """An answer meaning: the receiver stored the request, then the connection was reset."""
        result = SendResult(Outcome.RETRY, error="send: ConnectionResetError: reset after the body arrived")
        self.ambiguous.add(id(result))
        return result

    def close(self) -> None:
        self.closed += 1


class _HasDeadline(Protocol):
    deadline: float


class _DeadlineReader(io.RawIOBase):
    """Socket reads that each get only the time left before the request's deadline.

    Without this a server trickling one byte per timeout could hold the response open indefinitely.
    """

    def __init__(self, sock: Any, conn: _HasDeadline) -> None:
        super().__init__()
        self._sock = sock
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._conn.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline reached while reading the response")
        self._sock.settimeout(remaining)
        return int(self._sock.recv_into(buffer))


class _SocketView:
    """What HTTPResponse needs of a socket (``makefile``), answering with a deadline-bounded reader."""

    def __init__(self, sock: Any, conn: _HasDeadline) -> None:
        self._sock = sock
        self._conn = conn

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._conn))


class _Response(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, conn: _HasDeadline, **kwargs: Any) -> None:
        super().__init__(_SocketView(sock, conn), *args, **kwargs)  # type: ignore[arg-type]


class _HTTPConnection(http.client.HTTPConnection):
    """A connection whose responses are read against ``deadline`` (a time.monotonic() instant)."""

    deadline: float = math.inf

    def __init__(self, host: str, port: int | None) -> None:
        super().__init__(host, port)
        self.response_class = functools.partial(_Response, conn=self)  # type: ignore[assignment]


class _HTTPSConnection(http.client.HTTPSConnection):
    deadline: float = math.inf

    def __init__(self, host: str, port: int | None, context: ssl.SSLContext) -> None:
        super().__init__(host, port, context=context)
        self.response_class = functools.partial(_Response, conn=self)  # type: ignore[assignment]


_Connection = _HTTPConnection | _HTTPSConnection


class _Failure(Exception):
    """A request that ended without an HTTP status; carries the phase it failed in."""

    def __init__(self, phase: str, exc: BaseException, sent_bytes: int) -> None:
        super().__init__(f"{phase}: {type(exc).__name__}: {exc}")
        self.exc = exc
        self.sent_bytes = sent_bytes


class HttpTransport:
    """POSTs encoded OTLP requests over one persistent connection per host; never raises.

    Thread-safe: one request at a time. ``close()`` never waits: called from another thread it cuts an
    in-flight request short (handy when the sender must stop now). Usable again after ``close()``: the
    next ``send()`` reconnects.
    """

    connect_timeout_cap_s: float = CONNECT_TIMEOUT_CAP_S

    def __init__(self, config: OtlpConfig, user_agent: str = f"otel-expansion/{__version__}") -> None:
        self.config = config
        self.user_agent = user_agent
        self._connections: dict[tuple[Any, ...], _Connection] = {}
        self._contexts: dict[tuple[str | None, ...], ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._closes = 0  # close() calls so far: a request cut short by close() is not retried

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, signal: str, body: bytes, batch_id: str, deadline_s: float | None = None) -> SendResult:
        """POST ``body`` (an encoded Export*ServiceRequest) for ``signal``; classify what happened.

        ``deadline_s`` is the time left, in seconds from now, that the request may take at most (the
        sender's remaining lifetime); the configured timeout applies too. Zero or less: no request.
        """
        start = time.monotonic()
        try:
            with self._lock:
                return self._send(signal, body, batch_id, deadline_s, start)
        except Exception as exc:  # a bug or a bad configuration must not kill the sender; keep the data
            logger.warning("otel-expansion: could not send %s: %s: %s", signal, type(exc).__name__, exc)
            logger.debug("details", exc_info=True)
            return SendResult(
                Outcome.RETRY, error=f"internal error: {exc!r}", elapsed_s=time.monotonic() - start
            )

    def close(self) -> None:
        """Close every connection; from another thread this also aborts an in-flight request (-> RETRY)."""
        self._closes += 1
        connections, self._connections = self._connections, {}
        for conn in connections.values():
            with contextlib.suppress(Exception):
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on this socket
            with contextlib.suppress(Exception):
                conn.close()

    # -- internals ---------------------------------------------------------------------------------------

    def _send(
        self, signal: str, body: bytes, batch_id: str, deadline_s: float | None, start: float
    ) -> SendResult:
        def result(outcome: Outcome, **kw: Any) -> SendResult:
            return SendResult(outcome, elapsed_s=time.monotonic() - start, **kw)

        if signal not in SIGNALS:
            return result(Outcome.DROP, error=f"unknown signal {signal!r}")
        sc = self.config.for_signal(signal)
        deadline = start + sc.timeout_s
        if deadline_s is not None:
            deadline = min(deadline, start + deadline_s)
        if deadline <= start:
            return result(Outcome.RETRY, error="deadline passed before sending")
        try:
            parts = urlsplit(sc.url)
            scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
            if scheme not in ("http", "https") or not host:
                raise ValueError("not an http(s) URL with a host")
        except ValueError as exc:  # configuration, not data: keep the batch until it is fixed
            return result(Outcome.RETRY, error=f"bad URL {masked_url(sc.url)!r}: {exc}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        closes = self._closes
        payload = gzip.compress(body, compresslevel=9, mtime=0) if sc.compression == "gzip" else body
        headers = self._headers(sc, batch_id)

        try:
            key, conn, reused = self._connection(sc, scheme, host, port)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: unreadable cert/key files
            logger.warning("otel-expansion: cannot set up TLS for %s: %s", masked_url(sc.url), exc)
            return result(Outcome.RETRY, error=f"tls setup: {type(exc).__name__}: {exc}")

        try:
            status, reply_headers, reply = self._exchange(conn, path, payload, headers, deadline)
        except _Failure as failure:
            self._drop(key)
            stale = reused and isinstance(failure.exc, _STALE_ERRORS) and self._closes == closes
            if not (stale and time.monotonic() < deadline):
                logger.debug("otel-expansion: %s export failed: %s", signal, failure)
                return result(Outcome.RETRY, error=str(failure), sent_bytes=failure.sent_bytes)
            # The server closed the idle kept-alive connection: one immediate retry on a fresh one.
            key, conn, _ = self._connection(sc, scheme, host, port)
            try:
                status, reply_headers, reply = self._exchange(conn, path, payload, headers, deadline)
            except _Failure as again:
                self._drop(key)
                logger.debug("otel-expansion: %s export failed: %s", signal, again)
                sent = failure.sent_bytes + again.sent_bytes
                return result(Outcome.RETRY, error=str(again), sent_bytes=sent)
            payload_sent = failure.sent_bytes + len(payload)
        else:
            payload_sent = len(payload)

        outcome = classify_status(status)
        content_type = reply_headers.get("content-type", "")
        if outcome is Outcome.SUCCESS:
            rejected, message = _partial_success(signal, sc, content_type, reply)
            return result(outcome, status=status, rejected=rejected, error=message, sent_bytes=payload_sent)
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(reply_headers.get("retry-after"))
        detail = _error_detail(content_type, reply)
        error = f"HTTP {status}" + (f": {detail}" if detail else "")
        if outcome is Outcome.HOLD:
            error += (f" from {masked_url(sc.url)}: check the endpoint (path, credentials); the data is kept and "
                      "sent once it is fixed")
        logger.debug("otel-expansion: %s export got %s", signal, error)
        return result(outcome, status=status, retry_after_s=retry_after, error=error, sent_bytes=payload_sent)

    def _headers(self, sc: SignalConfig, batch_id: str) -> dict[str, str]:
        headers = {k: v for k, v in sc.headers if k.lower() not in _RESERVED_HEADERS}
        if not any(k.lower() == "user-agent" for k in headers):
            headers["User-Agent"] = self.user_agent
        headers["Content-Type"] = "application/json" if sc.protocol == HTTP_JSON else "application/x-protobuf"
        if sc.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        # Printable ASCII only, so a malformed id can never make every retry of the batch fail.
        headers[BATCH_ID_HEADER] = "".join(c for c in batch_id if "!" <= c <= "~")[:200]
        return headers

    def _connection(
        self, sc: SignalConfig, scheme: str, host: str, port: int | None
    ) -> tuple[tuple[Any, ...], _Connection, bool]:
        files = (sc.certificate_file, sc.client_certificate_file, sc.client_key_file)
        key = (scheme, host, port, files if scheme == "https" else None)
        conn = self._connections.get(key)
        if conn is not None:
            return key, conn, conn.sock is not None
        if scheme == "https":
            context = self._contexts.get(files)
            if context is None:
                context = ssl.create_default_context(cafile=sc.certificate_file)
                if sc.client_certificate_file:
                    context.load_cert_chain(sc.client_certificate_file, sc.client_key_file)
                self._contexts[files] = context
            conn = _HTTPSConnection(host, port, context)
        else:
            conn = _HTTPConnection(host, port)
        self._connections[key] = conn
        return key, conn, False

    def _drop(self, key: tuple[Any, ...]) -> None:
        conn = self._connections.pop(key, None)
        if conn is not None:
            conn.close()

    def _exchange(
        self, conn: _Connection, path: str, payload: bytes, headers: dict[str, str], deadline: float
    ) -> tuple[int, dict[str, str], bytes]:
        """One request/response on ``conn`` within ``deadline``; raises _Failure when no status came."""
        conn.deadline = deadline
        sent = 0
        phase = "connect"
        try:
            if conn.sock is None:
                conn.timeout = max(0.001, min(self.connect_timeout_cap_s, deadline - time.monotonic()))
                conn.connect()
            phase = "send"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline reached before sending")
            conn.sock.settimeout(remaining)  # sendall: a bound on the whole send
            conn.request("POST", path, body=payload, headers=headers)
            sent = len(payload)
            phase = "response"
            response = conn.getresponse()
            reply = response.read(MAX_RESPONSE_BYTES + 1)
            status = response.status
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: IDNA, bad host name
            conn.close()
            raise _Failure(phase, exc, sent) from exc
        if not response.isclosed():  # body too large to keep reading: give the connection up
            conn.close()
        return status, reply_headers, reply[:MAX_RESPONSE_BYTES]


def _partial_success(signal: str, sc: SignalConfig, content_type: str, body: bytes) -> tuple[int, str | None]:
    """(rejected items, server message) from an Export*ServiceResponse; (0, None) if unreadable."""
    if not body:
        return 0, None
    field, json_key = otlp_messages.rejected_field(signal)
    is_json = "json" in content_type if content_type else sc.protocol == HTTP_JSON
    try:
        if is_json:
            import json

            doc = json.loads(body)
            partial = doc.get("partialSuccess", doc.get("partial_success")) or {}
            rejected = partial.get(json_key, partial.get(field, 0))
            message = partial.get("errorMessage", partial.get("error_message")) or None
            return max(0, int(rejected or 0)), (str(message) if message else None)
        response = otlp_messages.response_class(signal).FromString(body)
        partial = response.partial_success
        return max(0, int(getattr(partial, field))), (partial.error_message or None)
    except Exception:  # an undecodable body does not undo a 2xx
        return 0, None


def _error_detail(content_type: str, body: bytes) -> str | None:
    """The server's explanation of a failure (google.rpc.Status message, JSON message or text), short."""
    if not body:
        return None
    text: str | None = None
    try:
        if "protobuf" in content_type:
            text = _status_message(body)
        elif "json" in content_type:
            import json

            doc = json.loads(body)
            text = str(doc.get("message") or "") if isinstance(doc, dict) else None
        elif content_type.startswith("text/") or not content_type:
            text = body.decode("utf-8", "replace")
    except Exception:
        text = None
    if not text:
        return None
    text = " ".join(text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _status_message(body: bytes) -> str | None:
    """The ``message`` of a google.rpc.Status body (the OTLP/HTTP error format)."""
    from google.rpc import status_pb2  # type: ignore[import-untyped]

    return str(status_pb2.Status.FromString(body).message) or None
