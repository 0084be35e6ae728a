"""Issue 24: the defects a fault-injection run found in round 2 (numbered as in the issue; #9 is issue 25's).

Each test reproduces one defect with real parts (CLI subprocesses, the SQLite spool, HTTP servers on
127.0.0.1) and fails on the release before the fix (commit 8963b28).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, clean_env, wait_until
from tests.export.servers import otlp_server, respond
from tests.faults.conftest import metric_total, snapshot, wait_for_senders

pytestmark = pytest.mark.faults

CLI = str(ROOT / "examples" / "democli.py")
SPOOL = "spool.sqlite"


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, CLI, *args], env=clean_env(home, **env), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def tool(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otel_expansion", *args, "--home", str(home)], cwd=ROOT,
                          env=clean_env(home, **env), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def ingest(home: Path) -> None:
    """Move the journal into the spool without sending (the sender's --no-send round)."""
    r = subprocess.run([sys.executable, "-m", "otel_expansion.workers.sender", "--home", str(home), "--no-send"],
                       env=clean_env(home), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def record_runs(home: Path, n: int) -> None:
    for i in range(n):
        assert cli(home, "hello", str(i), OTEL_EXPANSION_SEND="false").returncode == 0


def status(home: Path) -> dict[str, Any]:
    r = tool(home, "status", "--json")
    assert r.returncode == 0, r.stderr
    info: dict[str, Any] = json.loads(r.stdout)
    return info


def flush_to(home: Path, url: str) -> subprocess.CompletedProcess[str]:
    return tool(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=url)


# -- 1 ---------------------------------------------------------------------------------------------------

def test_1_read_only_commands_create_no_file(tmp_path: Path) -> None:
    """status and show on a spool nobody has open create no -wal/-shm and change nothing at all."""
    home = tmp_path / "home"
    record_runs(home, 3)
    ingest(home)
    assert (home / SPOOL).exists() and not (home / f"{SPOOL}-wal").exists()
    before = snapshot(home)
    for args in (("status", "--json"), ("show", "--json"), ("status",), ("show",)):
        r = tool(home, *args)
        assert r.returncode == 0, r.stderr
        assert snapshot(home) == before, args


def test_1_read_only_commands_count_a_live_wal(tmp_path: Path) -> None:
    """With a writer's WAL live (rows committed there, not checkpointed), status counts them and creates
    no file: the reader goes through the WAL rather than reading the main file as immutable."""
    from otel_expansion.otlp.model import SUM, MetricPoint, SeriesKey

    home = tmp_path / "home"
    record_runs(home, 1)
    ingest(home)
    from otel_expansion.spool.store import Spool

    writer = Spool.open(home / SPOOL)
    try:
        now = time.time_ns()
        writer.add([MetricPoint(SeriesKey((("service.name", "democli"),), "s", "1", f"m{i}", SUM, "1", "", ()),
                                now, now, value=1.0) for i in range(7)])
        assert (home / f"{SPOOL}-wal").stat().st_size > 0
        names = sorted(p.name for p in home.iterdir())
        info = status(home)
        assert info["spool_series"] >= 7 + 1
        assert sorted(p.name for p in home.iterdir()) == names
    finally:
        writer.close()


# -- 2 ---------------------------------------------------------------------------------------------------

def _garble(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "random":
        path.write_bytes(os.urandom(len(data)))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "garbled":
        path.write_bytes(data[:100] + os.urandom(len(data) - 100))
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["random", "truncated", "garbled", "empty"])
def test_2_a_lost_spool_is_counted_in_runs(tmp_path: Path, how: str) -> None:
    """10 runs pending in a spool that is then damaged: the loss is counted as 10 runs (not 1, not 0), and
    a 0-byte spool is not silently taken for a new one."""
    home = tmp_path / "home"
    record_runs(home, 10)
    ingest(home)
    _garble(home / SPOOL, how)
    ingest(home)  # opening the spool finds it damaged and moves it aside
    counters = status(home)["counters"]
    assert counters.get("dropped.corrupt_runs") == 10, counters
    assert counters.get("dropped.corrupt", 0) >= 10, counters
    assert any(p.name.startswith(f"{SPOOL}.corrupt-") for p in home.iterdir())
    ingest(home)  # counted once, not again on the next open
    assert status(home)["counters"].get("dropped.corrupt_runs") == 10


# -- 3 ---------------------------------------------------------------------------------------------------

def test_3_a_directory_where_the_spool_should_be_does_not_wedge(tmp_path: Path) -> None:
    """A directory at spool.sqlite: flush moves it aside and delivers every run."""
    home = tmp_path / "home"
    record_runs(home, 23)
    (home / SPOOL).mkdir()
    (home / SPOOL / "keep.txt").write_text("someone's file")
    with otlp_server() as server:
        r = flush_to(home, server.url)
        assert r.returncode == 0, r.stdout + r.stderr
        assert metric_total(server.requests, "cli.command.invocations") == 23
    assert (home / SPOOL).is_file()
    moved = [p for p in home.iterdir() if p.name.startswith(f"{SPOOL}.corrupt-")]
    assert len(moved) == 1 and (moved[0] / "keep.txt").read_text() == "someone's file"


def test_3_a_file_where_the_journal_should_be_does_not_stop_recording(tmp_path: Path) -> None:
    """`journal` replaced by a regular file: the next run moves it aside (kept) and records."""
    home = tmp_path / "home"
    record_runs(home, 1)
    ingest(home)
    journal = home / "journal"
    journal.rmdir()
    journal.write_text("not a directory")
    record_runs(home, 2)
    assert journal.is_dir() and len(list(journal.iterdir())) == 2
    kept = [p for p in home.iterdir() if p.name.startswith("journal.moved-")]
    assert len(kept) == 1 and kept[0].read_text() == "not a directory"


# -- 4 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", ["nan nan nan", "inf inf inf", "nan 0 -inf"])
def test_4_garbage_in_the_sender_state_does_not_stop_sending(tmp_path: Path, garbage: str) -> None:
    """nan/inf in sender.state count as unknown: the next run starts a sender and its data arrives."""
    home = tmp_path / "home"
    record_runs(home, 1)
    (home / "sender.state").write_text(garbage + "\n")
    with otlp_server() as server:
        r = cli(home, "hello", "x", OTEL_EXPORTER_OTLP_ENDPOINT=server.url)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: metric_total(server.requests, "cli.command.invocations") >= 2, 60, "a send")
        wait_for_senders(home)
        assert metric_total(server.requests, "cli.command.invocations") == 2


# -- 5 ---------------------------------------------------------------------------------------------------

def _run_point(name: str, t: int) -> Any:
    from otel_expansion.otlp.model import SUM, MetricPoint, SeriesKey

    key = SeriesKey((("service.name", "app"),), "s", "1", name, SUM, "1", "", ())
    return MetricPoint(key, t, t, value=1.0)


def _span(t: int) -> Any:
    from otel_expansion.otlp.model import SpanRecord

    return SpanRecord(resource=(("service.name", "app"),), scope_name="s", scope_version="1", data=b"x" * 40,
                      end_ns=t)


def test_5_runs_recorded_under_a_wrong_clock_are_not_discarded_when_it_is_corrected(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """10 runs stored while the clock was a year behind survive the correction (nothing counted as aged)."""
    from otel_expansion.spool.store import Spool

    real = time.time_ns
    year = 365 * 86400 * 10**9
    monkeypatch.setattr(time, "time_ns", lambda: real() - year)
    spool = Spool.open(tmp_path / SPOOL)
    for i in range(10):
        spool.add([_run_point(f"run{i}", time.time_ns())], [_span(time.time_ns())], source_ids=[f"r{i}"])
    spool.close()
    monkeypatch.setattr(time, "time_ns", real)
    spool = Spool.open(tmp_path / SPOOL)
    try:
        spool.add([_run_point("now", time.time_ns())], [_span(time.time_ns())], source_ids=["now"])
        stats = spool.stats()
        assert (stats.series, stats.spans) == (11, 11)
        assert "dropped.age" not in stats.counters
    finally:
        spool.close()


def test_5_data_still_ages_out_as_time_really_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The age limit still holds for time the spool saw pass (observed every 12 h for 8 days)."""
    from otel_expansion.spool.store import Spool

    clock = [time.time_ns()]
    monkeypatch.setattr(time, "time_ns", lambda: clock[0])
    spool = Spool.open(tmp_path / SPOOL, max_age_s=7 * 86400)
    try:
        spool.add([_run_point("old", clock[0])], [_span(clock[0])], source_ids=["old"])
        for i in range(16):
            clock[0] += 12 * 3600 * 10**9
            spool.add([_run_point(f"tick{i}", clock[0])], source_ids=[f"t{i}"])
        stats = spool.stats()
        assert stats.spans == 0 and stats.counters.get("dropped.age", 0) >= 2
    finally:
        spool.close()


# -- 6 ---------------------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a home as another user")
def test_6_root_on_another_users_home_stands_down_without_creating_anything(tmp_path: Path) -> None:
    """root running a CLI with HOME of another user: no folder is created there, the CLI is unaffected."""
    other = tmp_path / "alice"
    other.mkdir()
    os.chown(other, 4321, 4321)
    before = snapshot(other)
    env = clean_env(other, HOME=str(other))
    env.pop("OTEL_EXPANSION_HOME")
    env.pop("XDG_STATE_HOME", None)
    r = subprocess.run([sys.executable, CLI, "hello", "x"], env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "hello" in r.stdout.lower(), r.stderr
    assert snapshot(other) == before
    assert not (other / ".local").exists()


# -- 7 ---------------------------------------------------------------------------------------------------

def test_7_backend_serve_under_umask_000_makes_every_folder_private(tmp_path: Path) -> None:
    """`backend serve` with umask 000 and no data folder yet: every folder it creates is 0700."""
    data = tmp_path / "data"
    env = clean_env(tmp_path / "home", XDG_DATA_HOME=str(data))
    proc = subprocess.Popen([sys.executable, "-c", "import os, sys; os.umask(0); from otel_expansion.__main__ "
                             "import main; sys.exit(main())", "backend", "serve", "--port", "0", "--json"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        for folder in (data, data / "otel-expansion", data / "otel-expansion" / "backend"):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
    finally:
        proc.terminate()
        proc.wait(10)


# -- 8 ---------------------------------------------------------------------------------------------------

def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no thread count")


@pytest.mark.slow
def test_8_the_inspector_keeps_no_thread_per_idle_connection(tmp_path: Path) -> None:
    """300 half-sent requests to `otel-expansion ui` hold a bounded number of threads, and the page is
    served again once they are gone."""
    home = tmp_path / "home"
    record_runs(home, 1)
    proc = subprocess.Popen([sys.executable, "-m", "otel_expansion", "ui", "--json", "--home", str(home)],
                            env=clean_env(home), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(json.loads(proc.stdout.readline())["port"])
        baseline = _threads(proc.pid)
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            socks.append(s)
        time.sleep(1.0)
        assert _threads(proc.pid) <= baseline + 20
        for s in socks:
            s.close()
        socks.clear()

        def page_served() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
                    return s.recv(64).startswith(b"HTTP/1.")
            except OSError:
                return False

        wait_until(page_served, 30, "the page")
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(10)


# -- 10 --------------------------------------------------------------------------------------------------

def test_10_a_collector_answering_404_holds_the_data_and_status_says_so(tmp_path: Path) -> None:
    """A wrong path (404) is a misconfiguration: nothing is dropped, status names it, and once the
    endpoint is right every run arrives."""
    home = tmp_path / "home"
    record_runs(home, 5)
    with otlp_server(respond(404, b"404 page not found")) as wrong:
        r = flush_to(home, wrong.url)
        assert r.returncode != 0
        assert wrong.requests
    info = status(home)
    assert not any(k.startswith("dropped.") and v for k, v in info["counters"].items()), info["counters"]
    assert info["spool_series"] > 0
    assert "404" in (info["last_send"] or {}).get("error", "")
    assert "404" in tool(home, "status").stdout
    with otlp_server() as server:
        assert flush_to(home, server.url).returncode == 0
        assert metric_total(server.requests, "cli.command.invocations") == 5


# -- 11 --------------------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/var/lib/dpkg/lock-frontend"),
                    reason="holds the system's dpkg lock (root, Debian)")
def test_11_the_test_setup_waits_for_the_apt_lock(tmp_path: Path) -> None:
    """While another process holds dpkg's lock, the setup's apt step waits (and succeeds) instead of
    failing at once; an apt failure shows apt's own output."""
    import fcntl

    holder: dict[str, Any] = {}
    fd = os.open("/var/lib/dpkg/lock-frontend", os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)

    def release() -> None:
        time.sleep(4)
        holder["released"] = time.monotonic()
        os.close(fd)

    t = threading.Thread(target=release)
    start = time.monotonic()
    t.start()
    try:
        r = subprocess.run(["bash", "scripts/apt_install.sh", "--no-update", "bash"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    finally:
        t.join()
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - start >= 4
    bad = subprocess.run(["bash", "scripts/apt_install.sh", "--no-update", "no-such-package-e24"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "no-such-package-e24" in bad.stderr
