"""The frozen app's own sender, without a freezer: the launcher's start of it and the runtime hook's check
(the PyInstaller builds themselves are in test_frozen.py, marked slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion.export import launcher
from otel_expansion.workers import SENDER_ENTRY
from tests.conftest import clean_env

_PROGRAM = ("import sys; sys.argv = [sys.executable, *sys.argv[1:]]\n"
            "from otel_expansion.workers.frozen import serve_if_asked\n"
            "serve_if_asked()\n"
            "print('program ran', sys.argv[1:])\n")


def _hooked(tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """A process that runs the runtime hook's check first, then 'the program'."""
    return subprocess.run([sys.executable, "-c", _PROGRAM, *args], env=clean_env(tmp_path / "state", **env),
                          capture_output=True, text=True, timeout=60)


def test_matching_token_runs_the_sender_not_the_program(tmp_path: Path) -> None:
    token = "0f" * 16
    result = _hooked(tmp_path, [launcher.FROZEN_FLAG + token, "--home", str(tmp_path / "state"), "--no-send"],
                     **{launcher.FROZEN_TOKEN_ENV: token})
    assert result.returncode == 0 and "program ran" not in result.stdout, result.stderr
    assert "round: ingested=0" in result.stderr


@pytest.mark.parametrize("env_token", [None, "1e" * 16, "0f"])
def test_anything_else_runs_the_program_with_its_arguments(tmp_path: Path, env_token: str | None) -> None:
    flag = launcher.FROZEN_FLAG + ("0f" * 16 if env_token != "0f" else "0f")
    env = {} if env_token is None else {launcher.FROZEN_TOKEN_ENV: env_token}
    result = _hooked(tmp_path, [flag, "x"], **env)
    assert result.returncode == 0 and result.stdout == f"program ran {[flag, 'x']!r}\n", result.stderr
    assert not (tmp_path / "state").exists()


def test_frozen_without_the_hook_starts_no_sender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen app whose freezer ran no runtime hook of ours would run the program again: no start."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(launcher, "self_sender", False)
    assert launcher.spawn(str(tmp_path), "http://127.0.0.1:9", send=False, entry=SENDER_ENTRY) is None


def test_frozen_start_is_a_fresh_app_with_a_fresh_token(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"_PYI_APPLICATION_HOME_DIR": "/tmp/_MEI1", "_PYI_PARENT_PROCESS_LEVEL": "1", "_MEIPASS2": "/tmp/_MEI1",
           "LD_LIBRARY_PATH": "/tmp/_MEI1", "LD_LIBRARY_PATH_ORIG": "/opt/lib", "KEEP": "1"}
    argv, out = launcher._frozen_sender(launcher.sender_argv("/h", send=True, entry=SENDER_ENTRY), dict(env))
    assert argv[0] == sys.executable and argv[2:] == ["--home", "/h"]
    token = out[launcher.FROZEN_TOKEN_ENV]
    assert len(token) == 32 and argv[1] == launcher.FROZEN_FLAG + token
    assert out["PYINSTALLER_RESET_ENVIRONMENT"] == "1" and out["LD_LIBRARY_PATH"] == "/opt/lib"
    assert not [k for k in out if k.startswith("_PYI_") or k.startswith("_MEI") or k.endswith("_ORIG")]
    assert out["KEEP"] == "1"
    assert launcher._frozen_sender(launcher.sender_argv("/h", send=True, entry=SENDER_ENTRY), dict(env))[1][
        launcher.FROZEN_TOKEN_ENV] != token


def test_sender_path_carries_this_processes_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A sender started with sys.executable imports from where this process did (zipapps, pex, --target)."""
    monkeypatch.setattr(sys, "path", ["", str(tmp_path / "app.pyz"), "/x/auto_instrumentation", "/site"])
    entries = launcher._sender_path("/inherited" + ":relative").split(":")
    assert entries[1:] == ["/inherited", str(tmp_path / "app.pyz"), "/site"]
    assert Path(entries[0], "otel_expansion", "__init__.py").exists()
