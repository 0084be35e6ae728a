"""Real subprocesses of an instrumented click CLI: exact records, host behaviour untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli, journal_records

LOCAL = {"OTEL_EXPANSION_SEND": "false"}


def commands(home: Path) -> list[dict[str, object]]:
    return [c for r in journal_records(home) for c in r["commands"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "name", "code", "error"),
    [
        (["hello", "bob"], "hello", 0, None),
        (["remote", "add", "https://example.com/x"], "remote add", 0, None),
        (["fail"], "fail", 1, "RuntimeError"),
        (["interrupt"], "interrupt", 1, "KeyboardInterrupt"),
        (["nosuch"], "democli", 2, "click.exceptions.NoSuchCommand"),
        (["hello"], "hello", 2, "click.exceptions.MissingParameter"),
        (["--help"], "democli", 0, None),
    ],
)
def test_each_invocation_is_recorded_exactly(run_cli: RunCli, home: Path, args: list[str], name: str, code: int,
                                             error: str | None) -> None:
    """One record per run with the command path, exit code and error type click produced."""
    result = run_cli(*args, **LOCAL)
    assert result.returncode == code
    cmds = commands(home)
    assert len(cmds) == 1
    cmd = cmds[0]
    assert cmd["name"] == name and cmd["exit"] == code and cmd.get("error") == error
    assert cmd["exe"] == "democli"
    assert 0 < cmd["end"] - cmd["start"] < 30e9  # type: ignore[operator]


@pytest.mark.parametrize("args", [["hello", "bob", "--shout"], ["fail"], ["interrupt"], ["nosuch"], ["hello"]])
def test_output_and_exit_code_unchanged(run_cli: RunCli, args: list[str]) -> None:
    """stdout, stderr and the exit status are byte-identical with telemetry on and opted out."""
    on = run_cli(*args, **LOCAL)
    off = run_cli(*args, DEMOCLI_NO_TELEMETRY="1")
    assert (on.returncode, on.stdout) == (off.returncode, off.stdout)
    assert on.stderr.replace(str(on.args), "") == off.stderr.replace(str(off.args), "")


def test_consecutive_runs_share_a_session(run_cli: RunCli, home: Path) -> None:
    """Runs close together carry one session.id; features are counted."""
    run_cli("hello", "a", **LOCAL)
    run_cli("hello", "b", "--shout", **LOCAL)
    records = journal_records(home)
    assert len({r["session"] for r in records}) == 1
    assert [f["name"] for r in records for f in r["features"]] == ["greeting", "greeting"]  # type: ignore[attr-defined]


def test_opt_out_writes_nothing(run_cli: RunCli, home: Path) -> None:
    """The app's opt-out variable means no file and no directory at all."""
    result = run_cli("hello", "bob", DEMOCLI_NO_TELEMETRY="1")
    assert result.returncode == 0 and not home.exists()


def test_debug_prints_the_record(run_cli: RunCli) -> None:
    """OTEL_EXPANSION_DEBUG=1 shows on stderr a summary of what was recorded; with OTEL_EXPANSION_DEBUG_JSON=1
    the OTLP/JSON that will be sent."""
    result = run_cli("hello", "bob", OTEL_EXPANSION_DEBUG="1", **LOCAL)
    assert "democli telemetry (debug) this run: 1 span" in result.stderr
    assert "  span 'democli hello' " in result.stderr and '"name"' not in result.stderr
    assert result.stdout == "hello bob\n"
    result = run_cli("hello", "bob", OTEL_EXPANSION_DEBUG="1", OTEL_EXPANSION_DEBUG_JSON="1", **LOCAL)
    assert "otel-expansion debug: this run traces" in result.stderr and '"name": "democli hello"' in result.stderr
    assert result.stdout == "hello bob\n"


def test_real_ctrl_c(home: Path) -> None:
    """SIGINT during a command: click's own 'Aborted!' and exit 1, recorded as KeyboardInterrupt."""
    import signal
    import subprocess
    import sys

    from tests.conftest import EXAMPLES, clean_env, wait_until

    ready = home.parent / "ready"
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "democli.py"), "work", "--seconds", "30",
                             "--ready-file", str(ready)],
                            env=clean_env(home, **LOCAL), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(ready.exists, what="the command started")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "Aborted!" in err and "Traceback" not in err
    (cmd,) = commands(home)
    assert (cmd["name"], cmd["exit"], cmd["error"]) == ("work", 1, "KeyboardInterrupt")


def test_full_level_keeps_declared_flags_only_and_withholds_usage_messages(run_cli: RunCli, home: Path) -> None:
    """At full: flags the command declares are kept, a mistyped flag (maybe a value) is not, and usage
    error messages, which quote what the user typed, are withheld."""
    run_cli("hello", "bob", "--shout", OTEL_EXPANSION_LEVEL="full", **LOCAL)
    run_cli("hello", "bob", "--Zebediah-pass", OTEL_EXPANSION_LEVEL="full", **LOCAL)
    first, second = commands(home)
    assert first["args"] == ("--shout",)
    assert "args" not in second or second["args"] == ()
    assert "Zebediah" not in repr(journal_records(home))
