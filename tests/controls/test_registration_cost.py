"""Adding the `telemetry` group costs the host nothing on its common path: the commands load only when run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_env
from tests.test_import_cost import HEAVY

PROBES = {
    "click": """
import json, sys, time
import click
before = set(sys.modules)
import otel_expansion
otel_expansion.init("m")
@click.group()
def cli(): pass
@cli.command()
def go(): pass
t0 = time.perf_counter()
otel_expansion.add_telemetry_commands(cli)
took = time.perf_counter() - t0
cli(["go"], standalone_mode=False)
otel_expansion.shutdown()
print(json.dumps([sorted(set(sys.modules) - before), took]))
""",
    "argparse": """
import json, sys, time
import argparse
before = set(sys.modules)
import otel_expansion
otel_expansion.init("m")
parser = argparse.ArgumentParser(prog="m")
sub = parser.add_subparsers(dest="cmd", required=True)
sub.add_parser("go")
t0 = time.perf_counter()
otel_expansion.add_telemetry_commands(parser)
took = time.perf_counter() - t0
parser.parse_args(["go"])
otel_expansion.shutdown()
print(json.dumps([sorted(set(sys.modules) - before), took]))
""",
}


@pytest.mark.parametrize("framework", list(PROBES))
def test_registration_loads_nothing_heavy_and_not_the_commands(framework: str, tmp_path: Path) -> None:
    """init + add_telemetry_commands + an ordinary command: only the tiny adapter loads, nothing heavy."""
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")
    result = subprocess.run([sys.executable, "-c", PROBES[framework]], env=env, capture_output=True, text=True,
                            timeout=60, cwd=ROOT, check=True)
    loaded, _took = json.loads(result.stdout)
    assert list((tmp_path / "home").glob("journal*/*.rec"))  # the probe did record and flush
    ours = sorted(m for m in loaded if m.startswith("otel_expansion.controls"))
    adapter = "_argparse" if framework == "argparse" else "_click"
    assert ours == ["otel_expansion.controls", f"otel_expansion.controls.{adapter}"]
    assert "otel_expansion.cli.main" not in loaded
    offenders = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert offenders == []


def test_a_cli_without_the_commands_or_declarations_never_loads_them(tmp_path: Path) -> None:
    """The new public names are loaded on first use: an app that uses neither pays nothing for them."""
    from tests.test_import_cost import PROBE

    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=30,
                            cwd=ROOT, check=True)
    loaded = json.loads(result.stdout)
    assert "otel_expansion.journal" in loaded and list((tmp_path / "home").glob("journal*/*.rec"))  # recorded
    assert not [m for m in loaded if m.startswith(("otel_expansion.controls", "otel_expansion.collect.features"))]
