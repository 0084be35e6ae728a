"""The generated PII corpus through real click, typer, argparse and manual programs: zero leaks anywhere.

Every value (and its distinctive substrings) is searched for in every byte we store or send: the OTLP
requests (protobuf and JSON), the state directory (journal, spool, ids), the embedded backend's database
after ingesting those requests, and our own debug lines on stderr. Levels basic/enhanced/full, CLI mode,
service mode and ``opentelemetry-instrument`` with contrib's click instrumentation. The environment
carries values too: OTEL_RESOURCE_ATTRIBUTES (some members malformed), a version with a local label,
the working directory and the script's own folder are named after people.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import pytest

from otel_expansion.config import Level, resolve
from tests.conftest import clean_env, temp_environ
from tests.privacy.corpus import Value, positive, third

pytestmark = pytest.mark.slow

APP = Path(__file__).with_name("leak_app.py")
# round 3 (issue 20): a new seed and locales, every value; round 2's corpus, one value in four (regression)
CORPUS = third() + positive()[::4]

# (framework, level, mode, protocol): every framework at every level in CLI mode (protobuf); JSON, service
# mode and opentelemetry-instrument ("auto", contrib click installed) where they change what is sent.
CONFIGS = [
    *((fw, lvl, "cli", "http/protobuf") for fw in ("click", "typer", "argparse", "manual")
      for lvl in ("basic", "enhanced", "full")),
    ("argparse-usage", "full", "cli", "http/protobuf"),
    ("click", "full", "cli", "http/json"),
    ("manual", "full", "cli", "http/json"),
    ("click", "full", "service", "http/protobuf"),
    ("manual", "enhanced", "service", "http/json"),
    ("click", "enhanced", "auto", "http/protobuf"),
    ("click", "full", "auto", "http/json"),
    # round 3: other instrumentations' metrics (urllib, requests) at every level, and every framework
    # under opentelemetry-instrument; service mode for the frameworks that register names at run time
    ("click", "basic", "auto", "http/protobuf"),
    ("typer", "full", "auto", "http/protobuf"),
    ("argparse", "enhanced", "auto", "http/json"),
    ("manual", "full", "auto", "http/protobuf"),
    ("typer", "enhanced", "service", "http/protobuf"),
    ("argparse", "full", "service", "http/json"),
]
REGISTRY = {"click", "manual"}  # frameworks run with a feature registry (declared attributes may leave)


class Finder:
    """All needles at once (Aho-Corasick over the raw bytes, read as latin-1 so matching is byte-exact)."""

    def __init__(self, values: Iterable[Value]) -> None:
        import ahocorasick

        self.auto = ahocorasick.Automaton()
        for v in values:
            for needle in v.needles:
                key = needle.encode().decode("latin-1")
                if key not in self.auto:
                    self.auto.add_word(key, (len(key), v.category, v.text, needle))
        self.auto.make_automaton()

    def find(self, blob: bytes) -> set[tuple[str, str, str]]:
        """Every needle found. One that starts or ends with a digit must not continue a longer number:
        ``271048566`` inside a CPU time ``0.00271048566`` or a timestamp is a coincidence, not a leak."""
        text = blob.decode("latin-1")
        hits = set()
        for end, (size, category, value, needle) in self.auto.iter(text):
            start = end - size + 1
            if needle[0].isdigit() and start > 0 and text[start - 1].isdigit():
                continue
            if needle[-1].isdigit() and end + 1 < len(text) and text[end + 1].isdigit():
                continue
            hits.add((category, value, needle))
        return hits


def sqlite_text(path: Path) -> bytes:
    """Every stored value of a SQLite file (text, and blobs as stored), beside the raw file bytes."""
    out: list[bytes] = []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in con.execute(f'select * from "{table}"'):
                for cell in row:
                    if isinstance(cell, str):
                        out.append(cell.encode())
                    elif isinstance(cell, bytes):
                        out.append(cell)
    finally:
        con.close()
    return b"\n".join(out)


def state_bytes(home: Path) -> bytes:
    from otel_expansion.journal import store

    out = []
    for p in sorted(home.rglob("*")):
        if not p.is_file():
            continue
        out.append(p.read_bytes())
        if p.suffix == store.SUFFIX:
            out.append(json.dumps(store.read(p), ensure_ascii=False, default=str).encode())
        elif p.read_bytes()[:16] == b"SQLite format 3\x00":
            out.append(sqlite_text(p))
    return b"\n".join(out)


def wire_and_backend(requests: list[object], tmp: Path) -> tuple[bytes, bytes]:
    """The request bodies as sent (JSON also decoded, so escaped non-ASCII is searchable), and the
    embedded backend's database after ingesting them."""
    from otel_expansion.backend.ingest import JSON, PROTOBUF, decode, flatten
    from otel_expansion.backend.store import Store

    wire: list[bytes] = []
    db = tmp / "backend.sqlite"
    for req in requests:
        body: bytes = req.body  # type: ignore[attr-defined]
        wire.append(body)
        json_body = req.content_type == JSON  # type: ignore[attr-defined]
        if json_body:
            wire.append(json.dumps(json.loads(body), ensure_ascii=False).encode())
        signal = req.signal  # type: ignore[attr-defined]
        if signal:
            with Store(db) as store:
                store.write(signal, flatten(signal, decode(signal, body, JSON if json_body else PROTOBUF)), None)
    backend = db.read_bytes() + sqlite_text(db) if db.exists() else b""
    return b"\n".join(wire), backend


