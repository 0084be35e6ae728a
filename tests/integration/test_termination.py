"""``init(record_termination=True)``: a run a SIGTERM or SIGHUP ends is recorded, and the process still
dies of the signal, as it would have; without it (the default) such a run is not recorded."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env, journal_records

CLICK_APP = r"""
import sys, time, click, otel_expansion
otel_expansion.init("clk", record_termination=sys.argv[1] == "on")

@click.group()
def cli():
    pass

@cli.command()
@click.option("-v", is_flag=True)
def sync(v):
    print("ready", flush=True)
    time.sleep(60)

cli(sys.argv[2:])
"""

OWN_HANDLER = r"""
import signal, sys, time, otel_expansion
signal.signal(signal.SIGTERM, lambda s, f: (print("mine", flush=True), sys.exit(3)))
otel_expansion.init("own", record_termination=True)
print("ready", flush=True)
time.sleep(60)
"""


def _default_signals() -> None:
    """The program starts with SIGTERM and SIGHUP at their default action, whatever the test runner has
    (under `nohup` SIGHUP is ignored, and an ignored signal is left ignored: the program's choice)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start(tmp_path: Path, source: str, *args: str, **env: str) -> tuple[subprocess.Popen[str], Path]:
    home = tmp_path / "home"
    script = tmp_path / "app.py"
    script.write_text(source)
    proc = subprocess.Popen([sys.executable, str(script), *args], env=clean_env(home, OTEL_EXPANSION_SEND="false",
                                                                              **env),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_signals)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc, home


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_cli_run_ended_by_a_signal_is_recorded_and_the_process_dies_of_it(tmp_path: Path, sig: int) -> None:
    """The command in progress is recorded with exit status 128 + the signal, its name and declared flag;
    the parent sees the process killed by that signal, with nothing printed by us."""
    proc, home = start(tmp_path, CLICK_APP, "on", "sync", "-v", OTEL_EXPANSION_LEVEL="full")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -sig and out == "" and err == ""
    (record,) = journal_records(home)
    (cmd,) = record["commands"]  # type: ignore[misc]
    assert (cmd["name"], cmd["exit"], cmd["args"]) == ("sync", 128 + sig, ("-v",)), cmd


def test_without_the_option_a_killed_run_is_not_recorded(tmp_path: Path) -> None:
    """The default installs no handler: the signal's default action ends the process, no exit handler
    runs, nothing is recorded (docs/concepts.md says so)."""
    proc, home = start(tmp_path, CLICK_APP, "off", "sync")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert journal_records(home) == []


def test_the_programs_own_handler_is_kept(tmp_path: Path) -> None:
    """A program that handles SIGTERM itself keeps its handler and its way out (here: exit 3), and its
    run is recorded at that exit as any other."""
    proc, home = start(tmp_path, OWN_HANDLER)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and out == "mine\n"
    (record,) = journal_records(home)
    assert [c["exit"] for c in record["commands"]] == [3]  # type: ignore[attr-defined]


def test_off_means_no_handler(tmp_path: Path) -> None:
    """At level off nothing is hooked, this handler included: the process dies of the signal untouched."""
    proc, home = start(tmp_path, CLICK_APP, "on", "sync", OTEL_EXPANSION_LEVEL="off")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM and not home.exists()


SIGNAL_DURING_EXIT = r"""
import os, signal, otel_expansion
from otel_expansion import journal
otel_expansion.init("late", record_termination=True)
original = journal.append

def append(*args, **kwargs):  # the signal arrives while the exit path writes the run
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)

journal.append = append
print("ready", flush=True)
"""


def test_a_signal_during_the_exit_path_lets_it_finish_then_kills(tmp_path: Path) -> None:
    """SIGTERM while the run is being written at exit: the write completes (the run keeps the status it
    was exiting with), then the process dies of the signal."""
    proc, home = start(tmp_path, SIGNAL_DURING_EXIT)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    (record,) = journal_records(home)
    assert [c["exit"] for c in record["commands"]] == [0]  # type: ignore[attr-defined]


LOCK_HELD = r"""
import os, signal, sys, time, otel_expansion
t = otel_expansion.init("held", record_termination=True)
lock = t.recorder._lock
with lock:  # the main thread inside the recorder's critical section (as when a command ends) ...
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # ... when the signal arrives
    time.sleep(60)
"""


def test_a_signal_inside_our_own_lock_still_ends_the_process(tmp_path: Path) -> None:
    """The handler runs in the main thread wherever the signal found it, possibly holding the recorder's
    lock: recording from there waited for that lock forever, and the host never died of its SIGTERM. It
    now dies on time (the run then goes unrecorded; the recording waits TERMINATION_WRITE_S at most)."""
    import time

    from otel_expansion._runtime import TERMINATION_WRITE_S

    started = time.monotonic()
    proc, _ = start(tmp_path, LOCK_HELD)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGTERM, err
    assert time.monotonic() - started < TERMINATION_WRITE_S + 20
