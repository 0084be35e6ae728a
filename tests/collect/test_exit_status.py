"""The recorded outcome is the process's last word, in real subprocesses: caught exits, late imports,
Ctrl-C (the process still dies by SIGINT), hand-dispatched and delegating commands, start-up time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, journal_records

LOCAL = {"OTEL_EXPANSION_SEND": "false"}


def run_program(tmp_path: Path, source: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                            list[dict[str, Any]]]:
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent(source))
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, str(script), *args], env=clean_env(home, **LOCAL, **env),
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    cmds = [c for r in journal_records(home) for c in r["commands"]]  # type: ignore[attr-defined]
    return result, cmds


def outcome(cmd: dict[str, Any]) -> tuple[str, int, str | None]:
    return cmd["name"], cmd["exit"], cmd.get("error")


CAUGHT_USAGE = """
import sys
import otel_expansion
otel_expansion.init("tool")

def main():
    import argparse  # imported late, inside main(), after sys.exit was looked up below
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--n", type=int)
    try:
        args = parser.parse_args()
    except SystemExit as exc:
        return 1 if exc.code else 0
    return 3 if args.n else 0

sys.exit(main())
"""


@pytest.mark.parametrize(("args", "code", "error"), [
    ((), 0, None),
    (("--n", "x"), 1, "argparse.ArgumentError"),  # argparse exits 2, the program catches it and exits 1
    (("--n", "5"), 3, "3"),
])
def test_argparse_imported_late_and_caught_usage_error(tmp_path: Path, args: tuple[str, ...], code: int,
                                                      error: str | None) -> None:
    """``sys.exit(main())`` with argparse imported inside main(): the status the shell sees is recorded."""
    result, cmds = run_program(tmp_path, CAUGHT_USAGE, *args)
    assert result.returncode == code
    assert [outcome(c) for c in cmds] == [("tool", code, error)]


def test_exit_codes_as_the_shell_sees_them(tmp_path: Path) -> None:
    """``sys.exit(-1)`` exits 255 and ``sys.exit(True)`` exits 1: recorded so."""
    source = """
    import sys
    import otel_expansion
    otel_expansion.init("tool")
    def main():
        import argparse
        argparse.ArgumentParser().parse_known_args()
        return -1 if sys.argv[-1:] == ["neg"] else True
    sys.exit(main())
    """
    for arg, code in (("neg", 255), ("true", 1)):
        result, cmds = run_program(tmp_path, source, arg)
        assert result.returncode == code
        assert [c["exit"] for c in cmds][-1] == code
        (tmp_path / "home").rename(tmp_path / f"home-{arg}")


HAND_DISPATCH = """
import argparse, sys
import otel_expansion
otel_expansion.init("tool")

def check(argv):
    parser = argparse.ArgumentParser(prog="tool check")
    parser.add_argument("path")
    parser.parse_args(argv)
    otel_expansion.record_exception(ValueError("handled"))
    return 0

parser = argparse.ArgumentParser(prog="tool")
parser.add_argument("command", choices=["check"])
parser.add_argument("args", nargs=argparse.REMAINDER)
ns = parser.parse_args()
sys.exit(check(ns.args))
"""


def test_hand_dispatched_subcommand_and_record_exception_label(tmp_path: Path) -> None:
    """A second parser whose prog names the subcommand: recorded as that subcommand, and so is a handled
    exception recorded inside it."""
    home = tmp_path / "home"
    result, cmds = run_program(tmp_path, HAND_DISPATCH, "check", "x")
    assert result.returncode == 0
    assert [outcome(c) for c in cmds] == [("check", 0, None)]
    (record,) = journal_records(home)
    assert [e["command"] for e in record["exceptions"]] == ["check"]  # type: ignore[attr-defined]
    result, cmds = run_program(tmp_path, HAND_DISPATCH, "check")
    assert result.returncode == 2 and outcome(cmds[-1]) == ("check", 2, "argparse.ArgumentError")


CLICK_INVOKE = """
import click
import otel_expansion
otel_expansion.init("rows-tool")

