"""The embedded backend's HTTP face: an OTLP/HTTP receiver plus the report API and dashboard.

Stdlib ``http.server`` on purpose: no framework to install, one thread per connection. Request threads
hand each body to a pool of decoding worker processes (decoding.py: decompress, parse, flatten, roll up
ahead, in parallel outside this process's GIL) and the rows they return to one writer thread
(:class:`_Writer`), which commits whatever has queued up in one transaction (group commit, each request in
its own savepoint) and only then lets each request answer 200: no transaction per request fighting over
SQLite's single write lock, and WAL lets the report's readers overlap the writer. When more than
``MAX_PENDING_ROWS`` wait for the writer, new requests get 429 + Retry-After; after a commit that left the
WAL past ``WAL_LIMIT_BYTES`` the writer checkpoints and truncates it. SIGTERM/SIGINT stop the server
cleanly, its worker processes with it, each step within a bound (``STOP_BOUND_S`` for the whole). Every handler answers
something: errors the client caused get 4xx with a google.rpc.Status body (as OTLP/HTTP requires),
anything else 500 with a short message; a busy database gets 503 + Retry-After, which OTLP exporters
retry. There is no authentication, so the default bind address is loopback, and the Host header must
name the bound address (or ``localhost`` on loopback, or a name given with ``allowed_hosts``): a page
on another site that rebinds its DNS name to 127.0.0.1 cannot read the report. A body that stops short
of its Content-Length gets 400 after ``BODY_TIMEOUT_S`` of silence instead of holding a thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from otel_expansion.backend.decoding import GC_THRESHOLDS, DecodePool, PoolBroken, default_workers
from otel_expansion.backend.ingest import (
    JSON,
    MAX_BODY_BYTES,
    PROTOBUF,
    PayloadError,
    encode_response,
    encode_status,
    media_type,
)
from otel_expansion.backend.limits import Limits
from otel_expansion.backend.paths import default_db_path, prepare_db_path
from otel_expansion.backend.query import Engine, Filter, SQLiteEngine
from otel_expansion.backend.report import _day_iso, report_from
from otel_expansion.backend.rollup import DAY_NS
from otel_expansion.backend.store import DEFAULT_RETENTION_DAYS, Request, Store, WriteResult, connect, open_readonly
from otel_expansion.otlp.model import BATCH_ID_HEADER

__all__ = [
    "BODY_TIMEOUT_S", "MAX_PENDING_ROWS", "STOP_BOUND_S", "WAL_LIMIT_BYTES", "WRITER_STOP_TIMEOUT_S", "QueryError",
    "default_db_path", "filter_echo",
    "parse_distribution", "parse_filter", "serve",
]

BODY_TIMEOUT_S = 2.0
"""Longest silence while reading a request body before answering 400."""
_QUERY_KEYS = frozenset({"service", "version", "since", "until", "since_ns", "until_ns", "days"})
_MAX_NS = 2**63 - 1

logger = logging.getLogger("otel_expansion.backend.server")

_SIGNAL_PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
_RPC_CODE = {400: 3, 404: 5, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}  # google.rpc.Code for each HTTP status
_MAX_BATCH_ID = 256
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self';"
    " img-src data:; base-uri 'none'; form-action 'none'"
)


class QueryError(ValueError):
    """A report query parameter that cannot be used (answered with 400)."""


def _allowed_hosts(host: str, extra: tuple[str, ...]) -> frozenset[str] | None:
    """Host header names accepted for a bind address; None means any IP literal (wildcard bind)."""
    names = {h.lower().strip("[]") for h in extra}
    bare = host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return frozenset({bare, *names})
    if address.is_unspecified:
        return None
    names.add(str(address))
    if address.is_loopback:
        names.update({"localhost", "127.0.0.1", "::1"})
    return frozenset(names)


WAL_LIMIT_BYTES = 64 * 2**20
"""Past this, the writer checkpoints and truncates the WAL after its commit: SQLite's automatic checkpoints
never restart the file while writers and readers keep it busy, so under steady ingest it would grow without
bound. The WAL then stays under this plus one group's pages and the span keys merged after it (store.MERGE_SPANS
keys' pages at most)."""
WRITER_STOP_TIMEOUT_S = 15.0
"""How long the stop waits for the writer to commit what is queued (at most MAX_PENDING_ROWS rows, a second or
two; SQLite's busy timeout is 10 s)."""
STOP_BOUND_S = 30.0
"""When serving owns the process: the most a stop may take, from SIGTERM to the process's exit, before the
process logs every thread's stack and exits anyway (see _bound_stop)."""
MAX_PENDING_ROWS = 50_000
"""Rows accepted but not yet committed past which new requests get 429 + Retry-After (the writer is behind;
about a second of the 50k rows/s budget, so memory held for waiting requests stays bounded too)."""


