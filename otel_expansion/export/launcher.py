"""Starts the detached sender from a CLI's exit path, cheaply and only when there is a reason to.

Decisions read one tiny state file written by the sender (``<next-send-epoch-seconds>``), so a hundred
runs against a dead collector start no sender until its backoff expires. A lock taken by the running
sender means at most one runs per home. Stdlib only, no ``subprocess`` (costs ~20 ms to import).
"""

from __future__ import annotations

import os
import sys
import time

from otel_expansion.config.paths import SENDER_LOCK, SENDER_LOG, SENDER_STATE, read_small
from otel_expansion.journal import store as journal

INGEST_THRESHOLD = 64
"""Journal records that justify a sender even while sending is deferred (keeps the journal small)."""
MIN_SPAWN_INTERVAL_S = 10.0
"""At most one sender start per this many seconds, even if senders keep dying (no spawn storms)."""

_children: list[int] = []


def _state(home: str) -> tuple[float, float]:
    """(next send due, last sender start), epoch seconds; zeros when unknown."""
    raw = read_small(os.path.join(home, SENDER_STATE), 128)
    values = [0.0, 0.0]
    if raw:
        for i, field in enumerate(raw.split()[:2]):
            try:  # noqa: SIM105 - contextlib is an import this hot path does not need
                values[i] = float(field)
            except ValueError:
                pass
    return values[0], values[1]


def _write_state(home: str, next_send: float, last_spawn: float) -> None:
    from otel_expansion.config.paths import write_private

    write_private(os.path.join(home, SENDER_STATE), f"{next_send:.3f} {last_spawn:.3f}\n".encode())


def next_send_at(home: str) -> float:
    return _state(home)[0]


def write_next_send_at(home: str, when: float) -> None:
    _write_state(home, when, _state(home)[1])


def sender_running(home: str) -> bool:
    """True while another process holds the sender lock."""
    try:
        import fcntl
    except ImportError:  # Windows: rely on the sender's own lock
        return False
    try:
        fd = os.open(os.path.join(home, SENDER_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    return False


def should_start(home: str, send: bool, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    next_send, last_spawn = _state(home)
    if abs(now - last_spawn) < MIN_SPAWN_INTERVAL_S:  # abs: the state keeps milliseconds, rounded
        return False
    if send and now >= next_send:
        return True
    return journal.count(home) >= INGEST_THRESHOLD


def sender_argv(home: str, endpoint: str | None, send: bool, force: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "otel_expansion.workers.sender", "--home", home]
    if force:
        argv.append("--force")
    if endpoint:
        argv += ["--endpoint", endpoint]
    if not send:
        argv.append("--no-send")
    return argv


def spawn(home: str, endpoint: str | None = None, send: bool = True, force: bool = False) -> int | None:
    """Start a detached sender (own session, stdio away from the host's pipes); returns its pid."""
    reap()
    if getattr(sys, "frozen", False) or not sys.executable:
        # a frozen app's executable is the app itself: running it with sender arguments would run the
        # user's program again. Data stays in the journal for `otel-expansion flush` instead.
        return None
    if sender_running(home):
        return None
    argv = sender_argv(home, endpoint, send, force)
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The sender must not be auto-instrumented itself (opentelemetry-instrument puts its sitecustomize on
    # PYTHONPATH): it would record its own run as a product command.
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                 if p and not p.rstrip(os.sep).endswith("auto_instrumentation")]
    env["PYTHONPATH"] = os.pathsep.join([package_root, *inherited])
    env.pop("OTEL_EXPANSION_DEBUG", None)
    log_path = os.path.join(home, SENDER_LOG)
    if hasattr(os, "posix_spawn"):
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        ]
        pid = os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
    else:  # pragma: no cover - Windows
        import subprocess

        flags = getattr(subprocess, "DETACHED_PROCESS", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        with open(log_path, "ab") as log:
            pid = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=log, creationflags=flags, close_fds=True).pid
    _children.append(pid)
    _write_state(home, next_send_at(home), time.time())
    return pid


def reap() -> None:
    """Collect exited senders of a process that keeps running, so none stays a zombie."""
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            done = pid
        if done:
            _children.remove(pid)
