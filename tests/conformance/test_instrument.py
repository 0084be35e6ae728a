"""``opentelemetry-instrument`` with our distro chosen, beside the stock opentelemetry-distro: the program's
output is its own, OTEL_EXPANSION_DEBUG works, and service.version comes from the program's distribution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.harness import BIN
from tests.conformance.test_real_programs import _base_env

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, *args: str, instrument: bool = True, **env: str) -> subprocess.CompletedProcess[bytes]:
    base = _base_env(tmp_path)
    base.update(OTEL_EXPANSION_HOME=str(tmp_path / "state"), OTEL_EXPANSION_SEND="false", **env)
    argv = [sys.executable, str(BIN / "pygmentize"), *args]
    if instrument:
        argv = [str(BIN / "opentelemetry-instrument"), *argv]
    return subprocess.run(argv, env=base, capture_output=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("chosen", [{"OTEL_PYTHON_DISTRO": "otel_expansion"},
                                    {"OTEL_PYTHON_DISTRO": "otel_expansion",
                                     "OTEL_PYTHON_CONFIGURATOR": "otel_expansion"}])
def test_no_configurator_warning_on_stderr(tmp_path: Path, chosen: dict[str, str]) -> None:
    """The loader's "Configuration of configurator not loaded" line never reaches the program's stderr."""
    bare = _run(tmp_path, "-V", instrument=False)
    for off in ("0", "1"):
        result = _run(tmp_path, "-V", DO_NOT_TRACK=off, **chosen)
        assert (result.returncode, result.stdout, result.stderr) == (bare.returncode, bare.stdout, bare.stderr)


def test_debug_prints_each_record(tmp_path: Path) -> None:
    """OTEL_EXPANSION_DEBUG=1 prints the run's record on stderr under opentelemetry-instrument too."""
    result = _run(tmp_path, "-V", OTEL_PYTHON_DISTRO="otel_expansion", OTEL_EXPANSION_DEBUG="1",
                  OTEL_EXPANSION_DEBUG_JSON="1")
    assert result.returncode == 0
    assert b'otel-expansion debug: recorded' in result.stderr and b'"name": "pygmentize"' in result.stderr


def test_service_version_from_the_programs_distribution(tmp_path: Path) -> None:
    """Nobody gave a version: the running console script's distribution metadata supplies it."""
    import time
    from importlib.metadata import version

    from otel_expansion.config.paths import SPOOL_FILE
    from otel_expansion.spool.store import Spool
    from otel_expansion.workers.sender import ingest_journal, sender_lock, settings_for

    assert _run(tmp_path, "-V", OTEL_PYTHON_DISTRO="otel_expansion").returncode == 0
    home = tmp_path / "state"
    # the short run's exit handed its command to the journal: replay it with the sender's own code
    with sender_lock(str(home), 60.0), Spool.open(home / SPOOL_FILE) as spool:
        ingest_journal(str(home), spool, settings_for(str(home)), time.monotonic() + 60)
        batch = spool.next_batch()
    assert batch is not None and batch.spans
    resource = dict(batch.spans[0].resource)
    assert resource["service.name"] == "pygmentize"
    assert resource["service.version"] == version("Pygments")
