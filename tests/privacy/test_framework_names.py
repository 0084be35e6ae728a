"""Frameworks record only what the program declares: command names, sub-commands and flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    assert [c["name"] for c in run(tmp_path, CLICK_PLUGINS, "jane.doe")] == ["<dynamic>"]


def test_click_declared_command_is_kept(tmp_path: Path) -> None:
    """A declared command keeps its name and only its declared flags."""
    (cmd,) = run(tmp_path, CLICK_PLUGINS, "sync", "--force")
    assert cmd["name"] == "sync" and cmd["args"] == ("--force",)


def test_argparse_keeps_only_declared_flags(tmp_path: Path) -> None:
    """argparse at full: a mistyped flag (maybe someone's value) is dropped, declared ones kept."""
    (cmd,) = run(tmp_path, ARGPARSE, "-v", "sync", "--name", "x", "--jane-doe-1985", "--pasword=hunter2")
    assert cmd["name"] == "sync" and cmd["args"] == ("-v", "--name")


ARGPARSE_SHORT = r"""
import argparse, otel_expansion
otel_expansion.init("argp")
parser = argparse.ArgumentParser()
parser.add_argument("-v", "--verbose", action="store_true")
parser.add_argument("-q", action="store_true")
parser.add_argument("-x", action="count")
parser.add_argument("-t", "--tag")
parser.add_argument("rest", nargs="*")
parser.parse_known_args()
"""


def test_argparse_flags_are_named_once_and_split_from_clusters_by_the_parser(tmp_path: Path) -> None:
    """A flag given 32 times is named once; `-vqtVALUE` gives -v, -q and -t (the parser says -v and -q
    take no value and -t takes the rest), never the value, nor letters of a value (`-tvq`: -t's value is vq)."""
    (cmd,) = run(tmp_path, ARGPARSE_SHORT, *["--verbose"] * 32, "-vqtjane.doe", "-xxx", "-x", "pos")
    assert cmd["args"] == ("--verbose", "-v", "-x", "-q", "-t"), cmd
    (cmd,) = run(tmp_path / "b", ARGPARSE_SHORT, "-tvq", "-xq")
    assert cmd["args"] == ("-t", "-x", "-q"), cmd


CLICK_SHORT = r"""
import click, otel_expansion
otel_expansion.init("clk")

@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True)
@click.option("-q", is_flag=True)
@click.option("-x", count=True)
@click.option("-t", "--tag")
@click.option("-p", "--password")
@click.argument("rest", nargs=-1)
def main(verbose, q, x, tag, password, rest):
    pass

main()
"""


def test_click_flags_are_split_from_clusters_by_the_declarations(tmp_path: Path) -> None:
    """click reads `-vqtVALUE` as -v, -q and -t with the value VALUE: the flags are kept, never the
    value nor letters of it (`-tvq`: -t's value is vq); an argument that is an option's value (after
    `-p`, `--password` or a cluster ending in `p`) names nothing, not even its first letter; an undeclared
    letter ends a cluster and its possible value."""
    (cmd,) = run(tmp_path, CLICK_SHORT, *["--verbose"] * 32, "-vqtjane.doe", "-xxx", "-x", "pos")
    assert cmd["args"] == ("--verbose", "-v", "-q", "-t", "-x"), cmd
    (cmd,) = run(tmp_path / "b", CLICK_SHORT, "-tvq", "-xq")
    assert cmd["args"] == ("-t", "-x", "-q"), cmd
    (cmd,) = run(tmp_path / "c", CLICK_SHORT, "--password", "-vqx", "-p", "-qx", "-vp", "-xq", "-qz", "-xv")
    assert cmd["args"] == ("--password", "-p", "-v", "-q"), cmd  # -x only ever in a value
    (cmd,) = run(tmp_path / "d", CLICK_SHORT, "-qv", "--", "-xt")
    assert cmd["args"] == ("-q", "-v"), cmd
    (cmd,) = run(tmp_path / "e", CLICK_SHORT, "-h")  # the help option the app names
    assert cmd["args"] == ("-h",), cmd


OPTPARSE_SHORT = r"""
import optparse, otel_expansion
otel_expansion.init("opt")
parser = optparse.OptionParser()
parser.add_option("-v", "--verbose", action="store_true")
parser.add_option("-q", action="store_true")
parser.add_option("-x", action="count")
parser.add_option("-t", "--tag")
parser.add_option("-p", "--password")
parser.parse_args()
"""


def test_optparse_flags_are_split_from_clusters_by_the_declarations(tmp_path: Path) -> None:
    """optparse reads clusters as click does (`-vqtVALUE`: -v, -q, -t; `-tvq`: -t's value is vq), and
    an option's value is never read as flags (`-p -qx`: -qx is the password)."""
    (cmd,) = run(tmp_path, OPTPARSE_SHORT, *["--verbose"] * 32, "-vqtjane.doe", "-xxx", "-x", "pos")
    assert cmd["args"] == ("--verbose", "-v", "-q", "-t", "-x"), cmd
    (cmd,) = run(tmp_path / "b", OPTPARSE_SHORT, "-tvq", "-xq", "--password", "-vqx", "-p", "-qx", "-vp", "-xq")
    assert cmd["args"] == ("-t", "-x", "-q", "--password", "-p", "-v"), cmd


OPTPARSE_NARGS = r"""
import optparse, otel_expansion
otel_expansion.init("opt")
parser = optparse.OptionParser(add_help_option=False)
parser.add_option("-h", "--host")
parser.add_option("-v", action="store_true")
parser.add_option("-n", type="int")
parser.add_option("--pair", nargs=2)
parser.parse_args()
"""


def test_optparse_flags_follow_nargs_and_abbreviations(tmp_path: Path) -> None:
    """`--pair -v -h` gives --pair its two values (neither is a flag); `--ho=x` is optparse's abbreviation
    of --host; `-n -5` is -n with the value -5."""
    (cmd,) = run(tmp_path, OPTPARSE_NARGS, "--pair", "-v", "-h", "-n", "-5", "--ho=x", "-v")
    assert cmd["args"] == ("--pair", "-n", "--host", "-v"), cmd


NAMES_FILE = "import json, os\nNAMES = json.load(open(os.environ['NAMES_FILE']))\n"

CLICK_LISTED_PLUGINS = NAMES_FILE + r"""
import click, otel_expansion
otel_expansion.init("plugins")

class DiskPlugins(click.Group):
    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *NAMES])

    def get_command(self, ctx, name):
        if name in NAMES:
            return click.Command(name, callback=lambda: None)
        return super().get_command(ctx, name)

@click.group(cls=DiskPlugins)
def cli():
    pass

@cli.command("GET")
def get():
    pass

cli()
"""

TYPER_LOOP = NAMES_FILE + r"""
import typer, otel_expansion
otel_expansion.init("loop")
app = typer.Typer(add_completion=False)

def make(name):
    def run():
        pass
    return run

for name in NAMES:
    app.command(name)(make(name))

@app.command("application/json")
def as_json():
    pass

app()
"""

ARGPARSE_LIST = NAMES_FILE + r"""
import argparse, otel_expansion
otel_expansion.init("argp")
parser = argparse.ArgumentParser(prog="tool")
sub = parser.add_subparsers(dest="cmd")
for name in NAMES:
    sub.add_parser(name)
for name in ("1.2.0", ".csv"):
    sub.add_parser(name)
parser.parse_args()
"""

HAND_DISPATCH = NAMES_FILE + r"""
import argparse, sys, otel_expansion
otel_expansion.init("hand")
top = argparse.ArgumentParser(prog="tool")
top.add_argument("cmd")
args, rest = top.parse_known_args()
second = argparse.ArgumentParser(prog=f"tool {args.cmd}")
second.add_argument("--x")
second.parse_args(rest)
"""

_RUNS = __import__("itertools").count()
DYNAMIC_NAMES = ["Łukasz Żółć", "ψ-ops.Ωmega", "pl61109010140000071219812874"]


def run_names(tmp_path: Path, source: str, *args: str) -> list[str]:
    import json
    import os

    tmp_path = tmp_path / f"run{next(_RUNS)}"
    tmp_path.mkdir()
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps(DYNAMIC_NAMES), encoding="utf-8")
    os.environ["NAMES_FILE"] = str(names_file)
    try:
        return [str(c["name"]) for c in run(tmp_path, source, *args)]
    finally:
        del os.environ["NAMES_FILE"]