@click.group()
def cli():
    pass

@cli.command()
@click.argument("sql")
def query(sql):
    if sql == "bad":
        raise click.ClickException("no such table")
    click.echo(sql)

@cli.command()
@click.argument("sql", default="select 1")
@click.pass_context
def rows(ctx, sql):
    otel_expansion.record_exception(ValueError("seen in rows"))
    ctx.invoke(query, sql=sql)

cli()
"""


@pytest.mark.parametrize(("args", "code", "error"), [(("rows",), 0, None),
                                                      (("rows", "bad"), 1, "click.exceptions.ClickException")])
def test_ctx_invoke_is_named_by_what_the_user_invoked(tmp_path: Path, args: tuple[str, ...], code: int,
                                                      error: str | None) -> None:
    """``rows`` delegating with ``ctx.invoke(query)`` is recorded as ``rows``, not ``rows query``."""
    home = tmp_path / "home"
    result, cmds = run_program(tmp_path, CLICK_INVOKE, *args)
    assert result.returncode == code, result.stderr
    assert [outcome(c) for c in cmds] == [("rows", code, error)]
    (record,) = journal_records(home)
    assert [e["command"] for e in record["exceptions"]] == ["rows"]  # type: ignore[attr-defined]


TYPER_CTRL_C = """
import os, signal
import typer
import otel_expansion
otel_expansion.init("ttool")
app = typer.Typer()

@app.command()
def wait():
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()

@app.command()
def other():
    pass

app()
"""


def test_typer_ctrl_c_is_130(tmp_path: Path) -> None:
    """typer turns KeyboardInterrupt into exit 130: recorded as 130 / KeyboardInterrupt. (typer 0.12, the
    lowest declared, ends such a run through click's Abort with exit 1: whatever the version does, the status
    is the program's own, as without telemetry, and the record says exactly that.)"""
    result, cmds = run_program(tmp_path, TYPER_CTRL_C, "wait")
    bare, _ = run_program(tmp_path, TYPER_CTRL_C, "wait", DO_NOT_TRACK="1")
    assert result.returncode == bare.returncode
    assert [(name, code) for name, code, _ in map(outcome, cmds)] == [("wait", result.returncode)]
    if result.returncode == 130:
        assert [outcome(c) for c in cmds] == [("wait", 130, "KeyboardInterrupt")]


UNCAUGHT_CTRL_C = """
import os, signal, sys
import otel_expansion
otel_expansion.init("kill-tool", mode=sys.argv[1])
with otel_expansion.command("wait"):
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()
"""


@pytest.mark.parametrize("mode", ["cli", "service"])
def test_uncaught_ctrl_c_still_dies_by_sigint(tmp_path: Path, mode: str) -> None:
    """An escaped KeyboardInterrupt kills the process by SIGINT, as without telemetry, in both modes."""
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent(UNCAUGHT_CTRL_C))
    env = clean_env(tmp_path / "home", **LOCAL)
    bare = subprocess.run([sys.executable, str(script), mode], env={**env, "DO_NOT_TRACK": "1"},
                          capture_output=True, timeout=60)
    result = subprocess.run([sys.executable, str(script), mode], env=env, capture_output=True, timeout=60)
    assert bare.returncode == result.returncode == -signal.SIGINT
    assert result.stderr == bare.stderr


def test_startup_time_is_recorded_once_at_enhanced(tmp_path: Path) -> None:
    """Process start to the command's start is recorded with the first command (Linux /proc)."""
    source = """
    import otel_expansion
    otel_expansion.init("tool")
    for name in ("a", "b"):
        with otel_expansion.command(name):
            pass
    """
    _, cmds = run_program(tmp_path, source)
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("start-up time is read from /proc (Linux)")
    assert 0 < cmds[0]["startup"] < 60 and "startup" not in cmds[1]
    _, basic = run_program(tmp_path, source, OTEL_EXPANSION_LEVEL="basic")
    assert "startup" not in basic[-1]
