"""Helpers of the fault-injection suite: fast scratch filesystems, and counting what a receiver got."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root; the suite's disk-full cases need it anyway)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A RAM-backed directory when we may mount one (journal-heavy tests), else plain tmp_path."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    with tmpfs(tmp_path / "ram", "512m") as path:
        yield path


def metrics_of(requests: list[Any], name: str) -> Iterator[Any]:
    """Every metric ``name`` in the OTLP metrics requests a receiver recorded."""
    for req in requests:
        if req.signal != "metrics":
            continue
        for rm in req.message().resource_metrics:
            for sm in rm.scope_metrics:
                yield from (metric for metric in sm.metrics if metric.name == name)


def metric_total(requests: list[Any], name: str) -> float:
    """Sum of every data point of metric ``name`` over the OTLP metrics requests a receiver recorded."""
    total = 0.0
    for metric in metrics_of(requests, name):
        total += sum(dp.as_int or dp.as_double for dp in metric.sum.data_points)
    return total


def processes_for(home: Path) -> list[tuple[int, list[str]]]:
    """(pid, argv) of live processes whose command line names ``home`` (the package's senders)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if str(home) in argv:
            found.append((int(entry), argv))
    return found


def wait_for_senders(home: Path, timeout_s: float = 60.0) -> None:
    """Block (bounded) until no process started for ``home`` is alive any more."""
    import time

    deadline = time.monotonic() + timeout_s
    while processes_for(home):
        assert time.monotonic() < deadline, f"senders still running: {processes_for(home)}"
        time.sleep(0.05)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Everything under ``root`` that a write could change: type+mode, owner, mtime and content."""
    import hashlib

    state: dict[str, tuple[int, int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = b""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).digest()
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_mtime_ns, content)
    st = os.lstat(root)
    state["."] = (st.st_mode, st.st_uid, st.st_mtime_ns, b"")
    return state


# The real collector built from collector-config/ (fixtures shared with tests/collector).
from tests.collector.conftest import _stop_collectors_of_each_test, collector  # noqa: F401


class FaultyProxy:
    """A 127.0.0.1 HTTP proxy in front of a real receiver that injects one scripted fault per request.

    A body larger than ``limit`` bytes (as sent, i.e. compressed) is answered 413 without forwarding, as a
    receiver's body limit does, and consumes no scripted action. Other requests take the next action from
    ``script`` (then ``"ok"``): ``"ok"`` forwards and relays the answer;
    ``"413"`` answers 413 without forwarding; ``"503"`` answers 503; ``"reset_before"`` closes the
    connection without forwarding; ``"reset_after"`` forwards (the receiver stores it) and then closes the
    connection without answering: the ambiguous failure that makes retries necessary.
    """

    def __init__(self, target: str, script: list[str], limit: int | None = None) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import urlsplit

        self.script = list(script)
        self.log: list[tuple[str, str, int]] = []  # (action, path, body bytes)
        target_parts = urlsplit(target)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if limit is not None and len(body) > limit:
                    action = "413"
                else:
                    action = proxy.script.pop(0) if proxy.script else "ok"
                proxy.log.append((action, self.path, len(body)))
                if action in ("413", "503"):
                    self.send_response(int(action))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if action == "reset_before":
                    self._reset()
                    return
                conn = http.client.HTTPConnection(target_parts.hostname, target_parts.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request("POST", self.path, body=body, headers=headers)
                    reply = conn.getresponse()
                    payload = reply.read()
                finally:
                    conn.close()
                if action == "reset_after":
                    self._reset()
                    return
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _reset(self) -> None:
                import socket
                import struct

                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def faulty_proxy(target: str, script: list[str], limit: int | None = None) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(target, script, limit)
    try:
        yield proxy
    finally:
        proxy.close()


@contextlib.contextmanager
def embedded_backend(db: Path) -> Iterator[str]:
    """The real embedded backend (otel_expansion.backend) on a free 127.0.0.1 port; yields its URL."""
    import threading

    from otel_expansion.backend.server import serve

    stop = threading.Event()
    ready = threading.Event()
    port: list[int] = []

    def on_ready(p: int) -> None:
        port.append(p)
        ready.set()

    thread = threading.Thread(target=serve, args=("127.0.0.1", 0, db), kwargs={"ready": on_ready, "stop": stop},
                              daemon=True)
    thread.start()
    assert ready.wait(10), "backend did not start"
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        stop.set()
        thread.join(10)


def backend_counts(db: Path) -> tuple[int, float]:
    """(command spans stored, sum of cli.command.invocations points) in an embedded backend's database."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        spans = int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
        invocations = conn.execute(
            "SELECT coalesce(sum(value), 0) FROM metric_points WHERE name = 'cli.command.invocations'").fetchone()[0]
    return spans, float(invocations)
