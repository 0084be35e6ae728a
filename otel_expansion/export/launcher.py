"""Starts the detached sender from a CLI's exit path, cheaply and only when there is a reason to.

Decisions read one tiny state file written by the sender (``<next-send> <last-start> <written-at>``,
epoch seconds; format 1 since 0.1: a later field is appended, readers take the first three; nan or inf
read as unknown), so a hundred runs against a dead collector start no sender until its backoff expires.
Wall-clock times are only trusted within what the policy allows: a stored time further ahead than
``MAX_DEFER_S``, or written "in the future" (the clock was moved back since), counts as due now, so a
clock correction never stops sending. A lock taken by the running sender means at most one runs per
home. Nothing secret goes on the sender's command line (``ps`` shows it to every local user): the
endpoint travels in its environment. Stdlib only, no ``subprocess`` (costs ~20 ms to import).
"""

from __future__ import annotations

import os
import sys
import time

from otel_expansion.config.paths import SENDER_LOCK, SENDER_LOG, SENDER_STATE, open_private
from otel_expansion.journal import (
    CLOCK_SLACK_S,
    INGEST_THRESHOLD,
    MAX_DEFER_S,
    MIN_SPAWN_INTERVAL_S,
    _state,
    next_send_at,
    should_start,
)

__all__ = ["CLOCK_SLACK_S", "INGEST_THRESHOLD", "MAX_DEFER_S", "MIN_SPAWN_INTERVAL_S", "next_send_at",
           "should_start"]  # the decision itself lives in the journal package (on every run's exit path)

ENDPOINT_ENV = "OTEL_EXPANSION_SENDER_ENDPOINT"
"""How the endpoint (which may hold credentials) reaches the sender: its environment, not its argv."""

FROZEN_FLAG = "--otel-expansion-sender="
"""First argument of a frozen app started as its own sender: ``FROZEN_FLAG + token``."""
FROZEN_TOKEN_ENV = "OTEL_EXPANSION_FROZEN_SENDER"
"""The same random token in the sender's environment: both must match, so no user triggers it by accident."""

SENDER_LOG_MAX_BYTES = 1 << 20
"""The sender's log is emptied past this size (by the sender after a round, and here before a start)."""

self_sender = False
"""Set by a freezer's runtime hook (workers.frozen) that runs before the program: this executable, started
with ``FROZEN_FLAG`` and the token, runs the sender instead of the program."""

_children: list[int] = []


def _write_state(home: str, next_send: float, last_spawn: float) -> None:
    from otel_expansion.config.paths import write_private

    now = time.time()
    next_send = min(next_send, now + MAX_DEFER_S)
    write_private(os.path.join(home, SENDER_STATE), f"{next_send:.3f} {last_spawn:.3f} {now:.3f}\n".encode())


def write_next_send_at(home: str, when: float) -> None:
    _write_state(home, when, _state(home)[1])


def sender_running(home: str) -> bool:
    """True while another process holds the sender lock."""
    try:
        import fcntl
    except ImportError:  # Windows: rely on the sender's own lock
        return False
    try:
        fd = open_private(os.path.join(home, SENDER_LOCK), os.O_RDWR)  # no lock file: no sender
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    return False


def sender_argv(home: str, send: bool, force: bool = False, lock_wait_s: float = 0.0, *, entry: str) -> list[str]:
    """The sender's command line: nothing secret (the endpoint goes in ``ENDPOINT_ENV``).

    ``entry`` is the module the sender runs, given by the caller (``otel_expansion.workers.SENDER_ENTRY``):
    this stage starts a process, it does not know the orchestrator that runs in it."""
    argv = [sys.executable, "-m", entry, "--home", home]
    if force:
        argv.append("--force")
    if lock_wait_s > 0:
        argv += ["--lock-wait", f"{lock_wait_s:g}"]
    if not send:
        argv.append("--no-send")
    return argv


