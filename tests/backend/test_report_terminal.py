"""`otel-expansion report` prints stored names so that none can add a line or drive the reader's terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, clean_env

from .conftest import LiveServer, metrics_request, ns, span, sum_metric, traces_request

HOSTILE_COMMAND = "cmd\x1b[1mBOLD\r\nfake line\tx\u202eevil\u2066iso\u2028sep\x85nel"
HOSTILE_SERVICE = "app\nInvocations 999999"
APP = {"service.name": HOSTILE_SERVICE, "service.version": "1.0\r\x1b[2K", "otel_expansion.installation.id": "i1"}
ATTRS = {"cli.command.name": HOSTILE_COMMAND, "cli.command.outcome": "error", "error.type": "Bad\nError"}


def _report(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otel_expansion", "report", "--db", str(db), *args],
                          env=clean_env(db.parent / "home"), capture_output=True, text=True, timeout=60, cwd=ROOT)


def _unsafe(text: str) -> list[str]:
    return [c for c in text if not c.isprintable() and c != "\n"]


def test_posted_names_print_as_one_cell_each(live_server: LiveServer) -> None:
    """A command, app, version and error type POSTed with CR, LF, TAB, ESC, NEL and bidi controls: each
    becomes `?` in its cell, the report has exactly the lines a clean name gives, nothing else is unsafe."""
    metrics = metrics_request((APP, [sum_metric("cli.command.invocations", [(ATTRS, 3, ns(2))])]))
    traces = traces_request((APP, [span("cli.command", ATTRS, ns(2), ns(2) + 10**8, 1, 1, error=True)]))
    assert live_server.post("metrics", metrics).status == 200
    assert live_server.post("traces", traces).status == 200
    result = _report(live_server.db_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert _unsafe(out) == [], [hex(ord(c)) for c in _unsafe(out)]
    assert "cmd?[1mBOLD??fake line?x?evil?iso?sep?nel" in out
    assert not any(line.startswith("fake line") or line.startswith("Invocations 999999") for line in out.splitlines())
    assert "app?Invocations 999999" in out and "1.0??[2K" in out
    assert out.count("\n") == len(out.splitlines())  # no line separator other than our own newlines

    missing = _report(live_server.db_path, "--version", "9.9")  # the known versions, named in the error
    assert missing.returncode == 1 and _unsafe(missing.stderr.rstrip("\n")) == [], missing.stderr
    assert "1.0??[2K" in missing.stderr
