"""A CLI shipped as a PyInstaller app (one-file and one-dir) delivers its telemetry: the frozen executable
serves as its own sender, without running the program again, and nobody can make it do so by accident.

PyInstaller comes from PyPI into a cached venv (~/.cache/otel-expansion/venvs, keyed by the pins); the two
builds are cached too (~/.cache/otel-expansion/frozen, keyed by the package's sources, the example and the
pins), so CI rebuilds only when one of them changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.export.servers import otlp_server
from tests.shipping.cache import ROOT, cached_build, cached_venv, source_inputs
from tests.shipping.delivery import wait_delivered

pytestmark = pytest.mark.slow

PINS = ["pyinstaller==6.22.3", "pyinstaller-hooks-contrib==2026.10", "altgraph==0.17.5", "setuptools==80.9.0",
        "wheel==0.45.1"]
EXAMPLE = ROOT / "examples" / "frozen_cli.py"


def _build(out: Path) -> None:
    venv = cached_venv("pyinstaller", PINS)
    py = str(venv / "bin" / "python")
    # the package as a user's build environment has it: installed (with its dependencies) from its source,
    # so PyInstaller finds its hooks through the pyinstaller40 entry point
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation",
                    "--force-reinstall", "--no-cache-dir", str(ROOT)], check=True, timeout=1800)
    for mode in ("onefile", "onedir"):
        subprocess.run([str(venv / "bin" / "pyinstaller"), "--noconfirm", "--log-level", "WARN", f"--{mode}",
                        "--name", "frozencli", "--distpath", str(out / mode), "--workpath", str(out / "work" / mode),
                        "--specpath", str(out / "work"), str(EXAMPLE)], check=True, timeout=1800, cwd=out)
    shutil.rmtree(out / "work")


@pytest.fixture(scope="module")
def frozen() -> Path:
    inputs = [*(p.encode() for p in PINS), *source_inputs(ROOT / "otel_expansion", ROOT / "pyproject.toml", EXAMPLE)]
    return cached_build("frozen", inputs, _build)


def _exe(frozen: Path, mode: str) -> str:
    return str(frozen / "onefile" / "frozencli" if mode == "onefile" else frozen / "onedir" / "frozencli" / "frozencli")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PYTHON")) and k not in ("DO_NOT_TRACK", "CI", "GITHUB_ACTIONS")}
    env.update(OTEL_EXPANSION_HOME=str(tmp_path / "state"), FROZENCLI_RUNLOG=str(tmp_path / "runs.log"), **extra)
    return env


@pytest.mark.parametrize("mode", ["onefile", "onedir"])
def test_frozen_app_delivers_its_runs(frozen: Path, mode: str, tmp_path: Path) -> None:
    """Two runs of the frozen CLI reach the receiver, exactly, and the program ran only for them."""
    assert sys.platform.startswith("linux")
    with otlp_server() as srv:
        # sends at most once a second (the default waits a minute between sends)
        env = _env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, OTEL_METRIC_EXPORT_INTERVAL="1000")
        ok = subprocess.run([_exe(frozen, mode), "greet", "bob"], env=env, capture_output=True, timeout=120)
        assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"hello bob\n", b"")
        first = wait_delivered(srv, 1)
        failed = subprocess.run([_exe(frozen, mode), "fail"], env=env, capture_output=True, timeout=120)
        assert (failed.returncode, failed.stdout, failed.stderr) == (3, b"", b"it failed\n")
        # no second sender within 10 s of the first (no spawn storms): a third run after that sends both
        time.sleep(10.5)
        third = subprocess.run([_exe(frozen, mode), "greet", "ann"], env=env, capture_output=True, timeout=120)
        assert third.returncode == 0
        spans = wait_delivered(srv, 3)
    assert first == [("frozencli", "greet", 0)]
    assert sorted(spans) == sorted([("frozencli", "greet", 0), ("frozencli", "fail", 3), ("frozencli", "greet", 0)])
    # the senders ran the package's sender, never the program: it ran three times, for the three runs
    assert (tmp_path / "runs.log").read_text().splitlines() == ["greet bob", "fail", "greet ann"]
    log = (tmp_path / "state" / "sender.log").read_text()
    assert "round:" in log and "Traceback" not in log


@pytest.mark.parametrize("mode", ["onefile", "onedir"])
def test_the_sender_start_cannot_happen_by_accident(frozen: Path, mode: str, tmp_path: Path) -> None:
    """The sender flag without the matching token in the environment (or with a wrong one) is an ordinary
    argument: the program runs and sees it."""
    from otel_expansion.export.launcher import FROZEN_FLAG, FROZEN_TOKEN_ENV

    token = "ab" * 16
    for extra in ({}, {FROZEN_TOKEN_ENV: "cd" * 16}, {FROZEN_TOKEN_ENV: "short"}):
        env = _env(tmp_path, OTEL_EXPANSION_SEND="false", **extra)
        flag = FROZEN_FLAG + (token if extra.get(FROZEN_TOKEN_ENV) != "short" else "short")
        result = subprocess.run([_exe(frozen, mode), flag, "--home", str(tmp_path)], env=env, capture_output=True,
                                timeout=120)
        assert result.returncode == 2 and b"frozencli: error:" in result.stderr, result.stderr
    assert len((tmp_path / "runs.log").read_text().splitlines()) == 3


def _signatures(server: Any) -> list[str]:
    """``cli.error.signature`` of every failed span the receiver got."""
    found = []
    for req in server.requests:
        if req.signal != "traces":
            continue
        for rs in req.message().resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs = {a.key: a.value.string_value for a in span.attributes}
                    if "cli.error.signature" in attrs:
                        found.append(attrs["cli.error.signature"])
    return found


@pytest.mark.parametrize("mode", ["onefile", "onedir"])
def test_a_frozen_app_names_its_error_frames_as_the_script_does(frozen: Path, mode: str, tmp_path: Path) -> None:
    """PyInstaller compiles the app's code with file names relative to its bundle: the error signature of a
    crash is still the program's own frames, the same string the script gives when run by Python."""
    expected = "__main__:<module> > __main__:main > __main__:_crash > __main__:_load"
    for runner in ("frozen", "python"):
        (tmp_path / runner).mkdir()
        with otlp_server() as srv:
            env = _env(tmp_path / runner, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, OTEL_METRIC_EXPORT_INTERVAL="1000")
            if runner == "python":
                env["PYTHONPATH"] = str(ROOT)
            argv = [_exe(frozen, mode)] if runner == "frozen" else [sys.executable, str(EXAMPLE)]
            crash = subprocess.run([*argv, "crash"], env=env, capture_output=True, timeout=120)
            assert crash.returncode == 1 and b"FileNotFoundError: settings.toml" in crash.stderr, crash.stderr
            wait_delivered(srv, 1)
            assert _signatures(srv) == [expected], runner
