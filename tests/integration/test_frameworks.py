"""argparse and typer CLIs as real subprocesses: exact command paths, exit codes and error types."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli, journal_records

LOCAL = {"OTEL_EXPANSION_SEND": "false"}


def only_command(home: Path) -> dict[str, object]:
    cmds = [c for r in journal_records(home) for c in r["commands"]]  # type: ignore[attr-defined]
    assert len(cmds) == 1
    return cmds[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("args", "name", "code", "error"),
    [
        (["db", "migrate", "--password", "hunter2"], "db migrate", 0, None),
        (["crash"], "crash", 1, "ValueError"),
        (["nope"], "argcli", 2, "argparse.ArgumentError"),  # a script: the root is the service name
    ],
)
def test_argparse(run_cli: RunCli, home: Path, args: list[str], name: str, code: int, error: str | None) -> None:
    """argparse runs end at exit with the status Python exits with."""
    result = run_cli(*args, script="argparse_cli.py", **LOCAL)
    assert result.returncode == code
    cmd = only_command(home)
    assert (cmd["name"], cmd["exit"], cmd.get("error")) == (name, code, error)


def test_argparse_full_level_keeps_flag_names_only(run_cli: RunCli, home: Path) -> None:
    """At full, --password is recorded as a flag name; its value never is."""
    run_cli("db", "migrate", "--password", "hunter2", script="argparse_cli.py", OTEL_EXPANSION_LEVEL="full",
            **LOCAL)
    cmd = only_command(home)
    assert cmd["args"] == ("--password",)
    assert "hunter2" not in repr(journal_records(home))


@pytest.mark.parametrize(
    ("args", "name", "code", "error"),
    [
        (["users", "list", "--limit", "3"], "users list", 0, None),
        (["sync"], "sync", 3, "3"),
        (["sync", "--dry-run"], "sync", 0, None),
        (["nosuch"], "typercli", 2, "UsageError"),  # a script: the root is the service name
        (["crash"], "crash", 1, "ValueError"),
    ],
)
def test_typer(run_cli: RunCli, home: Path, args: list[str], name: str, code: int, error: str | None) -> None:
    """typer apps (running on typer's vendored click) are recorded like click apps."""
    result = run_cli(*args, script="typer_cli.py", **LOCAL)
    assert result.returncode == code
    cmd = only_command(home)
    assert (cmd["name"], cmd["exit"]) == (name, code)
    assert (cmd.get("error") or "").endswith(error or "") and (error is None) == ("error" not in cmd)
