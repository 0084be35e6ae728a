"""Frameworks record only what the program declares: command names, sub-commands and flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, clean_env, journal_records

CLICK_PLUGINS = r"""
import click, otel_expansion
otel_expansion.init("plugins")

class PluginGroup(click.Group):
    def get_command(self, ctx, name):
        found = super().get_command(ctx, name)
        if found is not None:
            return found
        return click.Command(name, callback=lambda: None)

@click.group(cls=PluginGroup)
def cli():
    pass

@cli.command()
@click.option("--force", is_flag=True)
def sync(force):
    pass

cli()
"""

ARGPARSE = r"""
import argparse, otel_expansion
otel_expansion.init("argp")
parser = argparse.ArgumentParser()
parser.add_argument("-v", "--verbose", action="store_true")
sub = parser.add_subparsers(dest="cmd")
p = sub.add_parser("sync")
p.add_argument("--name")
parser.parse_known_args()
"""


def run(tmp_path: Path, source: str, *args: str) -> list[dict[str, object]]:
    home = tmp_path / "home"
    script = tmp_path / "jsmith" / "tool.py"
    script.parent.mkdir(parents=True)
    script.write_text(source)
    result = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env=clean_env(home, OTEL_EXPANSION_LEVEL="full", OTEL_EXPANSION_SEND="false"))
    assert result.returncode == 0, result.stderr
    return [c for rec in journal_records(home) for c in rec["commands"]]  # type: ignore[attr-defined]


def test_click_plugin_name_is_a_placeholder(tmp_path: Path) -> None:
    """git/kubectl-style groups: a typed name that runs a plugin is not a declared command."""
    assert [c["name"] for c in run(tmp_path, CLICK_PLUGINS, "jane.doe")] == ["<undeclared>"]


def test_click_declared_command_is_kept(tmp_path: Path) -> None:
    """A declared command keeps its name and only its declared flags."""
    (cmd,) = run(tmp_path, CLICK_PLUGINS, "sync", "--force")
    assert cmd["name"] == "sync" and cmd["args"] == ("--force",)


def test_argparse_keeps_only_declared_flags(tmp_path: Path) -> None:
    """argparse at full: a mistyped flag (maybe someone's value) is dropped, declared ones kept."""
    (cmd,) = run(tmp_path, ARGPARSE, "-v", "sync", "--name", "x", "--jane-doe-1985", "--pasword=hunter2")
    assert cmd["name"] == "sync" and cmd["args"] == ("-v", "--name")
