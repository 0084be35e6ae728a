"""Issue 12 (6, 7): a full or read-only disk never wedges telemetry, and every loss is counted per item."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otel_expansion.journal import store as journal
from tests.conftest import ROOT, clean_env
from tests.export.servers import otlp_server
from tests.faults.conftest import tmpfs

pytestmark = pytest.mark.faults
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs")

CLI = str(ROOT / "examples" / "democli.py")


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, CLI, *args], env=clean_env(home, **env), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def tool(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otel_expansion", *args, "--home", str(home)], cwd=ROOT,
                          env=clean_env(home, **env), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def fill(directory: Path) -> Path:
    """Use every free block of the filesystem holding ``directory``; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


@needs_root
@pytest.mark.slow
def test_full_disk_counts_every_dropped_run_and_flush_does_not_wedge(tmp_path: Path) -> None:
    """On a completely full disk runs are dropped but each is counted (the counter was reserved while there
    was room); flush fails fast with one line; once space returns the drops reach the collector."""
    with tmpfs(tmp_path / "disk", "4m") as disk:
        home = disk / "home"
        assert cli(home, "hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
        filler = fill(disk)
        for i in range(3):
            r = cli(home, "hello", str(i), OTEL_EXPANSION_SEND="false")
            assert (r.returncode, r.stdout) == (0, f"hello {i}\n"), r.stderr
        assert journal.dropped(str(home)) == 3
        start = time.monotonic()
        r = tool(home, "flush", "--timeout", "10", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
        assert time.monotonic() - start < 30
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        filler.unlink()
        with otlp_server() as srv:
            r = tool(home, "flush", "--timeout", "20", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
            assert r.returncode == 0, r.stdout + r.stderr
            dropped = metric_points(srv.requests, "otel_expansion.spool.dropped")
        assert dropped == {"journal_full": 3.0}
        assert journal.dropped(str(home)) == 0


def metric_points(requests: list[object], name: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for req in requests:
        if getattr(req, "signal", None) != "metrics":
            continue
        for rm in req.message().resource_metrics:  # type: ignore[attr-defined]
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for dp in metric.sum.data_points:
                            reason = next(a.value.string_value for a in dp.attributes if a.key == "reason")
                            totals[reason] = totals.get(reason, 0.0) + (dp.as_int or dp.as_double)
    return totals


def test_journal_is_bounded_in_bytes_on_disk(fast_dir: Path) -> None:
    """Records are refused once the journal takes MAX_PENDING_BYTES on disk, counted in whole blocks from
    the sizes in the file names: with 20 KB records the byte bound binds before the record bound (with
    small ones, 10,000 one-block records fit: tests/sdk/test_service_counts.py)."""
    home = str(fast_dir / "home")
    record: dict[str, object] = {"v": 1, "level": 1, "commands": [{"name": "x", "start": 1, "end": 2}],
                                 "pad": b"x" * 20_000}
    n = 0
    while not journal.full(home) and n < journal.MAX_PENDING:
        journal.append(home, record, time.time_ns())
        n += 1
    on_disk = sum(os.lstat(p).st_blocks * 512 for p in journal.pending(home))
    assert journal.MAX_PENDING_BYTES - 30_000 < on_disk <= journal.MAX_PENDING_BYTES + 24_576  # checked before a write
    assert n < journal.MAX_PENDING  # the byte bound, not the record bound, stopped it


@needs_root
def test_flush_on_read_only_home_is_one_line(tmp_path: Path) -> None:
    """flush on a home that became read-only: one error line, no traceback; the CLI still runs."""
    with tmpfs(tmp_path / "disk", "4m") as disk:
        home = disk / "home"
        assert cli(home, "hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        r = tool(home, "flush", "--timeout", "5", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
        assert r.returncode != 0
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
        r = cli(home, "hello", "b")
        assert (r.returncode, r.stdout) == (0, "hello b\n")


def test_corrupt_spool_loss_is_counted_per_item(tmp_path: Path) -> None:
    """A spool damaged beyond use is moved aside and its pending items counted one by one, not as 1."""
    import sqlite3

    from otel_expansion.otlp.model import SpanRecord
    from otel_expansion.spool.store import Spool

    path = tmp_path / "spool.sqlite"
    with Spool.open(path) as spool:
        for _ in range(50):
            spool.add(spans=[SpanRecord((("service.name", "x"),), "s", "1", os.urandom(500), time.time_ns())])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'spans_end'").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as f:  # one index page destroyed: the file fails its check, the rows survive
        f.seek((root - 1) * page)
        f.write(b"\xff" * page)
    with Spool.open(path) as spool:
        assert spool.counters() == {"dropped.corrupt": 50}