class Behind(Exception):
    """The writer has more than its bound of rows waiting: answered with 429 and Retry-After."""


class _Pending:
    """One request waiting for the writer: set ``outcome`` then ``done``."""

    __slots__ = ("done", "outcome", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.outcome: WriteResult | BaseException | None = None
        self.done = threading.Event()


class _Writer:
    """The one thread that writes: group commit of every request queued while the last group committed.

    Why: with a transaction per request, N request threads contend for SQLite's single write lock (busy
    waits and sleeps; more senders were slower). Here request threads only decode; this thread takes all
    queued requests (up to ``MAX_GROUP``) into one transaction, each in its own savepoint so a failing
    request is rolled back alone, and wakes each request after the COMMIT: a 200 still means stored.
    """

    MAX_GROUP = 64

    def __init__(
        self, db_path: Path, limits: Limits, retention_days: float, *, wal_limit_bytes: int = WAL_LIMIT_BYTES,
        max_pending_rows: int = MAX_PENDING_ROWS,
    ) -> None:
        self._db_path, self._limits, self._retention_days = db_path, limits, retention_days
        self._wal = Path(str(db_path) + "-wal")
        self._wal_limit = wal_limit_bytes
        self._max_pending = max_pending_rows
        self._pending_rows = 0
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.wal_checkpoints = 0
        self._thread = threading.Thread(target=self._run, name="otel-expansion-backend-writer", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> WriteResult:
        """Store one request (raising what storing it raised) once its group has committed.

        Raises Behind, storing nothing, when more than ``max_pending_rows`` rows already wait (a request
        arriving at an idle writer is always taken, however large).
        """
        rows = sum(r.rows() for r in request[1])
        pending = _Pending(request)
        with self._lock:
            if self._closed:
                raise sqlite3.OperationalError("database busy: the backend is stopping")
            if self._pending_rows and self._pending_rows + rows > self._max_pending:
                raise Behind(f"{self._pending_rows} rows wait for the writer")
            self._pending_rows += rows
            self._queue.put(pending)
        try:
            pending.done.wait()
        finally:
            with self._lock:
                self._pending_rows -= rows
        if isinstance(pending.outcome, BaseException):
            raise pending.outcome
        assert pending.outcome is not None
        return pending.outcome

    def close(self, timeout_s: float = WRITER_STOP_TIMEOUT_S) -> None:
        """Finish what is queued, then stop the thread; after ``timeout_s`` stop waiting, saying so in the log
        (the thread is a daemon: it never holds the process's exit; what it had not committed was not answered
        200, and SQLite rolls an unfinished transaction back)."""
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("the writer did not finish within %.1f s of the stop; leaving it", timeout_s)

    def _run(self) -> None:
        store: Store | None = None
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                while len(group) < self.MAX_GROUP:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    group.append(more)
                outcomes: list[WriteResult | Exception] | list[BaseException]
                try:
                    if store is None:
                        store = Store(self._db_path, self._limits, self._retention_days)
                    outcomes = store.write_group([p.request for p in group], upkeep=False)
                except BaseException as exc:  # handed to every waiting request to answer
                    outcomes = [exc] * len(group)
                for pending, outcome in zip(group, outcomes, strict=True):
                    pending.outcome = outcome
                    pending.done.set()
                if store is not None:
                    self._bound_wal(store)
                    self._upkeep(store)
        finally:
            if store is not None:
                store.close()

    def _upkeep(self, store: Store) -> None:
        """Merging and pruning after the senders are answered, the WAL bounded after each (a failure is logged
        and the work retried after the next group: what was answered is committed either way)."""
        try:
            store.upkeep(lambda: self._bound_wal(store))
        except sqlite3.Error as exc:
            logger.warning("backend upkeep failed (retried after the next group): %s", exc)

    def _bound_wal(self, store: Store) -> None:
        """After a commit: past the limit, checkpoint the whole WAL and truncate it (between groups, so it
        never races this writer; a reader mid-query only delays it, up to the busy timeout)."""
        try:
            if self._wal.stat().st_size <= self._wal_limit:
                return
            store.checkpoint()
            self.wal_checkpoints += 1
        except (OSError, sqlite3.Error) as exc:  # retried after the next group
            logger.debug("WAL checkpoint skipped: %s", exc)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # a request thread may start a decoding worker (a replacement): the worker inherits this mask, and its
        # initializer ignores both signals before it lets them in (decoding._watch_parent)
        block_stop_signals()
        super().process_request_thread(request, client_address)

    def __init__(
        self,
        address: tuple[str, int],
        db_path: Path,
        dashboard: bytes,
        *,
        limits: Limits,
        retention_days: float,
        allowed_hosts: tuple[str, ...],
        engine: Callable[[], Engine] | None,
        workers: int,
        wal_limit_bytes: int,
        max_pending_rows: int,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.db_path = db_path
        self.dashboard = dashboard
        self.limits = limits
        self.retention_days = retention_days
        self.hosts = _allowed_hosts(address[0], allowed_hosts)
        self.extra_hosts = frozenset(h.lower() for h in allowed_hosts) | {socket.gethostname().lower()}
        self.engine = engine or (lambda: SQLiteEngine(open_readonly(db_path)))
        super().__init__(address, _Handler)
        self.pool = DecodePool(workers, limits)
        self.writer = _Writer(db_path, limits, retention_days, wal_limit_bytes=wal_limit_bytes,
                              max_pending_rows=max_pending_rows)

    def server_close(self) -> None:
        """Stop listening, then the decoding workers and the writer, each within its bound (DecodePool.close,
        _Writer.close): nothing here waits without a timeout."""
        try:
            super().server_close()
        finally:
            try:
                self.pool.close()
            finally:
                self.writer.close()

    def host_allowed(self, header: str | None) -> bool:
        if not header:
            return False
        name = header.strip().lower()
        if name.startswith("["):
            name = name[1 : name.find("]")] if "]" in name else name
        elif name.count(":") == 1:
            name = name.rsplit(":", 1)[0]
        if self.hosts is not None:
            return name in self.hosts
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name in self.extra_hosts or name == "localhost"
        return True

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
            if not self.server.host_allowed(self.headers.get("Host")):
                self.close_connection = True
                self._send(403, b"unexpected Host header\n", "text/plain")
                return
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
        self.connection.settimeout(BODY_TIMEOUT_S)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            body = b""
        finally:
            self.connection.settimeout(self.timeout)
        if len(body) != length:
            self.close_connection = True
            raise PayloadError(400, "body shorter than Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        self.connection.settimeout(BODY_TIMEOUT_S)
        try:
            return self._read_chunks()
        except TimeoutError:
            self.close_connection = True
            raise PayloadError(400, "truncated chunked body") from None
        finally:
            self.connection.settimeout(self.timeout)

    def _read_chunks(self) -> bytes:
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
            body = self._read_body()
            batch_id = (self.headers.get(BATCH_ID_HEADER) or "").strip() or None
            if batch_id is not None and len(batch_id) > _MAX_BATCH_ID:
                logger.warning("ignoring a %d-character batch id header", len(batch_id))
                batch_id = None
            resources = self.server.pool.prepare(
                signal, body, self.headers.get("Content-Encoding"), encoding, batch_id is not None
            )
            result = self.server.writer.submit((signal, resources, batch_id))
        except PayloadError as exc:
            logger.info("refused %s request: %s %s", signal, exc.status, exc.message)
            self._status(exc.status, exc.message, encoding)
            return
        except OverflowError:  # e.g. a timestamp above SQLite's signed 64-bit range
            self._status(400, "a value is out of the storable range", encoding)
            return
        except Behind as exc:
            logger.info("writer behind, asking the client to retry: %s", exc)
            self._status(429, "ingest behind, retry later", encoding, {"Retry-After": "1"})
            return
        except PoolBroken as exc:
            logger.warning("%s; asking the client to retry", exc)
            self._status(503, "decoder restarting, retry later", encoding, {"Retry-After": "1"})
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
            try:
                query_filter = parse_filter(parse_qs(url.query, keep_blank_values=True), time.time_ns())
            except QueryError as exc:
                body = json.dumps({"error": str(exc)}).encode()
                self._send(400, body, "application/json", {"Cache-Control": "no-store"})
                return
            engine = self.server.engine()
            try:
                report = report_from(engine, query_filter)
            finally:
                engine.close()
            body = json.dumps(report, allow_nan=False, separators=(",", ":")).encode()
            self._send(200, body, "application/json", {"Cache-Control": "no-store"})
        elif url.path == "/api/distribution":
            self._distribution(url.query)
        elif url.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif url.path in _SIGNAL_PATHS:
            self._send(405, b"use POST\n", "text/plain", {"Allow": "POST"})
        else:
            self._send(404, b"not found\n", "text/plain")


    def _distribution(self, query: str) -> None:
        """GET /api/distribution: the bars behind one figure's percentiles under the report's filter."""
        from otel_expansion.backend.distribution import distribution

        try:
            query_filter, what, command, bars = parse_distribution(parse_qs(query, keep_blank_values=True),
                                                                   time.time_ns())
        except QueryError as exc:
            body = json.dumps({"error": str(exc)}).encode()
            self._send(400, body, "application/json", {"Cache-Control": "no-store"})
            return
        engine = self.server.engine()
        try:
            result = distribution(engine, query_filter, what, command, bars)
        finally:
            engine.close()
        result["filter"] = filter_echo(query_filter)
        body = json.dumps(result, allow_nan=False, separators=(",", ":")).encode()
        self._send(200, body, "application/json", {"Cache-Control": "no-store"})


def filter_echo(f: Filter) -> dict[str, str | None]:
    """The filter as the report echoes it (UTC days as ISO dates)."""
    return {"service": f.service, "version": f.version,
            "since": None if f.since_day is None else _day_iso(f.since_day),
            "until": None if f.until_day is None else _day_iso(f.until_day)}


_DISTRIBUTION_KEYS = frozenset({"what", "command", "bars"})


def parse_distribution(query: dict[str, list[str]], now_ns: int) -> tuple[Filter, str, str | None, int]:
    """A distribution request: the report's filter parameters plus ``what``, ``command`` and ``bars``."""
    from otel_expansion.backend.distribution import DEFAULT_BARS, FIGURES, MAX_BARS

    own = {k: v for k, v in query.items() if k in _DISTRIBUTION_KEYS}
    if any(len(values) > 1 for values in own.values()):
        raise QueryError("each parameter may be given once")
    what = own.get("what", ["command"])[0] or "command"
    if what not in FIGURES:
        raise QueryError(f"what: one of {', '.join(FIGURES)}")
    command = own["command"][0] if "command" in own else None
    if command is not None and len(command) > 1024:
        raise QueryError("command: too long")
    if command is not None and what != "command":
        raise QueryError("command: only with what=command")
    try:
        bars = int(own.get("bars", [str(DEFAULT_BARS)])[0])
    except ValueError:
        raise QueryError("bars: not an integer") from None
    if not 1 <= bars <= MAX_BARS:
        raise QueryError(f"bars: must be between 1 and {MAX_BARS}")
    rest = {k: v for k, v in query.items() if k not in _DISTRIBUTION_KEYS}
    return parse_filter(rest, now_ns), what, command, bars


def _instant(name: str, text: str) -> int:
    """Nanoseconds from an integer, an ISO date (UTC day start) or an ISO date-time."""
    text = text.strip()
    try:
        if text.lstrip("-").isdigit():
            value = int(text)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            value = int(moment.timestamp()) * 10**9 + moment.microsecond * 1000
    except (ValueError, OverflowError):
        raise QueryError(f"{name}: not a date, date-time or nanosecond count: {text[:40]!r}") from None
    if not 0 <= value <= _MAX_NS:
        raise QueryError(f"{name}: out of range")
    return value


def parse_filter(query: dict[str, list[str]], now_ns: int) -> Filter:
    """The report filter from query parameters; anything unusable raises QueryError (a 400)."""
    unknown = sorted(set(query) - _QUERY_KEYS)
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0][:40]!r}")
    if any(len(values) > 1 for values in query.values()):
        raise QueryError("each parameter may be given once")
    one = {key: values[0] for key, values in query.items()}
    for key in ("service", "version"):
        if len(one.get(key, "")) > 1024:
            raise QueryError(f"{key}: too long")
    since = until = None
    if one.get("since") or one.get("since_ns"):
        since = _instant("since", one.get("since") or one["since_ns"])
    if one.get("until") or one.get("until_ns"):
        until = _instant("until", one.get("until") or one["until_ns"])
    if one.get("days"):
        try:
            days = float(one["days"])
        except ValueError:
            raise QueryError("days: not a number") from None
        if not 0 < days <= 36600:
            raise QueryError("days: must be between 1 and 36600")
        # N UTC days: today and the N - 1 before it (a fraction counts as a whole day)
        since = max(0, (now_ns // DAY_NS - math.ceil(days) + 1) * DAY_NS)
    if since is not None and until is not None and since > until:
        raise QueryError("since is after until")
    return Filter.from_ns(one.get("service"), one.get("version"), since, until)


def serve(
    host: str = "127.0.0.1",
    port: int = 4318,
    db_path: Path | None = None,
    *,
    ready: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    limits: Limits | None = None,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    allowed_hosts: tuple[str, ...] = (),
    engine: Callable[[], Engine] | None = None,
    workers: int | None = None,
    wal_limit_bytes: int = WAL_LIMIT_BYTES,
    max_pending_rows: int = MAX_PENDING_ROWS,
) -> None:
    """Run the receiver and dashboard until ``stop`` is set, or SIGTERM/SIGINT when serving from the main
    thread (or forever); ``ready`` gets the bound port.

    ``engine`` makes the dashboard and /api/report read elsewhere (ClickHouse) instead of ``db_path``.
    ``workers`` decoding processes (default: one per core beyond the writer's; 0 decodes in the request
    threads). Shutdown stops them before returning.
    """
    db_path = prepare_db_path(Path(db_path) if db_path is not None else default_db_path())
    stop = stop or threading.Event()
    owns_process = threading.current_thread() is threading.main_thread()
    serving: list[_Server] = []  # the server once built: a second signal stops its workers before exiting
    # the handlers go in before anything starts (a SIGTERM while the workers start is a stop, not a death that
    # leaves them behind) and stay until the end (a second one during the stop ends the process at once)
    signals = _StopSignals(lambda: [pid for server in serving for pid in server.pool.pids()])
    try:
        _serve(host, port, db_path, ready, stop, owns_process, serving, signals.received,
               limits=limits or Limits(), retention_days=retention_days, allowed_hosts=allowed_hosts,
               engine=engine, workers=default_workers() if workers is None else workers,
               wal_limit_bytes=wal_limit_bytes, max_pending_rows=max_pending_rows)
    finally:
        signals.restore()


def _serve(
    host: str, port: int, db_path: Path, ready: Callable[[int], None] | None, stop: threading.Event,
    owns_process: bool, serving: list[_Server], signalled: list[int], *, limits: Limits, retention_days: float,
    allowed_hosts: tuple[str, ...], engine: Callable[[], Engine] | None, workers: int, wal_limit_bytes: int,
    max_pending_rows: int,
) -> None:
    # Create the schema now (an unwritable path fails here, not on first export), and keep this connection
    # open while serving: the last connection to close checkpoints the whole WAL, which must not be every
    # request's cost.
    keeper = connect(db_path)
    if workers > 0:  # multiprocessing's resource tracker, started on first use (the pool's first semaphore),
        from multiprocessing import resource_tracker  # unblocks both signals in the thread that starts it,

        resource_tracker.ensure_running()  # whatever that thread's mask was: started before they are blocked
    unblock = block_stop_signals()  # the workers start with them blocked (a Ctrl-C to the group while they
    # import printed their tracebacks); one that arrives meanwhile waits, and is a stop once let in below
    try:
        server = _Server(
            (host, port),
            db_path,
            Path(__file__).with_name("dashboard.html").read_bytes(),
            limits=limits,
            retention_days=retention_days,
            allowed_hosts=allowed_hosts,
            engine=engine,
            workers=workers,
            wal_limit_bytes=wal_limit_bytes,
            max_pending_rows=max_pending_rows,
        )
    except BaseException:
        keeper.close()
        unblock()
        if signalled:  # a stop asked for while starting (a worker died of its Ctrl-C)
            logger.info("stopped while starting")
            return
        raise
    unblock()
    serving.append(server)
    restore_gc = _fewer_collections()
    try:

        def stopper() -> None:
            # the signal handler only notes the signal (see _StopSignals): the stop starts here, in a thread
            while not stop.wait(0.1) and not signalled:
                pass
            stop.set()
            if owns_process:
                _bound_stop(STOP_BOUND_S)
            server.shutdown()

        threading.Thread(target=stopper, name="otel-expansion-backend-stop", daemon=True).start()
        logger.info("listening on %s:%d, storing into %s", host, server.server_address[1], db_path)
        if ready is not None:
            ready(int(server.server_address[1]))
        server.serve_forever(poll_interval=0.1)
    finally:
        restore_gc()
        server.server_close()
        keeper.close()


def _bound_stop(bound_s: float) -> None:
    """Once a stop is asked for in a process that serving owns: if the process has not exited ``bound_s`` later
    (a stop step stuck, an exit hook joining something that never ends), log it with every thread's stack and
    exit with status 70 (EX_SOFTWARE). A daemon thread: a stop that finishes in time ends the process, and the
    thread with it.

    Why: a stopped server that never exits keeps its port, its database and every pipe it was started with
    (a shell's or a test's stdout) open; the stop steps have bounds of their own, this is the one for the
    whole."""
    import faulthandler
    import os
    import sys

    def watch() -> None:
        time.sleep(bound_s)
        logger.error("stop did not finish within %.0f s; exiting anyway. Threads:", bound_s)
        with contextlib.suppress(Exception):
            faulthandler.dump_traceback(sys.stderr, all_threads=True)
        with contextlib.suppress(Exception):
            logging.shutdown()
        os._exit(70)

    threading.Thread(target=watch, name="otel-expansion-backend-stop-bound", daemon=True).start()


def _fewer_collections() -> Callable[[], None]:
    """Raise the GC thresholds when serving owns the process (the main thread), else nothing; returns what
    restores the previous ones."""
    import gc

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return lambda: gc.set_threshold(*previous)


def block_stop_signals() -> Callable[[], None]:
    """Block SIGINT and SIGTERM in the calling thread (a thread's mask is inherited by the processes it
    starts, across exec); returns what restores its previous mask. Nothing where there are no masks."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        return lambda: None
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    def restore() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return restore


class _StopSignals:
    """SIGTERM and SIGINT stop the server: each is noted in ``received``, and the server's stop thread, which
    polls it, stops the server. Handlers exist in the main thread only (elsewhere this does nothing).

    Why the handler only appends to a list: it runs in the main thread between two bytecodes, possibly in
    the middle of a lock's critical section, and a second signal can interrupt the first handler itself. It
    used to call ``Event.set()``: a shell's ``kill %1`` followed at once by its exit trap's ``kill`` then
    interrupted ``Event.set`` inside its condition's lock, the second ``Event.set`` waited for that lock
    forever, and the server, its workers and whatever pipe they held stayed (1 run in ~170 under load).
    The handler takes no lock: it appends to a list, and the forced exit makes system calls only.

    Once a signal has asked for the stop, the handlers stay until the process exits: a further SIGTERM is
    ignored (the stop is bounded anyway, STOP_BOUND_S), and a second SIGINT (Ctrl-C again: the person wants
    out now) kills the ``workers`` (their pids) and exits at once with 130."""

    def __init__(self, workers: Callable[[], list[int]]) -> None:
        import signal

        self.received: list[int] = []
        self._workers = workers
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(number) == signal.SIG_IGN:  # the parent's choice, kept: a shell starts a
                    continue  # background job (`serve &`) with SIGINT ignored, so a terminal's Ctrl-C is not its
                self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number: int, _frame: object) -> None:
        import signal

        self.received.append(number)
        if len(self.received) == 1 or number != signal.SIGINT:
            return
        import os

        for pid in self._workers():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.write(2, b"otel-expansion backend: stopped at once (interrupted again during the stop)\n")
        os._exit(128 + number)

    def restore(self) -> None:
        """The previous handlers back, unless a signal stopped the server: the process is on its way out,
        and further signals are still ours to handle."""
        import signal

        if self.received:
            return
        for number, handler in self._previous.items():
            signal.signal(number, handler)