def spawn(home: str, endpoint: str | None = None, send: bool = True, force: bool = False,
          lock_wait_s: float = 0.0, *, entry: str) -> int | None:
    """Start a detached sender (own session, stdio away from the host's pipes); returns its pid.

    ``lock_wait_s``: the sender lock is held by this very process (a service's export thread inside a
    round, which ends with the process): start one anyway, to wait that long for the lock and then run.
    """
    reap()
    frozen = getattr(sys, "frozen", False)
    if not sys.executable or (frozen and not self_sender):
        # a frozen app's executable is the app itself: unless its freezer's runtime hook serves the sender
        # before the program runs (``self_sender``), running it again would run the user's program again.
        # Data stays in the journal for `otel-expansion flush` instead.
        return None
    if not lock_wait_s and sender_running(home):
        return None
    argv = sender_argv(home, send, force, lock_wait_s, entry=entry)
    env = dict(os.environ)
    env.pop(ENDPOINT_ENV, None)
    env.pop(FROZEN_TOKEN_ENV, None)
    if endpoint:
        env[ENDPOINT_ENV] = endpoint
    if frozen:
        argv, env = _frozen_sender(argv, env)
    else:
        env["PYTHONPATH"] = _sender_path(env.get("PYTHONPATH", ""))
    env.pop("OTEL_EXPANSION_DEBUG", None)
    log_path = os.path.join(home, SENDER_LOG)
    if hasattr(os, "posix_spawn"):
        log_fd = open_private(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # never through a link
        try:
            # the sender trims its own log, but one that dies before it gets there (an environment that
            # cannot import it) would grow it by a traceback every MIN_SPAWN_INTERVAL_S, forever
            if os.fstat(log_fd).st_size > SENDER_LOG_MAX_BYTES:
                os.ftruncate(log_fd, 0)
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ]
            pid = os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
        finally:
            os.close(log_fd)
    else:  # pragma: no cover - Windows
        import subprocess

        flags = getattr(subprocess, "DETACHED_PROCESS", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        with open(log_path, "ab") as log:
            pid = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=log, creationflags=flags, close_fds=True).pid
    _children.append(pid)
    _write_state(home, next_send_at(home), time.time())
    return pid


def _sender_path(inherited: str) -> str:
    """PYTHONPATH for a sender started with ``sys.executable``: the package's root, then every absolute
    entry of this process's ``sys.path``, so the package and its dependencies import as they did here from
    wherever they came (a zipapp, shiv's or pex's unpacked wheels, a pipx venv, ``--target`` folders).

    The sender must not be auto-instrumented itself (opentelemetry-instrument puts its sitecustomize on
    PYTHONPATH): it would record its own run as a product command.
    """
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    entries: list[str] = []
    for p in [package_root, *inherited.split(os.pathsep), *sys.path]:
        if (p and os.path.isabs(p) and p not in entries
                and not p.rstrip(os.sep).endswith("auto_instrumentation")):
            entries.append(p)
    return os.pathsep.join(entries)


def _frozen_sender(argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The frozen app itself as the sender: a fresh token on argv and in the environment (the runtime hook
    requires both to match before the program would run), and a fresh start of its bootloader."""
    token = os.urandom(16).hex()
    env[FROZEN_TOKEN_ENV] = token
    # PyInstaller's one-file bootloader marks its child with these; inherited, the new process would take
    # itself for that child and use a temporary folder that is deleted when the app exits.
    for key in [k for k in env if k.startswith("_PYI_") or k == "_MEIPASS2"]:
        del env[key]
    env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    if "LD_LIBRARY_PATH_ORIG" in env:  # the user's library path, saved by the bootloader that replaced it
        env["LD_LIBRARY_PATH"] = env.pop("LD_LIBRARY_PATH_ORIG")
    return [sys.executable, FROZEN_FLAG + token, *argv[3:]], env


def reap() -> None:
    """Collect exited senders of a process that keeps running, so none stays a zombie."""
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            done = pid
        if done and pid in _children:  # a service's thread and its exit may reap at the same moment
            try:  # noqa: SIM105 - contextlib is an import this exit path does without
                _children.remove(pid)
            except ValueError:
                pass
