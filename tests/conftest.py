"""Shared fixtures: run real subprocesses of instrumented CLIs against a private state directory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# A suite started in the background by a non-interactive shell (`cmd &`, some CI runners) inherits SIGINT
# ignored, and so would every program it starts (an ignored signal stays ignored across exec): the Ctrl-C
# tests would then send a signal nobody receives. Programs started by the suite get the default, as from a
# terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Variables that could leak the developer's own settings into a test run.
_SCRUB = ("DO_NOT_TRACK", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "CI",
          "GITHUB_ACTIONS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "DEMOCLI_NO_TELEMETRY")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in _SCRUB}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OTEL_EXPANSION_HOME"] = str(home)
    env.update(extra)
    return env


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(autouse=True, scope="session")
def _suite_plays_the_program(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """In-process tests run under pytest's main, so by the package's rule (privacy.vocabulary._program_file)
    their modules, and the probe modules they write under the temp directory, would be files pytest
    imported at run time: the user's text, not a program's. They stand in for a program's own code, so the
    suite declares its tree and its temp directory as the program's. Tests of the rule itself run real
    programs in subprocesses, where nothing is declared."""
    from otel_expansion.privacy import vocabulary

    roots = [str(ROOT), str(tmp_path_factory.getbasetemp())]
    vocabulary.EXTRA_ROOTS.extend(roots)
    yield
    for root in roots:
        vocabulary.EXTRA_ROOTS.remove(root)

COLLECTOR_TESTS = str(ROOT / "tests" / "collector")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The collector's tests run last: scripts/test.sh builds the collector in the background meanwhile (a
    cold build takes ~11 min), and the first of them waits for it on build.sh's lock. Order only."""
    items.sort(key=lambda item: str(item.path).startswith(COLLECTOR_TESTS))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def run_cli(home: Path) -> Iterator[RunCli]:
    """Run an example CLI (default: democli.py) as a real subprocess with a private home."""

    def run(
        *args: str, script: str = "democli.py", timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(EXAMPLES / script), *args],
            env=clean_env(home, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    yield run


@contextlib.contextmanager
def temp_environ(remove: tuple[str, ...] = (), **values: str) -> Iterator[None]:
    """Set (and remove) process environment variables for a block, then restore them exactly."""
    names = set(values) | set(remove)
    saved = {k: os.environ.get(k) for k in names}
    try:
        for k in remove:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_until(predicate: Callable[[], object], timeout_s: float = 60, what: str = "condition") -> None:
    """Readiness wait: poll ``predicate`` until it holds (never a fixed sleep standing in for a signal)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        time.sleep(0.02)


def settled(home: Path) -> bool:
    """Nothing of ``home`` is left to send: no journal record, no pending spool row, no sender running."""
    import sqlite3

    from otel_expansion.export import launcher
    from otel_expansion.journal import store

    if store.pending(str(home)) or launcher.sender_running(str(home)):
        return False
    spool = home / "spool.sqlite"
    if not spool.exists():
        return True
    try:
        conn = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)
        try:
            pending = sum(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("spans", "series"))
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return pending == 0


def quiet_period(seconds: float = 1.0) -> None:
    """A window in which something that must NOT happen (a stray request or process) would show itself.

    Not a synchronisation: nothing is awaited; tests use it only to observe an absence.
    """
    import time

    time.sleep(seconds)


def journal_records(home: Path) -> list[dict[str, object]]:
    from otel_expansion.journal import store

    return [store.read(p) for p in store.pending(str(home))]
