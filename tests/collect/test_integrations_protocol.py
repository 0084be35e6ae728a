"""Each framework integration is a module implementing the Integration protocol (install, finish, uninstall)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion.collect.integrations import INTEGRATIONS
from tests.conftest import ROOT, clean_env, journal_records


@pytest.mark.parametrize("framework", sorted(INTEGRATIONS))
def test_integration_module_implements_the_protocol(framework: str) -> None:
    """install(telemetry), finish(telemetry) and uninstall() exist with those parameters."""
    module = importlib.import_module(INTEGRATIONS[framework])
    shapes = {name: list(inspect.signature(getattr(module, name)).parameters) for name in
              ("install", "finish", "uninstall")}
    assert shapes == {"install": ["telemetry"], "finish": ["telemetry"], "uninstall": []}


LATE_IMPORT = """
import sys
import otel_expansion
otel_expansion.init("late", "1.0")
assert "{framework}" not in sys.modules
{program}
"""

LATE_PROGRAMS = {
    "click": ("import click\n"
              "@click.group()\n"
              "def cli(): pass\n"
              "@cli.command()\n"
              "def deploy(): click.echo('ok')\n"
              "cli(['deploy'], standalone_mode=False)\n"),
    "argparse": ("import argparse\n"
                 "parser = argparse.ArgumentParser(prog='late')\n"
                 "sub = parser.add_subparsers(dest='cmd')\n"
                 "sub.add_parser('deploy')\n"
                 "parser.parse_args(['deploy'])\n"
                 "print('ok')\n"),
}


@pytest.mark.parametrize("framework", sorted(LATE_PROGRAMS))
def test_a_framework_imported_after_init_is_instrumented_once(framework: str, tmp_path: Path) -> None:
    """init() before the framework's import: the watcher on ``sys.meta_path`` installs the integration right
    after the framework's module has executed (the command is named by it, not the fallback run's program
    name), it leaves ``sys.meta_path`` once the run is recorded, and a second import changes nothing."""
    program = LATE_IMPORT.format(framework=framework, program=LATE_PROGRAMS[framework]) + (
        "import importlib\n"
        f"importlib.import_module('{framework}')\n"
        "otel_expansion.shutdown()\n"
        "print(sum(type(getattr(f, 'otel_expansion_post_import', None)) is set for f in sys.meta_path))\n")
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.stdout.split() == ["ok", "0"], result.stderr
    (record,) = journal_records(tmp_path / "home")
    commands = record["commands"]
    assert isinstance(commands, list) and [c["name"] for c in commands] == ["deploy"]
