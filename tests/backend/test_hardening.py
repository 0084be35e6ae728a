"""Hardening of the embedded backend: limits at ingest, Host checks, bad input, private files, duplicates."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_expansion.backend.decoding import prepare_packed
from otel_expansion.backend.ingest import PROTOBUF, content_id, digest, flatten
from otel_expansion.backend.limits import OTHER, Limits
from otel_expansion.backend.paths import BackendPathError, default_db_path, prepare_db_path
from otel_expansion.backend.report import build_report
from otel_expansion.backend.server import BODY_TIMEOUT_S, serve
from otel_expansion.backend.store import SCHEMA_VERSION, ForeignDatabase, Store, connect, open_readonly
from otel_expansion.otlp.model import BATCH_ID_HEADER

from .conftest import LINUX, REMOTE_ADD, LiveServer, metrics_request, ns, sum_metric


def invocations(command: str, value: int = 1, day: int = 1) -> object:
    attrs = {**REMOTE_ADD, "cli.command.name": command}
    return metrics_request((LINUX, [sum_metric("cli.command.invocations", [(attrs, value, ns(day))])]))


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with small limits: 3 distinct values per dimension, 64-character values."""
    ports: list[int] = []
    bound, stop = threading.Event(), threading.Event()
    db = tmp_path / "limited.sqlite"
    thread = threading.Thread(
        target=serve,
        kwargs={"host": "127.0.0.1", "port": 0, "db_path": db, "ready": lambda p: (ports.append(p), bound.set()),
                "stop": stop, "limits": Limits(value_chars=64, distinct_values=3)},
        daemon=True,
    )
    thread.start()
    assert bound.wait(10)
    yield LiveServer(ports[0], db)
    stop.set()
    thread.join(10)


class TestLimits:
    def test_long_value_is_cut_and_counted(self, limited_server: LiveServer) -> None:
        """A 1 MiB command name is stored as 64 characters; the cut shows in the report."""
        assert limited_server.post("metrics", invocations("x" * 2**20)).status == 200
        report = json.loads(limited_server.request("GET", "/api/report").body)
        (command,) = report["commands"]
        assert len(command["command"]) == 64 and command["command"].endswith("…")
        assert {"what": "truncated command", "count": 1} in report["limits"]

    def test_cardinality_overflow_goes_to_other(self, limited_server: LiveServer) -> None:
        """Past 3 distinct command names, new ones count as (other); known ones still count as themselves."""
        for i in range(6):
            assert limited_server.post("metrics", invocations(f"cmd-{i}", value=i + 1)).status == 200
        assert limited_server.post("metrics", invocations("cmd-0", value=10)).status == 200
        report = json.loads(limited_server.request("GET", "/api/report").body)
        counts = {c["command"]: c["invocations"] for c in report["commands"]}
        assert counts == {"cmd-0": 11, "cmd-1": 2, "cmd-2": 3, OTHER: 4 + 5 + 6}
        assert {"what": "over 3 distinct command values", "count": 3} in report["limits"]
        assert "over 3 distinct command values 3" in build_report_text(limited_server.db_path)

    def test_dashboard_stays_fast_with_huge_values(self, limited_server: LiveServer) -> None:
        """The report of a store fed megabyte values stays small (nothing unbounded reaches the page)."""
        for i in range(3):
            limited_server.post("metrics", invocations(f"{i}" + "y" * 2**20))
        assert len(limited_server.request("GET", "/api/report").body) < 64 * 1024


def build_report_text(db: Path) -> str:
    from otel_expansion.backend.report import render_report

    return render_report(build_report(db))


