"""Off means off, checked in real subprocesses: no file, no thread, no socket, no child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_env, quiet_period
from tests.export.servers import otlp_server

PROBE = r"""
import json, os, socket, sys, threading
opened = []
real_connect = socket.socket.connect
def spy(self, address):
    opened.append(str(address))
    return real_connect(self, address)
socket.socket.connect = spy
spawned = []
real_spawn = os.posix_spawn
os.posix_spawn = lambda *a, **k: spawned.append(a[0]) or real_spawn(*a, **k)
import click
import otel_expansion
t = otel_expansion.init("probe", opt_out_env="PROBE_NO_TELEMETRY")
@click.command()
def hello():
    otel_expansion.feature("f", x=1)
    click.echo("hi")
try:
    hello([])
except SystemExit:
    pass
enabled = t.enabled
otel_expansion.shutdown()
print(json.dumps({"enabled": enabled, "threads": threading.active_count(), "connects": opened,
                  "spawned": spawned, "modules": sorted(m for m in sys.modules if m.startswith("otel_expansion"))}))
"""


@pytest.mark.parametrize(
    "env",
    [{"DO_NOT_TRACK": "1"}, {"OTEL_SDK_DISABLED": "true"}, {"PROBE_NO_TELEMETRY": "1"},
     {"OTEL_EXPANSION_LEVEL": "off"}, {"DO_NOT_TRACK": "1", "OTEL_EXPANSION_LEVEL": "full"}],
)
def test_off_means_off(tmp_path: Path, env: dict[str, str]) -> None:
    """Each opt-out leaves no directory, starts no thread or process and opens no connection."""
    home = tmp_path / "home"
    with otlp_server() as srv:
        full_env = clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, **env)
        result = subprocess.run([sys.executable, "-c", PROBE], env=full_env, capture_output=True, text=True,
                                timeout=30, cwd=ROOT)
        quiet_period(0.5)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.splitlines()[-1])
        assert srv.requests == []
    assert report["enabled"] is False and report["threads"] == 1
    assert report["connects"] == [] and report["spawned"] == []
    assert not home.exists()
    assert "otel_expansion.export.launcher" not in report["modules"]


def test_on_for_contrast(tmp_path: Path) -> None:
    """The same probe with telemetry on does write and spawn: the off test is not vacuous."""
    home = tmp_path / "home"
    full_env = clean_env(home, OTEL_EXPANSION_SEND="false")
    result = subprocess.run([sys.executable, "-c", PROBE], env=full_env, capture_output=True, text=True, timeout=30,
                            cwd=ROOT)
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["enabled"] is True and home.exists() and report["connects"] == []