def environment(home: Path, values: list[Value], level: str, protocol: str) -> dict[str, str]:
    pick = {v.category: v.text for v in values}
    resource = ",".join([
        f"deployment.environment={quote(pick['internal_host'])}", f"team.owner={quote(pick['email'])}",
        f"user.name={quote(pick['person_name'])}", f"host.name={quote(pick['internal_host'])}",
        pick["password"].replace(",", ""),  # a malformed member: warned about without its value
        f"build.user={pick['user_handle']}",
    ])
    env = clean_env(home, OTEL_EXPANSION_LEVEL=level, OTEL_EXPANSION_SEND="false", OTEL_EXPANSION_DEBUG="true",
                    OTEL_RESOURCE_ATTRIBUTES=resource, OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                    LEAK_VERSION="1.0+" + pick["user_handle"].lower().replace("_", "."),
                    LEAK_AMBIENT_1=pick["ssn_us"], LEAK_AMBIENT_2=pick["github_token"],
                    # the end user's own service name: an init() app does not opt in, so it is ignored
                    OTEL_SERVICE_NAME=pick["name_ascii_handle"])
    return env


def run_config(tmp_path: Path, framework: str, level: str, mode: str,
               protocol: str) -> tuple[list[Value], dict[str, bytes]]:
    from otel_expansion.workers.sender import run_round
    from tests.export.servers import otlp_server

    values = CORPUS
    home = tmp_path / "state"
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps([v.text for v in values], ensure_ascii=False), encoding="utf-8")
    folder_name = next(v.text for v in values if v.category == "person_name")
    script_dir = tmp_path / folder_name / "tools"  # frames must not name this folder
    script_dir.mkdir(parents=True)
    # the script's own file name is a value: process.executable.name and span names must not carry it
    script = script_dir / (next(v.text for v in values if v.category == "native_name") + ".py")
    shutil.copy(APP, script)
    cwd = tmp_path / next(v.text for v in values if v.category == "user_handle")
    cwd.mkdir()
    env = environment(home, values, level, protocol)
    env["LEAK_VALUES"] = str(values_file)
    env["LEAK_DOCS"] = str(tmp_path / "app-TELEMETRY.md")
    if framework in REGISTRY:
        env["LEAK_REGISTRY"] = "1"
    cmd = [sys.executable, str(script), framework, "cli" if mode == "auto" else mode]
    if mode == "auto":
        env["LEAK_AUTO"] = "1"
        env["OTEL_SERVICE_NAME"] = "leakapp"  # opentelemetry-instrument names the service this way
        env["OTEL_PYTHON_DISTRO"] = env["OTEL_PYTHON_CONFIGURATOR"] = "otel_expansion"  # opentelemetry-distro too
        cmd = [str(Path(sys.executable).with_name("opentelemetry-instrument")), *cmd]
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode in (0, 1, 2), result.stderr.decode(errors="replace")[-3000:]
    ours = b"\n".join(line for line in result.stderr.splitlines() if line.startswith(b"otel-expansion"))
    before_send = state_bytes(home)
    show = subprocess.run([str(Path(sys.executable).with_name("otel-expansion")), "show"], env=env,
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    assert show.returncode == 0, show.stderr.decode(errors="replace")[-2000:]
    docs = Path(env["LEAK_DOCS"]).read_bytes()
    assert b"Built-in signals" in docs
    with otlp_server() as srv, temp_environ(OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url):
        settings = resolve("sender", environ=os.environ, home=str(home), level=Level.FULL)
        summary = run_round(str(home), settings, force=True, deadline_s=120, lock_wait_s=60)  # exit may start one
        assert summary.ok, summary.error
        requests = srv.requests
    wire, backend = wire_and_backend(requests, tmp_path)
    assert b"leakapp" in wire and len(wire) > 1000  # data did arrive
    return values, {"stderr": ours, "state": before_send + state_bytes(home), "wire": wire, "backend": backend,
                    "show": show.stdout + show.stderr, "docs": docs}


@pytest.mark.parametrize(("framework", "level", "mode", "protocol"), CONFIGS)
def test_no_corpus_value_leaks(tmp_path: Path, framework: str, level: str, mode: str, protocol: str) -> None:
    """No value nor distinctive substring of the corpus is on the wire, on disk, in the backend or in debug output."""
    values, blobs = run_config(tmp_path, framework, level, mode, protocol)
    finder = Finder(values)
    leaks = {where: sorted(finder.find(blob)) for where, blob in blobs.items()}
    report = {where: [f"{c}: {t!r} via {n!r}" for c, t, n in hits[:20]] for where, hits in leaks.items() if hits}
    assert report == {}, json.dumps(report, indent=1, ensure_ascii=False)
    if level == "full" and framework != "argparse-usage":  # the data arrived, with placeholders
        assert b"<value>" in blobs["wire"]
    if framework != "argparse-usage":  # error signatures arrived, the names made at run time as placeholders
        wire = blobs["wire"]
        assert b"cli.error.signature" in wire and b"__main__:work" in wire
        if framework != "manual":  # (run_manual's work() raises before its round3() is reached)
            assert b"__main__:round3 > __main__:renamed > __main__:<dynamic>" in wire  # code renamed to a value
            assert b"__main__:round3 > __main__:plugin > <dynamic>" in wire  # a module named after a value
    if mode == "auto" and level != "basic":  # contrib click's spans went through our processors
        assert framework != "click" or b"opentelemetry.instrumentation.click" in blobs["wire"]
    if mode == "auto":  # other instrumentations' metrics arrived, through the allow-list
        assert b"http.client" in blobs["wire"]
        assert b"http.request.method" in blobs["wire"] or b"http.method" in blobs["wire"]