class TestHostHeader:
    def test_foreign_host_refused(self, live_server: LiveServer) -> None:
        """A DNS-rebinding page sends its own name as Host: refused before anything is read or stored."""
        response = live_server.request("GET", "/api/report", headers={"Host": "evil.example:4318"})
        assert response.status == 403
        response = live_server.request("POST", "/v1/metrics", invocations("x").SerializeToString(),
                                       {"Host": "evil.example", "Content-Type": "application/x-protobuf"})
        assert response.status == 403
        assert build_report(live_server.db_path)["totals"]["invocations"] == 0

    def test_loopback_names_accepted(self, live_server: LiveServer) -> None:
        for host in (f"127.0.0.1:{live_server.port}", f"localhost:{live_server.port}", "localhost"):
            assert live_server.request("GET", "/healthz", headers={"Host": host}).status == 200

    def test_missing_host_refused(self, live_server: LiveServer) -> None:
        with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
            sock.sendall(b"GET /api/report HTTP/1.0\r\n\r\n")
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 403 ")


class TestBadInput:
    @pytest.mark.parametrize(
        "query",
        ["since_ns=99999999999999999999999", "since_ns=-5", "days=abc", "days=0", "days=1e9", "since=yesterday",
         "until=2024-13-01", "bogus=1", "since=2024-05-03&until=2024-05-01", "service=a&service=b"],
    )
    def test_bad_query_is_400(self, live_server: LiveServer, query: str) -> None:
        response = live_server.request("GET", f"/api/report?{query}")
        assert response.status == 400
        assert "error" in json.loads(response.body)

    def test_good_filters(self, live_server: LiveServer) -> None:
        live_server.post("metrics", invocations("a", 2, day=1))
        live_server.post("metrics", invocations("b", 3, day=4))
        report = json.loads(live_server.request("GET", "/api/report?since=2024-05-02&service=gitx").body)
        assert report["totals"]["invocations"] == 3
        assert report["filter"] == {"service": "gitx", "version": None, "since": "2024-05-02", "until": None}
        assert json.loads(live_server.request("GET", "/api/report?until=2024-05-01").body)["totals"][
            "invocations"] == 2
        assert json.loads(live_server.request("GET", "/api/report?service=other").body)["totals"][
            "invocations"] == 0

    def test_short_body_is_400_quickly(self, live_server: LiveServer) -> None:
        """Content-Length 1000 with 10 bytes sent and the connection kept open: 400 within the body timeout."""
        with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: 1000\r\n\r\n0123456789")
            reply = sock.recv(4096)
            elapsed = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.1 400 ")
        assert elapsed < BODY_TIMEOUT_S + 5


