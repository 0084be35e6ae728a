"""The production path, end to end: real CLI subprocesses -> journal -> sender -> spool -> the collector
built from collector-config/ -> the embedded backend -> report. Exact counts, and no PII anywhere."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.report import build_report, render_report
from otel_expansion.backend.server import serve
from tests.conftest import EXAMPLES, ROOT, clean_env

SECRETS = ("alice@example.com", "hunter2", "ghp_0123456789abcdefghijABCDEFGHIJ012345", "s3cr3t-token-value",
           "bob@example.org")

ACTIONS: list[list[str]] = [
    ["hello", "bob@example.org"],
    ["hello", "ghp_0123456789abcdefghijABCDEFGHIJ012345", "--shout"],
    ["hello", "carol"],
    ["remote", "add", "https://user:hunter2@example.com/r.git?token=s3cr3t-token-value"],
    ["fail"],
    ["fail"],
    ["nosuch"],
]


class Backend:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.stop = threading.Event()
        ready = threading.Event()
        self.port = 0

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        self.thread = threading.Thread(target=serve, args=("127.0.0.1", 0, db),
                                       kwargs={"ready": on_ready, "stop": self.stop}, daemon=True)
        self.thread.start()
        assert ready.wait(10), "backend did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(tmp_path / "backend.sqlite")
    yield b
    b.stop.set()


def run_actions(home: Path, endpoint: str) -> None:
    env = clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPANSION_LEVEL="full",
                    OTEL_EXPANSION_SEND="false")
    for argv in ACTIONS:
        subprocess.run([sys.executable, str(EXAMPLES / "democli.py"), *argv], env=env, capture_output=True,
                       timeout=60, check=False)


def flush(home: Path, endpoint: str, timeout: str = "30") -> subprocess.CompletedProcess[str]:
    env = clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    return subprocess.run([sys.executable, "-m", "otel_expansion", "flush", "--home", str(home), "--timeout",
                           timeout], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def wait_for_report(db: Path, invocations: int, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if db.exists():
            report = build_report(db)
            if report["totals"]["invocations"] >= invocations and report["stored"]["spans"] >= invocations:
                time.sleep(1.0)  # let any straggling request land, then read the final state
                return build_report(db)
        time.sleep(0.2)
    raise AssertionError(f"backend did not receive {invocations} invocations in time: {report.get('totals')}")


def commands(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {c["command"]: (c["invocations"], c["errors"]) for c in report["commands"]}


def assert_no_secrets(*blobs: bytes | str) -> None:
    for blob in blobs:
        data = blob.encode() if isinstance(blob, str) else blob
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret!r} leaked"


def test_cli_to_collector_to_backend(tmp_path: Path, collector: Any, backend: Backend) -> None:
    """The report shows exactly the actions performed, and no byte stored anywhere holds a secret."""
    col = collector.start(backend.url)
    home = tmp_path / "home"
    run_actions(home, col.otlp_http_url)
    result = flush(home, col.otlp_http_url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = wait_for_report(backend.db, len(ACTIONS))
    assert report["totals"]["invocations"] == 7 and report["totals"]["errors"] == 3
    assert commands(report) == {"hello": (3, 0), "remote add": (1, 0), "fail": (2, 2), "democli": (1, 1)}
    errors = {e["error_type"]: e["count"] for e in report["errors_by_type"]}
    assert errors == {"RuntimeError": 2, "click.exceptions.NoSuchCommand": 1}
    assert report["totals"]["sessions"] == 1 and report["totals"]["installations"] == 1
    text = render_report(report)
    db_bytes = b"".join(p.read_bytes() for p in backend.db.parent.glob("backend.sqlite*"))
    assert_no_secrets(text, db_bytes, col.log())
    assert b"<email>" in db_bytes  # the exception message arrived, redacted (level full)


def test_collector_down_then_up(tmp_path: Path, collector: Any, backend: Backend) -> None:
    """With the collector down, flush fails and keeps everything; once it is up, all of it arrives once."""
    home = tmp_path / "home"
    col = collector.start(backend.url)
    url = col.otlp_http_url
    col.stop()
    run_actions(home, url)
    down = flush(home, url, timeout="5")
    assert down.returncode == 1 and "error:" in down.stderr
    col2 = collector.start(backend.url)
    assert flush(home, col2.otlp_http_url).returncode == 0
    report = wait_for_report(backend.db, len(ACTIONS))
    assert report["totals"]["invocations"] == 7
    assert commands(report)["fail"] == (2, 2)
