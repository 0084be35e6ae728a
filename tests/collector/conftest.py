"""Run the real otel-expansion collector (built from collector-config/manifest.yaml) for the tests.

The `collector` fixture builds or locates the binary once per session and hands out a factory:
``collector.start(backend_endpoint)`` starts the binary with collector-config/otelcol.yaml on free
127.0.0.1 ports, its otlp_http exporter aimed at ``backend_endpoint``, and waits until its health check
says ready. Everything it writes (queue storage, logs) lives under pytest's temporary directory; every
process it starts is terminated at the end of the session at the latest, and the log of any collector a
failing test started is attached to that test's report.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CONFIG_DIR = Path(__file__).resolve().parents[2] / "collector-config"
BUILD_SCRIPT = CONFIG_DIR / "build.sh"
LOCAL_CONFIG = CONFIG_DIR / "otelcol.yaml"

BUILD_TIMEOUT_S = 1800.0  # a cold ocb build downloads and compiles the whole collector
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
START_ATTEMPTS = 3  # a free port can be taken by someone else between choosing it and binding it
LOG_TAIL_CHARS = 20_000


def free_ports(count: int) -> list[int]:
    """Distinct ports that were free a moment ago (all bound at once, so they cannot repeat)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def build_collector() -> Path:
    """Path of the collector binary from build.sh; fails the session, never skips, when it cannot build."""
    try:
        done = subprocess.run(
            [str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not build the collector with {BUILD_SCRIPT}: {exc}", pytrace=False)
    binary = Path(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    if done.returncode != 0 or binary is None or not os.access(binary, os.X_OK):
        pytest.fail(
            f"{BUILD_SCRIPT} failed (exit {done.returncode}); it needs Go and network access for the first "
            f"build.\nstdout:\n{done.stdout[-LOG_TAIL_CHARS:]}\nstderr:\n{done.stderr[-LOG_TAIL_CHARS:]}",
            pytrace=False,
        )
    return binary


@dataclass
class Collector:
    """One running collector process and the addresses it listens on."""

    process: subprocess.Popen[bytes]
    otlp_http_url: str
    otlp_grpc_endpoint: str
    health_url: str
    storage_dir: Path
    log_path: Path
    owner: str = ""

    def log(self) -> str:
        """The collector's own log (its stderr) so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode


@dataclass
class CollectorFactory:
    """Starts collectors from one binary; remembers them so none outlives the session."""

    binary: Path
    workdir: Path
    started: list[Collector] = field(default_factory=list)

    def start(
        self,
        backend_endpoint: str,
        *,
        storage_dir: Path | None = None,
        config: Path = LOCAL_CONFIG,
        env: Mapping[str, str] | None = None,
    ) -> Collector:
        """Start ``config`` on free ports exporting to ``backend_endpoint``; return once it is healthy.

        ``storage_dir`` is the persistent queue's directory: pass the same one to a second collector to
        show that what the first one queued survives it. ``env`` adds or overrides variables.
        """
        index = len(self.started)
        if storage_dir is None:
            storage_dir = self.workdir / f"storage-{index}"
        last_log = ""
        failure: str | None = None
        for attempt in range(START_ATTEMPTS):
            collector = self._spawn(backend_endpoint, storage_dir, config, env, f"{index}-{attempt}")
            failure = self._wait_ready(collector)
            if failure is None:
                return collector
            last_log = collector.log()
            collector.stop()
            if "address already in use" not in last_log:
                break
        pytest.fail(
            f"collector from {config.name} did not become ready: {failure}\n--- collector log ---\n"
            f"{last_log[-LOG_TAIL_CHARS:]}",
            pytrace=False,
        )

    def stop_all(self) -> None:
        for collector in self.started:
            collector.stop()

    def _spawn(
        self,
        backend_endpoint: str,
        storage_dir: Path,
        config: Path,
        env: Mapping[str, str] | None,
        tag: str,
    ) -> Collector:
        grpc_port, http_port, health_port, metrics_port = free_ports(4)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPANSION_")}
        child_env.update(
            {
                "OTEL_EXPANSION_BACKEND_ENDPOINT": backend_endpoint,
                "OTEL_EXPANSION_COLLECTOR_STORAGE": str(storage_dir),
                "OTEL_EXPANSION_COLLECTOR_FILE_PATH": str(self.workdir / f"export-{tag}.jsonl"),
                "OTEL_EXPANSION_COLLECTOR_GRPC_PORT": str(grpc_port),
                "OTEL_EXPANSION_COLLECTOR_HTTP_PORT": str(http_port),
                "OTEL_EXPANSION_COLLECTOR_HEALTH_PORT": str(health_port),
                "OTEL_EXPANSION_COLLECTOR_METRICS_PORT": str(metrics_port),
                # Quick retries keep the "backend comes back" tests short.
                "OTEL_EXPANSION_COLLECTOR_RETRY_INITIAL_INTERVAL": "200ms",
                "OTEL_EXPANSION_COLLECTOR_RETRY_MAX_INTERVAL": "500ms",
            }
        )
        child_env.update(env or {})
        log_path = self.workdir / f"collector-{tag}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [str(self.binary), "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=self.workdir,
            )
        collector = Collector(
            process=process,
            otlp_http_url=f"http://127.0.0.1:{http_port}",
            otlp_grpc_endpoint=f"127.0.0.1:{grpc_port}",
            health_url=f"http://127.0.0.1:{health_port}/",
            storage_dir=storage_dir,
            log_path=log_path,
            owner=os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0],
        )
        self.started.append(collector)
        return collector

    @staticmethod
    def _wait_ready(collector: Collector) -> str | None:
        """None once the health check answers 200, else why not (bounded by READY_TIMEOUT_S)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not collector.running:
                return f"the process exited with code {collector.process.returncode}"
            try:
                with urllib.request.urlopen(collector.health_url, timeout=1.0) as response:
                    if response.status == 200:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return f"no healthy answer from {collector.health_url} within {READY_TIMEOUT_S:.0f} s"


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorFactory]:
    """Factory for real collector processes; see the module docstring."""
    factory = CollectorFactory(binary=build_collector(), workdir=tmp_path_factory.mktemp("collector"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(autouse=True)
def _stop_collectors_of_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Collectors a test started stop when it ends (after its report took their logs)."""
    yield
    factory = getattr(request.node, "funcargs", {}).get("collector")
    if isinstance(factory, CollectorFactory):
        for started in factory.started:
            if started.owner == request.node.nodeid:
                started.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the logs of the collectors a failing test started to its report."""
    report = yield
    factory = getattr(item, "funcargs", {}).get("collector")
    if report.failed and isinstance(factory, CollectorFactory):
        for started in factory.started:
            if started.owner == item.nodeid:
                report.sections.append(
                    (f"collector log {started.log_path.name}", started.log()[-LOG_TAIL_CHARS:])
                )
    return report