class TestDuplicates:
    def test_duplicate_never_reaches_rollups(self, live_server: LiveServer) -> None:
        """Same batch id + same content: stored once, and every report number counts it once."""
        message = invocations("deploy", 5)
        for _ in range(3):
            assert live_server.post("metrics", message, headers={BATCH_ID_HEADER: "b-1"}).status == 200
        report = build_report(live_server.db_path)
        assert report["totals"]["invocations"] == 5
        assert report["environment"]["os.type"] == [{"value": "linux", "invocations": 5, "share": 1.0}]

    def test_split_parts_each_stored_once(self, live_server: LiveServer) -> None:
        """A 413-split batch: each part has its own stable id and content; all stored, retries dropped."""
        parts = [("b-2.0", invocations("deploy", 2)), ("b-2.1", invocations("deploy", 7))]
        for _ in range(2):
            for batch_id, message in parts:
                assert live_server.post("metrics", message, headers={BATCH_ID_HEADER: batch_id}).status == 200
        assert build_report(live_server.db_path)["totals"]["invocations"] == 9

    def test_parts_of_a_batch_already_stored_are_duplicates(self, tmp_path: Path) -> None:
        """Stored whole, reply lost, retried, refused as too large and split: the parts are not stored again."""
        with Store(tmp_path / "d.sqlite") as store:
            store.write("metrics", flatten("metrics", invocations("a", 6)), "b-9")
            assert store.write("metrics", flatten("metrics", invocations("a", 2)), "b-9.m1").duplicates == 1
            assert store.write("metrics", flatten("metrics", invocations("a", 4)), "b-9.m2.m1").duplicates == 1
            store.write("traces", flatten("metrics", invocations("b", 3)), "b-9.t1")  # another signal: stored
        assert build_report(tmp_path / "d.sqlite")["totals"]["invocations"] == 9

    def test_parts_stored_before_schema_five_stay_duplicates(self, tmp_path: Path) -> None:
        """A schema-4 store keyed each part by the digest of its rows: after the upgrade a retried part is still
        dropped, through a decoding worker or the writer alone, also when the limits cut a value in it."""
        db = tmp_path / "d.sqlite"
        messages = {"short": invocations("a", 3), "long": invocations("c" * 400, 4)}  # 400 > 256: cut
        with Store(db) as store:
            for bid, message in messages.items():
                store.write("metrics", flatten("metrics", message), bid)
        with sqlite3.connect(db) as conn:  # the keys a release before schema 5 stored for the same rows
            for bid, message in messages.items():
                (entry,) = flatten("metrics", message)
                assert conn.execute("UPDATE seen_batches SET batch_id = ? WHERE batch_id = ?",
                                    (f"{bid}:{digest(entry)}", f"{bid}:{content_id(entry)}")).rowcount == 1
            conn.execute("PRAGMA user_version = 4")
        assert build_report(db)["totals"]["invocations"] == 7
        with Store(db) as store:
            for bid, message in messages.items():
                worker = prepare_packed("metrics", message.SerializeToString(), None, PROTOBUF, Limits(), True)
                assert bool(worker[0].cut) == (bid == "long")
                assert store.write("metrics", worker, bid).duplicates == 1
                assert store.write("metrics", flatten("metrics", message), bid).duplicates == 1
            assert store.write("metrics", flatten("metrics", invocations("a", 5)), "short").duplicates == 0
        assert build_report(db)["totals"]["invocations"] == 12
        assert open_readonly(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6

    def test_store_of_a_newer_release_is_refused_untouched(self, tmp_path: Path) -> None:
        """A store whose format is newer than this release reads fails clearly and is left as it is."""
        db = tmp_path / "d.sqlite"
        with Store(db) as store:
            store.write("metrics", flatten("metrics", invocations("a", 3)), "b-1")
        with sqlite3.connect(db) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        held = db.read_bytes()
        for opener in (connect, open_readonly, Store):
            with pytest.raises(ForeignDatabase, match="newer otel-expansion"):
                opener(db)
        assert db.read_bytes() == held

    def test_same_id_new_content_is_stored(self, tmp_path: Path) -> None:
        """The key is id + content digest: different content under one id is a different part."""
        with Store(tmp_path / "d.sqlite") as store:
            store.write("metrics", flatten("metrics", invocations("a", 1)), "same-id")
            store.write("metrics", flatten("metrics", invocations("a", 4)), "same-id")
            store.write("metrics", flatten("metrics", invocations("a", 4)), "same-id")
        assert build_report(tmp_path / "d.sqlite")["totals"]["invocations"] == 5


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
class TestFiles:
    def test_default_path_is_private(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Default database: <XDG_DATA_HOME>/otel-expansion/backend/telemetry.sqlite, 0600 in a 0700 folder."""
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        path = default_db_path()
        assert path == tmp_path / "data" / "otel-expansion" / "backend" / "telemetry.sqlite"
        prepare_db_path(path)
        Store(path).write("metrics", flatten("metrics", invocations("a")))
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        for name in os.listdir(path.parent):
            assert stat.S_IMODE(os.stat(path.parent / name).st_mode) == 0o600, name

    def test_existing_loose_permissions_tightened(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
        path = default_db_path()
        path.parent.mkdir(parents=True, mode=0o755)
        path.write_bytes(b"")
        path.chmod(0o644)
        prepare_db_path(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700

    def test_symlink_refused(self, tmp_path: Path) -> None:
        target = tmp_path / "elsewhere.sqlite"
        target.write_bytes(b"")
        link = tmp_path / "db.sqlite"
        link.symlink_to(target)
        with pytest.raises(BackendPathError):
            prepare_db_path(link)

    def test_reader_creates_nothing(self, tmp_path: Path) -> None:
        with pytest.raises(BackendPathError):
            prepare_db_path(tmp_path / "missing" / "db.sqlite", create=False)
        assert not (tmp_path / "missing").exists()
