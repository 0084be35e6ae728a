"""`otel-expansion report` with filters, on the embedded store and on ClickHouse over HTTP.

The ClickHouse case runs the real HTTP client against a small server on 127.0.0.1 that executes each
query in chDB (the ClickHouse engine in-process) holding the exporter's tables, the way ClickHouse's
own HTTP interface (port 8123) would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.store import Store
from otel_expansion.cli.main import main

from .chdb_loader import ChdbDatabase
from .conftest import two_apps


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ChdbDatabase]]:
    db = tmp_path_factory.mktemp("cli") / "b.sqlite"
    chdb = ChdbDatabase()
    with Store(db) as store:
        for signal, message in two_apps():
            store.write(signal, flatten(signal, message))
            chdb.load(signal, message)
    yield db, chdb
    chdb.close()


@pytest.fixture(scope="module")
def clickhouse_http(loaded: tuple[Path, ChdbDatabase]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """http://user:secret@127.0.0.1:PORT/ answering like ClickHouse's HTTP interface, backed by chDB."""
    _, chdb = loaded
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
            params = parse_qs(urlsplit(self.path).query)
            seen.append({"params": params, "auth": self.headers.get("Authorization")})
            with lock:
                chdb.session.query(f"USE {params['database'][0]}")
                text = chdb.session.query(sql, params["default_format"][0]).bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://user:secret@127.0.0.1:{server.server_address[1]}/?database={chdb.database}", seen
    server.shutdown()
    server.server_close()


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["report", "--json", *argv]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_filters(loaded: tuple[Path, ChdbDatabase], capsys: pytest.CaptureFixture[str]) -> None:
    db = str(loaded[0])
    assert run_json(capsys, "--db", db)["totals"]["invocations"] == 186
    assert run_json(capsys, "--db", db, "--service", "dbtool")["totals"]["invocations"] == 36
    assert run_json(capsys, "--db", db, "--service", "dbtool", "--version", "2.1.0")["totals"]["invocations"] == 21
    ranged = run_json(capsys, "--db", db, "--since", "2024-05-02", "--until", "2024-05-09")
    assert ranged["totals"]["invocations"] == 10 + 40 + 5
    assert main(["report", "--db", db, "--service", "gitx"]) == 0
    text = capsys.readouterr().out
    assert "otel-expansion report (gitx, all time)" in text and "migrate" not in text
    # the raw row counts are the database's (kept at ingest, no scan): said so, not read as gitx's
    assert "Stored in this database (every app, all time, whatever the filter):" in text


def test_bad_arguments(loaded: tuple[Path, ChdbDatabase], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", str(loaded[0]), "--since", "soon"]) == 2
    assert "since" in capsys.readouterr().err
    foreign = tmp_path / "foreign.sqlite"
    import sqlite3

    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    assert main(["report", "--db", str(foreign)]) == 1  # the command could not do its job (a usage mistake is 2)
    assert "not an otel-expansion backend database" in capsys.readouterr().err
    assert [r[0] for r in sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master")] == ["t"]


def test_clickhouse_report_equals_embedded(
    loaded: tuple[Path, ChdbDatabase],
    clickhouse_http: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, seen = clickhouse_http
    for argv in ([], ["--service", "dbtool"], ["--since", "2024-05-03", "--version", "1.3.0"]):
        fleet = run_json(capsys, "--clickhouse", url, *argv)
        embedded = run_json(capsys, "--db", str(loaded[0]), *argv)
        # every section but the clock, stored row counts and ingest limits (those exist only embedded)
        for section in set(embedded) - {"generated_ns", "stored", "limits"}:
            assert fleet[section] == embedded[section], section
    assert seen and seen[0]["auth"] == "Basic dXNlcjpzZWNyZXQ="


@pytest.mark.parametrize("as_json", [False, True])
def test_report_into_a_reader_that_left_ends_quietly(loaded: tuple[Path, ChdbDatabase], as_json: bool) -> None:
    """`otel-expansion report | head`: a reader leaving early ends the report quietly (no broken-pipe message,
    exit 141 as git and grep do). The pipe's read end is closed before the report is written, so every
    write fails (EPIPE)."""
    import os
    import subprocess
    import sys

    db, _ = loaded
    cmd = [sys.executable, "-m", "otel_expansion", "report", "--db", str(db), *(["--json"] if as_json else [])]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        done = subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == 141
