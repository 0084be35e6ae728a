"""Errors by stack signature from a real program to the report: a click program installed as a console
script fails in nested functions of its own modules across two releases; its runs are flushed by the real
``otel-expansion flush`` to the embedded backend on 127.0.0.1, and the report (JSON and text) groups them by
the signature the program's code fixes, with the first and last version seen and what is new in 2.0.0."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.integration.test_every_run import BIN, console_script, run

STORE = '''
import json


def load(text):
    return _parse(text)


def _parse(text):
    return json.loads(text)


def check(path):
    return _validate(path)


def _validate(path):
    raise ValueError("no such volume: " + path)
'''

APP = '''
import os

import click

import otel_expansion
from e2estore import check, load

otel_expansion.init("e2eapp", os.environ["E2E_VERSION"])


@click.group()
def cli():
    pass


@cli.command()
@click.argument("text")
def sync(text):
    load(text)


@cli.command()
@click.argument("path")
def verify(path):
    check(path)


def main():
    cli()
'''

# the default level (enhanced) shows the standard library as its bare module
LOAD = "__main__:<module> > e2eapp_cli:main > e2eapp_cli:sync > e2estore:load > e2estore:_parse > json"
CHECK = "__main__:<module> > e2eapp_cli:main > e2eapp_cli:verify > e2estore:check > e2estore:_validate"
SECRET = "/home/amélie.dupont/taxes-2026.pdf"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The embedded backend on 127.0.0.1 (a free port), stopped after the test."""
    from otel_expansion.backend.server import serve

    db = tmp_path / "backend.sqlite"
    ports: list[int] = []
    bound, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, daemon=True, kwargs={
        "host": "127.0.0.1", "port": 0, "db_path": db, "ready": lambda p: (ports.append(p), bound.set()),
        "stop": stop, "retention_days": 0})
    thread.start()
    assert bound.wait(10), "backend did not start"
    yield f"http://127.0.0.1:{ports[0]}", db
    stop.set()
    thread.join(10)


def test_errors_group_by_signature_across_releases(tmp_path: Path, backend: tuple[str, Path]) -> None:
    """1.0.0 fails twice in sync (JSON); 2.0.0 fails once in sync and twice in verify (new in 2.0.0)."""
    url, db = backend
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "e2estore.py").write_text(STORE)
    script = console_script(tmp_path, "e2eapp", APP, init=False)
    home = tmp_path / "home"
    runs = [("1.0.0", ["sync", SECRET]), ("1.0.0", ["sync", "{"]), ("1.0.0", ["sync", "[]"]),
            ("2.0.0", ["sync", SECRET]), ("2.0.0", ["verify", SECRET]), ("2.0.0", ["verify", "x"])]
    for version, argv in runs:
        result = run(tmp_path, [str(script), *argv], E2E_VERSION=version, OTEL_EXPORTER_OTLP_ENDPOINT=url)
        assert result.returncode == (0 if argv[1] == "[]" else 1), result.stderr
        flush = subprocess.run([str(BIN / "otel-expansion"), "flush", "--home", str(home)],
                               env=clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=url), capture_output=True,
                               text=True, timeout=120)
        assert flush.returncode == 0, flush.stderr
    report = subprocess.run([str(BIN / "otel-expansion"), "report", "--db", str(db), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    groups = json.loads(report.stdout)["error_groups"]["groups"]
    got = {(g["service"], g["error_type"], g["signature"]):
           (g["count"], g["first_version"], g["last_version"], g["new_in_version"],
            {v["version"]: v["count"] for v in g["versions"]}) for g in groups}
    assert got == {
        ("e2eapp", "json.decoder.JSONDecodeError", LOAD): (3, "1.0.0", "2.0.0", None, {"1.0.0": 2, "2.0.0": 1}),
        ("e2eapp", "ValueError", CHECK): (2, "2.0.0", "2.0.0", "2.0.0", {"2.0.0": 2}),
    }
    text = subprocess.run([str(BIN / "otel-expansion"), "report", "--db", str(db)], capture_output=True,
                          text=True, timeout=120)
    assert text.returncode == 0 and CHECK in text.stdout and LOAD in text.stdout
    assert "amélie" not in report.stdout + text.stdout and "taxes" not in report.stdout + text.stdout
