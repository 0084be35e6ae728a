"""What a CLI's own process imports: pins the startup diet that keeps the overhead in milliseconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, clean_env

PROBE = """
import json, sys
before = set(sys.modules)
import otel_expansion
otel_expansion.init("m")
with otel_expansion.command("deploy"):
    otel_expansion.feature("export", fmt="csv")
otel_expansion.shutdown()
print(json.dumps(sorted(set(sys.modules) - before)))
"""

HEAVY = ("opentelemetry", "google.protobuf", "sqlite3", "psutil", "logging", "subprocess", "threading", "uuid",
         "platform", "dataclasses", "typing", "enum", "re", "json", "http", "ssl", "socket", "importlib.abc")


def test_cli_process_imports_nothing_heavy(tmp_path: Path) -> None:
    """init + a recorded command + exit load no OTel, SQLite, logging, threading, typing or regex modules."""
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=30,
                            cwd=ROOT, check=True)
    loaded = json.loads(result.stdout)
    assert "otel_expansion.journal.store" in loaded  # the probe did record and flush
    offenders = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert offenders == []
