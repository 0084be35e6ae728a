"""Faults inside telemetry never reach the host: hostile values, corrupt state, unusable disk."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, RunCli, clean_env, journal_records
from tests.export.servers import otlp_server

HOSTILE = r"""
import otel_expansion
otel_expansion.init("hostile")

class Evil:
    def __repr__(self): raise RuntimeError("no repr")
    __str__ = __repr__

loop = []
loop.append(loop)
with otel_expansion.command("crunch"):
    otel_expansion.feature("huge", text="x" * 10_000_000, blob=b"\x00\xff" * 1000, evil=Evil(),
                           loop=loop, deep=[[[[[[[[[[["d"]]]]]]]]]]], n=10**40, f=float("nan"))
    otel_expansion.feature("x" * 100_000)
    otel_expansion.record_exception(ValueError("\udcff bad surrogate \x00"))
print("host ok")
"""


def test_hostile_values_give_bounded_records(tmp_path: Path) -> None:
    """Huge, binary, recursive and unprintable values: the host runs normally and the record stays small."""
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-c", HOSTILE], env=clean_env(home, OTEL_EXPANSION_LEVEL="full",
                            OTEL_EXPANSION_SEND="false"), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and result.stdout == "host ok\n", result.stderr
    (record,) = journal_records(home)
    assert len(repr(record)) < 64_000
    (path,) = (home / "journal").iterdir()
    assert path.stat().st_size < 64_000


def test_corrupt_spool_is_moved_aside(run_cli: RunCli, home: Path) -> None:
    """A garbage spool file is replaced (one warning in the sender log) and the data still gets out."""
    run_cli("hello", "a", OTEL_EXPANSION_SEND="false")
    (home / "spool.sqlite").write_bytes(b"this is not a database" * 100)
    with otlp_server() as srv:
        env = clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        result = subprocess.run([sys.executable, "-m", "otel_expansion", "flush", "--home", str(home)], env=env,
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert any(r.signal == "traces" for r in srv.requests)
    assert list(home.glob("spool.sqlite.corrupt-*"))


def test_corrupt_journal_record_is_dropped_and_counted(run_cli: RunCli, home: Path) -> None:
    """A damaged run record is skipped; the others are delivered and the drop is reported."""
    run_cli("hello", "a", OTEL_EXPANSION_SEND="false")
    run_cli("hello", "b", OTEL_EXPANSION_SEND="false")
    first = sorted((home / "journal").iterdir())[0]
    first.write_bytes(first.read_bytes()[:20])
    with otlp_server() as srv:
        env = clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        result = subprocess.run([sys.executable, "-m", "otel_expansion", "flush", "--home", str(home)], env=env,
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and "1 unreadable, dropped" in result.stdout


def test_read_only_home_never_breaks_the_cli(run_cli: RunCli, home: Path, tmp_path: Path) -> None:
    """An unwritable state directory: the CLI's output and exit code are untouched, one warning at most."""
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(readonly)], check=True)
    try:
        env_home = readonly / "home"
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "democli.py"), "hello", "z"],
                                env=clean_env(env_home), capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["umount", str(readonly)], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello z\n", "")  # exactly as without us


def test_full_disk_never_breaks_the_cli(tmp_path: Path) -> None:
    """A full filesystem: the run completes normally and telemetry stands down."""
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        with open(full / "filler", "wb") as f, contextlib.suppress(OSError):
            f.write(b"\0" * 10**6)
        home = full / "home"
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "democli.py"), "hello", "z"],
                                env=clean_env(home), capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["umount", str(full)], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello z\n", "")
    assert os.geteuid() == 0
