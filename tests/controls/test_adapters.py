"""add_telemetry_commands() on what it supports, and one warning (never an exception) on anything else."""

from __future__ import annotations

import argparse

import click
import pytest
import typer

from otel_expansion import add_telemetry_commands
from otel_expansion.config.warn_once import _said as _warned


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    _warned.clear()


def test_click_group_gains_one_pass_through_command() -> None:
    """A click group gets a `telemetry` command that accepts any arguments and has no options of its own."""

    @click.group()
    def cli() -> None:
        pass

    assert add_telemetry_commands(cli, prog="x") is cli
    command = cli.commands["telemetry"]
    assert [p.name for p in command.params] == ["args"] and "telemetry" in command.help  # type: ignore[operator]


def test_argparse_subparsers_gain_telemetry_and_the_host_parser_is_unchanged() -> None:
    """The host's other subcommands parse exactly as before; `telemetry` is listed among them."""
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("go").add_argument("--n", type=int)
    add_telemetry_commands(parser)
    assert parser.parse_args(["go", "--n", "3"]) == argparse.Namespace(cmd="go", n=3)
    assert "telemetry" in sub.choices and type(sub.choices["go"]) is argparse.ArgumentParser


@pytest.mark.parametrize("target", ["plain", "click-command", "argparse-flat", "typer-single"])
def test_unsupported_targets_warn_once_and_change_nothing(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An object without subcommands: one warning on stderr, the object returned untouched, no exception."""
    obj: object
    if target == "plain":
        obj = object()
    elif target == "click-command":
        obj = click.Command("solo", callback=lambda: None)
    elif target == "argparse-flat":
        obj = argparse.ArgumentParser(prog="flat")
        obj.add_argument("path")
    else:
        obj = typer.Typer()
        obj.command()(lambda: None)
    assert add_telemetry_commands(obj) is obj
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "no `telemetry` command added" in err
    if target == "argparse-flat":
        assert obj.parse_args(["telemetry"]) == argparse.Namespace(path="telemetry")  # type: ignore[attr-defined]
