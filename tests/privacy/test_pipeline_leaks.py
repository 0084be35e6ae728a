"""The PII corpus through the whole pipeline, at every level: zero leaks, on disk or on the wire.

Each case's text is used the ways an app can hand us data (a command name, feature attributes, an
exception message and a handled exception) in a real subprocess; then the journal and spool files and
every exported OTLP byte (protobuf and JSON) are searched for the secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion.config import Level, resolve
from otel_expansion.workers.sender import run_round
from tests.conftest import ROOT, clean_env, temp_environ
from tests.export.servers import otlp_server
from tests.privacy.pii_corpus import PII_CASES

APP = r"""
import sys
import otel_expansion
from tests.privacy.pii_corpus import PII_CASES
otel_expansion.init("leakcheck", mode=sys.argv[1])
for case in PII_CASES:
    try:
        with otel_expansion.command(case.text):
            otel_expansion.feature("note", text=case.text, nested={"inner": [case.text]})
            otel_expansion.record_exception(ValueError(case.text))
            raise RuntimeError("failed: " + case.text)
    except RuntimeError:
        pass
"""


def leaks(blob: bytes) -> list[str]:
    return sorted({c.secret for c in PII_CASES if c.secret.encode() in blob})


def files_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


@pytest.mark.parametrize(("level", "mode", "protocol"), [
    ("basic", "cli", "http/protobuf"),
    ("enhanced", "cli", "http/protobuf"),
    ("full", "cli", "http/protobuf"),
    ("full", "cli", "http/json"),
    ("full", "service", "http/protobuf"),
])
def test_no_secret_survives(tmp_path: Path, level: str, mode: str, protocol: str) -> None:
    """Nothing stored and nothing sent contains any corpus secret."""
    home = tmp_path / "home"
    env = clean_env(home, OTEL_EXPANSION_LEVEL=level, OTEL_EXPANSION_SEND="false",
                    OTEL_RESOURCE_ATTRIBUTES="deployment.owner=qwertina.smith@example.org")
    script = tmp_path / "leakcheck_app.py"  # a file: code from `python -c` is nobody's own text
    script.write_text(APP, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script), mode], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert leaks(files_bytes(home)) == []  # nothing is stored before it is redacted
    with otlp_server() as srv, temp_environ(OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url):
        settings = resolve("sender", environ=os.environ, home=str(home), level=Level.FULL)
        summary = run_round(str(home), settings, force=True, deadline_s=60, lock_wait_s=60)
        assert summary.ok, summary.error
        sent = b"".join(r.body for r in srv.requests)
    assert len(sent) > 1000 and b"leakcheck" in sent
    assert leaks(sent) == []
    assert leaks(files_bytes(home)) == []
    if level == "full":  # the data did arrive: the program's own text, interpolated values as placeholders
        assert b"failed: <value>" in sent


HOST_PROBE = r"""
import os, sys
from otel_expansion.privacy.redaction import Redactor
r = Redactor()
node = os.uname().nodename
print(r.redact(f"cannot reach {node} or build-server today"))
"""


def test_host_name_is_redacted(tmp_path: Path) -> None:
    """The machine's own name never survives redaction (checked in a private UTS namespace)."""
    script = tmp_path / "probe.py"
    script.write_text(HOST_PROBE)
    cmd = f"hostname build-server.internal.acme.io && {sys.executable} {script}"
    result = subprocess.run(["unshare", "--uts", "sh", "-c", cmd], env=clean_env(tmp_path), cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "acme.io" not in result.stdout and "build-server" not in result.stdout
    assert result.stdout.strip() == "cannot reach <host> or <host> today"
