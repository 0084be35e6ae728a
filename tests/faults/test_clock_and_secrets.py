"""Issue 12 (4, 5): a clock moved back never stops sending; no secret reaches ``ps`` or any output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_env
from tests.export.servers import otlp_server, slow
from tests.faults.conftest import processes_for, wait_for_senders

pytestmark = pytest.mark.faults

CLI = str(ROOT / "examples" / "democli.py")


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, CLI, *args], env=clean_env(home, **env), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_clock_moved_back_a_day_still_sends(tmp_path: Path) -> None:
    """The sender's state was written a day "in the future" (the clock has since been moved back a day):
    the next run still starts a sender that delivers, instead of waiting a day."""
    from otel_expansion.config.paths import SENDER_STATE

    home = tmp_path / "home"
    assert cli(home, "hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
    later = time.time() + 86400  # what the clock said when the sender last wrote its state
    (home / SENDER_STATE).write_text(f"{later + 60:.3f} {later - 1:.3f} {later:.3f}\n")
    with otlp_server() as srv:
        result = cli(home, "hello", "b", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        assert result.returncode == 0 and result.stdout == "hello b\n"
        srv.wait_for(1)  # bounded: raises if nothing arrives
        wait_for_senders(home)
    from otel_expansion.export import launcher

    assert launcher.next_send_at(str(home)) <= time.time() + 3600  # re-armed from the corrected clock


def test_next_send_beyond_policy_is_void(tmp_path: Path) -> None:
    """A stored next-send time further ahead than any backoff or Retry-After allows counts as due now."""
    from otel_expansion.export import launcher, transport

    assert transport.MAX_RETRY_AFTER_S <= launcher.MAX_DEFER_S
    home = str(tmp_path)
    now = time.time()
    launcher._write_state(home, now + 10 * 86400, 0)
    assert launcher.next_send_at(home) <= now + launcher.MAX_DEFER_S + 1  # clamped when written
    (tmp_path / "sender.state").write_text(f"{now + 3 * 86400:.3f} 0 {now:.3f}\n")  # an older version's file
    assert launcher.next_send_at(home) == 0.0 and launcher.should_start(home, send=True)


SECRET_APP = """
import sys, otel_expansion
otel_expansion.init("secretapp", endpoint=sys.argv[1])
with otel_expansion.command("deploy"):
    pass
print("done")
"""


@pytest.mark.slow
def test_no_secret_in_ps_or_any_output(tmp_path: Path) -> None:
    """init(endpoint="http://user:secret@host"): the detached sender's command line (what every local user
    sees in ps) holds no secret, nor do debug, status and flush output or the sender's log."""
    home = tmp_path / "home"
    with otlp_server() as srv:
        srv.behaviour = slow(3.0)  # keeps the sender alive long enough to inspect it
        endpoint = srv.url.replace("http://", "http://user:s3cr3t-pw@") + "?token=s3cr3t-tok"
        result = subprocess.run([sys.executable, "-c", SECRET_APP, endpoint], env=clean_env(home), cwd=ROOT,
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 0 and result.stdout == "done\n", result.stderr
        srv.wait_for(1)
        senders = processes_for(home)
        assert senders, "the sender should still be waiting on the slow receiver"
        for _pid, argv in senders:
            assert not any("s3cr3t" in a for a in argv), argv
        wait_for_senders(home)
        outputs = [result.stdout, result.stderr]
        env = clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
        for command in (["debug"], ["status"], ["flush", "--timeout", "5"], ["show"]):
            r = subprocess.run([sys.executable, "-m", "otel_expansion", *command, "--home", str(home)], env=env,
                               cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            outputs += [r.stdout, r.stderr]
    outputs.append((home / "sender.log").read_text() if (home / "sender.log").exists() else "")
    leaks = [o for o in outputs if "s3cr3t" in o]
    assert leaks == []
    assert os.stat(home / "endpoint").st_mode & 0o077 == 0  # remembered for flush, private
