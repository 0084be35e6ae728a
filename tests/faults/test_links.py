"""Issue 12 (3): links planted in the state directory are never followed; a home that is not ours (or a
link) makes telemetry stand down; temp names are unpredictable and stale ones are swept; umask 000 never
creates world-writable parents. Every case asserts that no file outside the state directory changed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_env
from tests.export.servers import otlp_server
from tests.faults.conftest import snapshot, wait_for_senders

pytestmark = [pytest.mark.faults, pytest.mark.skipif(os.geteuid() != 0, reason="plants files as another user")]

WRITTEN = ("sender.log", "sender.lock", "sender.state", "spool.sqlite", "spool.sqlite-wal", "spool.sqlite-shm",
           "spool.sqlite-journal", "session", "installation-id", "consent", "endpoint", "service",
           "journal.dropped", "journal", "journal-v2", "level-choice")
"""Every path the package writes inside a home (files, SQLite side files, the journal directories: a run
whose exit nobody could observe is a version-2 record, in ``journal-v2``)."""

DIRECTORIES = ("journal", "journal-v2")

EXECS = """
import os
import sys

import otel_expansion

otel_expansion.init("democli", "1.0.0")
otel_expansion.set_command("hello")
print("before exec", flush=True)
os.execv(sys.executable, [sys.executable, "-c", "print('after exec')"])
"""
"""A run that replaces its image: journaled first with outcome ``unknown``, so into ``journal-v2``."""


def victim(tmp_path: Path) -> Path:
    """Files outside the state directory that a followed link would change (root-owned, 0644)."""
    root = tmp_path / "victim"
    (root / "dir").mkdir(parents=True)
    (root / "file").write_bytes(b"precious\n")
    (root / "dir" / "a.rec").write_bytes(b"precious too\n")
    os.chmod(root / "file", 0o644)
    return root


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=clean_env(home, **env), capture_output=True, text=True,
                          timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL)


def exercise(home: Path, url: str) -> list[subprocess.CompletedProcess[str]]:
    """Everything that writes: runs (with their detached sender), flush, level, reset-id, consent, clear."""
    cli = str(ROOT / "examples" / "democli.py")
    results = [run([cli, "hello", "a"], home, OTEL_EXPANSION_LEVEL="enhanced", OTEL_EXPORTER_OTLP_ENDPOINT=url,
                   OTEL_EXPANSION_DEBUG="1")]
    wait_for_senders(home)
    execs = home.parent / "execs.py"
    execs.write_text(EXECS)
    results.append(run([str(execs)], home, OTEL_EXPANSION_SEND="false"))  # a journal-v2 record
    results.append(run([cli, "hello", "b"], home, OTEL_EXPANSION_SEND="false", OTEL_EXPANSION_LEVEL="enhanced"))
    for command in (["flush", "--timeout", "5"], ["level", "enhanced"], ["reset-id"], ["status"],
                    ["consent", "deny"], ["clear"]):
        results.append(run(["-m", "otel_expansion", *command, "--home", str(home)], home,
                           OTEL_EXPORTER_OTLP_ENDPOINT=url))
    wait_for_senders(home)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", WRITTEN)
def test_planted_link_is_never_followed(tmp_path: Path, name: str) -> None:
    """A link at any written path: the CLI's output is unchanged, nothing outside the home changes, and
    no command ends in a traceback."""
    outside = victim(tmp_path)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.symlink(outside / ("dir" if name in DIRECTORIES else "file"), home / name)
    before = snapshot(outside)
    with otlp_server() as srv:
        results = exercise(home, srv.url)
    assert results[0].stdout == "hello a\n" and results[0].returncode == 0
    assert results[1].stdout == "before exec\nafter exec\n" and results[1].returncode == 0
    assert results[2].stdout == "hello b\n" and results[2].returncode == 0
    for r in results:
        assert "Traceback" not in r.stderr, r.stderr
    assert snapshot(outside) == before


@pytest.mark.slow
def test_home_that_is_a_link_stands_down(tmp_path: Path) -> None:
    """The state directory itself planted as a link to another directory: nothing is written there."""
    outside = victim(tmp_path)
    home = tmp_path / "home"
    os.symlink(outside / "dir", home)
    before = snapshot(outside)
    with otlp_server() as srv:
        results = exercise(home, srv.url)
    assert results[0].stdout == "hello a\n" and results[0].returncode == 0
    assert "symbolic link" in results[0].stderr  # debug says why telemetry stood down
    assert not [r.stderr for r in results if "Traceback" in r.stderr]
    assert snapshot(outside) == before


@pytest.mark.slow
def test_root_leaves_another_users_home_alone(tmp_path: Path) -> None:
    """Root running a CLI whose home belongs to another user changes nothing in it, and says why in debug."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "journal").mkdir(mode=0o700)
    (home / "session").write_text("theirs")
    for path in (home, home / "journal", home / "session"):
        os.chown(path, 4321, 4321, follow_symlinks=False)
    before = snapshot(home)
    with otlp_server() as srv:
        results = exercise(home, srv.url)
        assert srv.requests == []
    assert results[0].stdout == "hello a\n" and results[0].returncode == 0
    assert "belongs to uid 4321" in results[0].stderr
    assert not [r.stderr for r in results if "Traceback" in r.stderr]
    assert snapshot(home) == before


def test_umask_000_creates_private_parents(tmp_path: Path) -> None:
    """Under umask 000 the missing parents of the state directory are created 0700, not 0777."""
    home = tmp_path / "a" / "b" / "home"
    code = "import os; os.umask(0); import runpy, sys; sys.argv = ['democli', 'hello', 'x']; " \
           f"runpy.run_path({str(ROOT / 'examples' / 'democli.py')!r}, run_name='__main__')"
    result = run(["-c", code], home, OTEL_EXPANSION_SEND="false")
    assert result.returncode == 0 and result.stdout == "hello x\n", result.stderr
    for path in (tmp_path / "a", tmp_path / "a" / "b", home, home / "journal"):
        assert path.stat().st_mode & 0o777 == 0o700, path
    for path in home.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0, path


def test_temp_names_are_random_and_stale_ones_swept(tmp_path: Path) -> None:
    """Temp files use unpredictable names; leftovers of a kill -9 are swept by the next sender round."""
    from otel_expansion.config import paths
    from otel_expansion.workers import sender

    home = tmp_path / "home"
    paths.ensure_dir(str(home / "journal"))
    stale = [home / "session.1a2b3c4d5e6f.tmp", home / "journal" / "0001-1-ab.rec.0a0b0c0d0e0f.tmp"]
    fresh = home / "consent.ffffffffffff.tmp"
    for path in (*stale, fresh):
        path.write_bytes(b"half")
    old = time.time() - 3600
    for path in stale:
        os.utime(path, (old, old))
    planted = home / "endpoint.tmp"  # a link at a guessable name is never opened
    os.symlink(tmp_path / "nowhere", planted)
    paths.write_private(str(home / "endpoint"), b"http://127.0.0.1:1")
    assert not (tmp_path / "nowhere").exists()
    sender.run_round(str(home), sender.settings_for(str(home)), send=False)
    assert [p.exists() for p in stale] == [False, False] and fresh.exists()
