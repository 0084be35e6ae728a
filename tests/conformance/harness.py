"""Runs one real program the three ways a user meets it: without us, with init() in a wrapper of its
console script, and under opentelemetry-instrument; telemetry on and off. Reads back what was recorded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]

# x86_64/arm64 syscall numbers of read(2): a process blocked in read on fd 0 waits for its stdin
_READ = {"x86_64": "0", "aarch64": "63"}


@dataclass(frozen=True)
class Outcome:
    stdout: bytes
    stderr: bytes
    returncode: int  # negative: killed by that signal


@dataclass(frozen=True)
class Recorded:
    name: str
    exit: int | None  # None: the outcome is unknown (no exit code recorded)
    error: str | None
    span_name: str | None = None


@contextmanager
def blackhole() -> Iterator[tuple[int, threading.Event]]:
    """A TCP server on 127.0.0.1 that reads requests and never answers; the event is set once a request
    has arrived (the client now waits for the response)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    received = threading.Event()
    held: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    def drain(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                received.set()
        except OSError:
            pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        srv.close()


# syscalls of a process waiting for a network answer: read, poll, select, recvfrom, pselect6, ppoll, epoll
_WAITING = {"x86_64": {"0", "7", "23", "45", "232", "270", "271", "281"},
            "aarch64": {"63", "72", "73", "207", "22"}}


def waiting_for_answer(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return bool(fields) and fields[0] in _WAITING.get(os.uname().machine, _WAITING["x86_64"])


def blocked_reading_stdin(pid: int) -> bool:
    """The process is blocked in read(0, ...): it waits for input the user has not typed yet."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == _READ.get(os.uname().machine, "0") and int(fields[1], 16) == 0


def wait_for(predicate: Any, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"exited before it was ready: {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("program never became ready")
        time.sleep(0.01)


def wrapper_text(tool: str, bin_dir: Path = BIN) -> tuple[str, str]:
    """(the tool's console script, the same with the one line a CLI author adds: ``otel_expansion.init``).

    The call shares the script's first statement line, so line numbers (and tracebacks) stay the same.
    """
    original = (bin_dir / tool).read_text()
    lines = original.splitlines(keepends=True)
    first = 1 if lines and lines[0].startswith("#!") else 0
    lines[first] = f"import otel_expansion; otel_expansion.init({tool!r}); " + lines[first]
    return original, "".join(lines)


def run(argv: list[str], env: dict[str, str], stdin: bytes | None, interrupt: str | None,
        port_event: threading.Event | None, cwd: Path) -> Outcome:
    """Run to completion; with ``interrupt``, send a real SIGINT once it waits (on stdin or the server)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    if interrupt is None:
        out, err = proc.communicate(stdin or b"", timeout=120)
        return Outcome(out, err, proc.returncode)
    if interrupt == "stdin":
        wait_for(lambda: blocked_reading_stdin(proc.pid), proc)
    else:
        assert port_event is not None
        wait_for(lambda: port_event.is_set() and waiting_for_answer(proc.pid), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return Outcome(out, err, proc.returncode)


def journal_commands(home: Path) -> list[Recorded]:
    from otel_expansion.journal import store

    cmds = [c for p in store.pending(str(home)) for c in store.read(p).get("commands") or ()]
    return [Recorded(c["name"], c.get("exit"), c.get("error")) for c in cmds]


def spool_commands(home: Path) -> list[Recorded]:
    """Our spans from the in-process SDK pipeline (opentelemetry-instrument): what the export thread
    committed to the spool, plus what the program's exit handed to the journal, replayed by the sender's
    own code (under the sender lock, as a detached sender would). Other instrumentations' spans (contrib's
    click, installed in the test environment) are not ours."""
    import time

    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from otel_expansion.config.paths import SPOOL_FILE
    from otel_expansion.journal.store import DIRECTORIES
    from otel_expansion.sdk.signals import SCOPE_NAME
    from otel_expansion.spool.store import Spool
    from otel_expansion.workers.sender import ingest_journal, sender_lock, settings_for

    if not (home / SPOOL_FILE).exists() and not any((home / d).exists() for d in DIRECTORIES):
        return []
    found = []
    with sender_lock(str(home), 60.0), Spool.open(home / SPOOL_FILE, max_bytes=1 << 30, max_age_s=1e9) as spool:
        ingest_journal(str(home), spool, settings_for(str(home)), time.monotonic() + 60)
        batch = spool.next_batch(max_spans=1000)
        for record in batch.spans if batch else ():
            if record.scope_name != SCOPE_NAME:
                continue
            span = Span.FromString(record.data)
            attrs = {a.key: a.value for a in span.attributes}
            error = attrs["error.type"].string_value if "error.type" in attrs else None
            code = attrs["process.exit.code"].int_value if "process.exit.code" in attrs else None
            found.append(Recorded(attrs["cli.command.name"].string_value, code, error, span.name))
    return found