@pytest.mark.parametrize("name", DYNAMIC_NAMES)
def test_click_group_listing_plugins_is_not_a_declaration(tmp_path: Path, name: str) -> None:
    """A name found in a group's own list_commands()/get_command() (plugins on disk) is <dynamic>."""
    assert run_names(tmp_path, CLICK_LISTED_PLUGINS, name) == ["<dynamic>"]


def test_click_literal_name_keeps_its_shape(tmp_path: Path) -> None:
    """@cli.command("GET"): written in code, kept as written."""
    assert run_names(tmp_path, CLICK_LISTED_PLUGINS, "GET") == ["GET"]


def test_typer_commands_registered_in_a_loop_are_dynamic(tmp_path: Path) -> None:
    """app.command(name) over names read at run time: <dynamic>; a literal one is kept."""
    assert run_names(tmp_path, TYPER_LOOP, DYNAMIC_NAMES[1]) == ["<dynamic>"]
    assert run_names(tmp_path, TYPER_LOOP, "application/json") == ["application/json"]


def test_argparse_subparsers_from_a_list_are_dynamic(tmp_path: Path) -> None:
    """add_parser(name) over names read at run time: <dynamic>; names from a literal tuple are kept."""
    assert run_names(tmp_path, ARGPARSE_LIST, DYNAMIC_NAMES[0]) == ["<dynamic>"]
    assert run_names(tmp_path, ARGPARSE_LIST, "1.2.0") == ["1.2.0"]


def test_hand_dispatch_prog_from_user_input_is_dynamic(tmp_path: Path) -> None:
    """A second parser whose prog is built from the typed word names nobody."""
    assert run_names(tmp_path, HAND_DISPATCH, DYNAMIC_NAMES[2], "--x", "1") == ["<dynamic>"]
