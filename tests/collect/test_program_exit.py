"""Every run of a process that called init() is recorded, on no framework at all, with the status the shell
saw or honestly ``unknown``: real subprocesses, on each installed CPython (3.12+ observes a raised
SystemExit through sys.monitoring; 3.10/3.11 prove normal completion from the main frame)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, journal_records

LOCAL = {"OTEL_EXPANSION_SEND": "false"}


def _interpreters() -> list[str]:
    """This venv's Python and the other CPython minors installed side by side (pyenv), if any."""
    found = [sys.executable]
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in ("3.10", "3.12", "3.13"):
        if f"{sys.version_info[0]}.{sys.version_info[1]}" == minor:
            continue
        candidates = sorted(root.glob(f"{minor}.*/bin/python{minor}")) if root.is_dir() else []
        exe = str(candidates[-1]) if candidates else shutil.which(f"python{minor}")
        if exe:
            found.append(exe)
    return found


INTERPRETERS = _interpreters()


def version_of(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def run(tmp_path: Path, python: str, source: str, *args: str, name: str = "tool.py",
        **env: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    script = tmp_path / name
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(textwrap.dedent(source))
    home = tmp_path / "home"
    result = subprocess.run([python, str(script), *args], env=clean_env(home, **LOCAL, **env),
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    cmds = [c for r in journal_records(home) for c in r["commands"]]  # type: ignore[attr-defined]
    return result, cmds


def outcome(cmd: dict[str, Any]) -> tuple[str, int | None, str | None, str | None]:
    return cmd["name"], cmd.get("exit"), cmd.get("error"), cmd.get("outcome")


PLAIN = """
import sys
import otel_expansion
otel_expansion.init("tool")

def main():
    mode = sys.argv[1]
    if mode == "exit":
        sys.exit(4)
    if mode == "raise":
        raise SystemExit(3)
    if mode == "caught":
        try:
            sys.exit(5)
        except SystemExit:
            pass
    if mode == "replaced":  # a sys.exit caught, then a SystemExit raised by hand
        try:
            sys.exit(0)
        except SystemExit:
            pass
        raise SystemExit(6)
    if mode == "with":
        with open(__file__):
            sys.exit(7)
    if mode == "boom":
        raise ValueError("x")
    if mode == "builtin":  # site's exit(), as pycln ends
        exit(8)
    if mode == "thread":  # sys.exit in another thread ends that thread only
        import threading
        t = threading.Thread(target=sys.exit, args=(9,))
        t.start()
        t.join()
    return 0

try:
    main()
finally:
    pass
"""


@pytest.mark.parametrize("python", INTERPRETERS)
def test_no_framework_every_exit(tmp_path: Path, python: str) -> None:
    """No framework: one invocation named after the service, exact where observable, else ``unknown``."""
    monitoring = version_of(python) >= (3, 12)
    cases = {
        "normal": (0, None, None),
        "exit": (4, "4", None),
        "caught": (0, None, None),
        "with": (7, "7", None),
        "boom": (1, "ValueError", None),
        "builtin": (8, "8", None),
        "thread": (0, None, None),
        "raise": (3, "3", None) if monitoring else (None, None, "unknown"),
        "replaced": (6, "6", None) if monitoring else (None, None, "unknown"),
    }
    for mode, (code, error, verdict) in cases.items():
        result, cmds = run(tmp_path / mode, python, PLAIN, mode)
        assert result.returncode == {"normal": 0, "caught": 0, "boom": 1, "raise": 3, "replaced": 6, "thread": 0}.get(
            mode, code), (mode, result.stderr)
        assert [outcome(c) for c in cmds] == [("tool", code, error, verdict)], mode
        assert cmds[0]["exe"] == "tool" and cmds[0]["end"] >= cmds[0]["start"]


def test_an_unpublished_script_name_is_the_service_name(tmp_path: Path) -> None:
    """A program run by a file name no installed distribution publishes as a console script (no .py)
    is recorded under the service name: a script file's name may be anything (privacy.vocabulary)."""
    result, cmds = run(tmp_path, sys.executable, "import otel_expansion\notel_expansion.init('svc')\n",
                       name="bin/mytool")
    assert result.returncode == 0
    assert [outcome(c) for c in cmds] == [("svc", 0, None, None)]


def test_python_c_records_nothing(tmp_path: Path) -> None:
    """``python -c`` has no program to name: nothing recorded, nothing written."""
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-c", "import otel_expansion; otel_expansion.init('x')"],
                   env=clean_env(home, **LOCAL), check=True, timeout=60)
    assert journal_records(home) == []


def test_a_command_run_suppresses_the_fallback(tmp_path: Path) -> None:
    """A program that records its own command gets that record only, with the process's exit."""
    source = """
    import sys
    import otel_expansion
    otel_expansion.init("tool")
    with otel_expansion.command("sync"):
        pass
    sys.exit(3)
    """
    result, cmds = run(tmp_path, sys.executable, source)
    assert result.returncode == 3
    assert [c["name"] for c in cmds] == ["sync"]


@pytest.mark.parametrize("python", INTERPRETERS)
def test_explicit_shutdown_before_exit_is_unknown(tmp_path: Path, python: str) -> None:
    """``shutdown()`` called while the program still runs cannot know the exit to come: ``unknown``."""
    source = """
    import sys
    import otel_expansion
    otel_expansion.init("tool")
    otel_expansion.shutdown()
    sys.exit(3)
    """
    result, cmds = run(tmp_path, python, source)
    assert result.returncode == 3
    assert [outcome(c) for c in cmds] == [("tool", None, None, "unknown")]


def test_set_command_names_the_run(tmp_path: Path) -> None:
    """``set_command()`` names the process's run for programs no integration names (getopt here)."""
    source = """
    import getopt
    import sys
    import otel_expansion
    otel_expansion.init("tool")
    opts, args = getopt.getopt(sys.argv[1:], "v")
    if args[:1] == ["install"]:
        otel_expansion.set_command("install")
    sys.exit(len(args))
    """
    result, cmds = run(tmp_path, sys.executable, source, "-v", "install", "pkg")
    assert result.returncode == 2
    assert [outcome(c) for c in cmds] == [("install", 2, "2", None)]


@pytest.mark.parametrize("python", INTERPRETERS)
def test_ctrl_c_without_framework_still_dies_by_sigint(tmp_path: Path, python: str) -> None:
    """A real SIGINT: the process dies by it as without telemetry, and the run is 130 / KeyboardInterrupt."""
    import signal

    script = tmp_path / "sleepy.py"
    script.write_text("import time, otel_expansion\notel_expansion.init('sleepy')\nprint('ready', flush=True)\n"
                      "time.sleep(60)\n")
    home = tmp_path / "home"
    proc = subprocess.Popen([python, str(script)], env=clean_env(home, **LOCAL), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT and err.rstrip().endswith(b"KeyboardInterrupt")
    cmds = [c for r in journal_records(home) for c in r["commands"]]  # type: ignore[attr-defined]
    assert [outcome(c) for c in cmds] == [("sleepy", 130, "KeyboardInterrupt", None)]


HANDS_BACK = """
import atexit, builtins, os, sys
before = (sys.exit, os.execv, os.execve, type(builtins.exit).__call__, list(sys.meta_path))

def after():  # registered first, so it runs last: after telemetry's exit work
    now = (sys.exit, os.execv, os.execve, type(builtins.exit).__call__, list(sys.meta_path))
    print("restored" if all(a is b or a == b for a, b in zip(before, now)) else "still wrapped", flush=True)
    sys.exit(3)  # a later exit handler's sys.exit is the interpreter's own again (and changes nothing)

atexit.register(after)
import otel_expansion
otel_expansion.init("tool")
assert sys.exit is not before[0] and os.execv is not before[1]  # watched while the program runs
sys.exit(int(sys.argv[1]))
"""


def test_a_recorded_cli_run_hands_every_hook_back_at_exit(tmp_path: Path) -> None:
    """Once a CLI run's record is written, sys.exit, exit(), os.exec* and the import hook are the
    originals again (left wrapped, they would keep the package alive into the interpreter's finalization
    for nothing: the handle is closed); the run is recorded exactly and the exit status is the program's."""
    result, cmds = run(tmp_path, sys.executable, HANDS_BACK, "4")
    assert result.stdout == "restored\n", result.stderr
    assert result.returncode == 4  # a SystemExit raised inside an exit handler does not change the status
    assert [outcome(c) for c in cmds] == [("tool", 4, "4", None)]
