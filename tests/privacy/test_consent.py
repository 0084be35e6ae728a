"""First-run notice and consent, on a real pseudo-terminal and without one."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import EXAMPLES, clean_env, journal_records


def _controlling_terminal() -> None:
    """In the child: a session of its own with the pty as its controlling terminal, so that a typed
    Ctrl-C (\\x03) is turned into SIGINT by the terminal, as at a shell."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_on_tty(script: str, home: Path, answer: bytes | None = None, args: tuple[str, ...] = (),
               **env: str) -> tuple[int, str]:
    """Run an example with stdin/stdout/stderr on a pty (its controlling terminal); type ``answer`` when asked."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / script), *args], stdin=terminal, stdout=terminal,
                            stderr=terminal, env=clean_env(home, OTEL_EXPANSION_SEND="false", **env), close_fds=True,
                            preexec_fn=_controlling_terminal)
    os.close(terminal)
    output = b""
    answered = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and not answered and b"[y/N]" in output:
                os.write(controller, answer)
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(10)
    os.close(controller)
    return code, output.decode(errors="replace")


def test_notify_policy_shows_notice_once_on_a_terminal(tmp_path: Path) -> None:
    """The first interactive run tells the user how to opt out; later runs do not repeat it."""
    home = tmp_path / "home"
    code, first = run_on_tty("democli.py", home, args=("hello", "x"))
    assert code == 0 and "collects anonymous usage telemetry" in first and "DEMOCLI_NO_TELEMETRY=1" in first
    _, second = run_on_tty("democli.py", home, args=("hello", "y"))
    assert "collects anonymous usage telemetry" not in second and "hello y" in second
    assert len(journal_records(home)) == 2


def test_ask_policy_collects_only_after_yes(tmp_path: Path) -> None:
    """Opt-in: 'n' records nothing and is remembered; a fresh user answering 'y' is recorded."""
    no_home = tmp_path / "no"
    code, out = run_on_tty("optin_cli.py", no_home, b"n\n")
    assert code == 0 and "[y/N]" in out and "working" in out
    assert journal_records(no_home) == [] and (no_home / "consent").read_text() == "denied"
    _, again = run_on_tty("optin_cli.py", no_home, b"y\n")
    assert "[y/N]" not in again and journal_records(no_home) == []
    yes_home = tmp_path / "yes"
    run_on_tty("optin_cli.py", yes_home, b"y\n")  # asked at exit (the app has no telemetry commands to name)
    assert (yes_home / "consent").read_text() == "granted<=enhanced" and journal_records(yes_home) == []
    assert not (yes_home / "level-choice").exists()  # a yes is consent, not a choice of level
    _, next_run = run_on_tty("optin_cli.py", yes_home)
    assert "[y/N]" not in next_run and len(journal_records(yes_home)) == 1


def test_no_prompt_without_a_terminal_or_in_ci(tmp_path: Path) -> None:
    """Piped and CI runs are never prompted; opt-in apps then collect nothing."""
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, str(EXAMPLES / "optin_cli.py")], env=clean_env(home),
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and result.stderr == "" and not home.exists()
    _, out = run_on_tty("optin_cli.py", home, b"y\n", CI="true")
    assert "[y/N]" not in out and not home.exists()


def test_ask_grants_the_level_the_app_chose(tmp_path: Path) -> None:
    """An opt-in app that wants `full` asks for full, and a yes stores full."""
    script = tmp_path / "optin_full.py"
    script.write_text("import otel_expansion\notel_expansion.init('optfull', consent='ask', level='full')\n"
                      "with otel_expansion.command('x'):\n    pass\n")
    home = tmp_path / "home"
    code, out = run_on_tty(str(script), home, b"y\n")
    assert code == 0 and "(level: full)" in out and "would like to collect" in out
    assert (home / "consent").read_text() == "granted<=full"
    run_on_tty(str(script), home)
    assert journal_records(home)[0]["level"] == 3


def test_a_yes_is_consent_not_a_level_choice(tmp_path: Path) -> None:
    """After a yes to the question (shown at enhanced), the user's OTEL_EXPANSION_LEVEL still applies
    (basic, and off records nothing), and the app cannot raise itself past what was shown; only
    `telemetry level` stores a level that beats the variable (docs/configuration.md)."""
    from otel_expansion.config import resolve

    home = tmp_path / "home"
    run_on_tty("optin_cli.py", home, b"y\n")
    choice = (home / "consent").read_text()
    assert choice == "granted<=enhanced"

    def level(env: dict[str, str], app: str | None = None) -> str:
        return str(resolve("optin", environ=env, home=str(home), consent="ask", level=app,
                           stored_choice=choice).level)

    assert level({"OTEL_EXPANSION_LEVEL": "basic"}) == "basic"
    assert level({"OTEL_EXPANSION_LEVEL": "off"}) == "off"
    assert level({"OTEL_EXPANSION_LEVEL": "full"}) == "full"  # the user's own variable
    assert level({}) == "enhanced" and level({}, app="full") == "enhanced"  # the app: up to what was shown
    assert level({}, app="basic") == "basic"
    run_on_tty("optin_cli.py", home, OTEL_EXPANSION_LEVEL="off")
    assert journal_records(home) == []


ASK_ARGPARSE = """import argparse
import sys
import otel_expansion
otel_expansion.init("askapp", "1.0", consent="ask")
parser = argparse.ArgumentParser(prog="askapp")
parser.add_subparsers(dest="cmd").add_parser("hello").add_argument("name")
if "--catch" in sys.argv:
    sys.argv.remove("--catch")
    try:
        otel_expansion.add_telemetry_commands(parser)
    except KeyboardInterrupt:
        print("askapp: interrupted", file=sys.stderr)
        sys.exit(130)
else:
    otel_expansion.add_telemetry_commands(parser)
print("hello", parser.parse_args().name)
"""


def test_ctrl_d_at_the_question_ends_the_prompt_line(tmp_path: Path) -> None:
    """Ctrl-D (EOF) answers no and ends the prompt's line: the program's output starts on a line of its own."""
    script = tmp_path / "ask.py"
    script.write_text(ASK_ARGPARSE)
    code, out = run_on_tty(str(script), tmp_path / "home", b"\x04", args=("hello", "ada"))
    assert code == 0 and "[y/N] \r\nhello ada\r\n" in out, out
    assert (tmp_path / "home" / "consent").read_text() == "denied"


def test_ctrl_c_at_the_question_stops_the_program_and_stores_nothing(tmp_path: Path) -> None:
    """Ctrl-C at the question asked before the command: the program stops by SIGINT (130 at a shell) after
    ending the prompt's line, no answer is stored, and the traceback shows one frame of ours, not our internals."""
    script = tmp_path / "ask.py"
    script.write_text(ASK_ARGPARSE)
    code, out = run_on_tty(str(script), tmp_path / "home", b"\x03", args=("hello", "ada"))
    assert code == -2 and "hello ada" not in out, out  # killed by SIGINT, as Python does on an uncaught Ctrl-C
    assert "[y/N] ^C\r\n" in out and "KeyboardInterrupt: at the telemetry question; no answer stored" in out
    assert "consent.py" not in out and "_settle_notice" not in out and out.count('File "') == 2, out
    assert not (tmp_path / "home" / "consent").exists()


def test_ctrl_c_at_the_question_reaches_the_hosts_own_handler(tmp_path: Path) -> None:
    """A host that handles KeyboardInterrupt itself gets it, and exits as it chose (130 here)."""
    script = tmp_path / "ask.py"
    script.write_text(ASK_ARGPARSE)
    code, out = run_on_tty(str(script), tmp_path / "home", b"\x03", args=("hello", "ada", "--catch"))
    assert code == 130 and "[y/N] ^C\r\naskapp: interrupted\r\n" in out and "Traceback" not in out, out
    assert not (tmp_path / "home" / "consent").exists()


def test_ctrl_c_at_the_question_asked_at_exit_ends_quietly(tmp_path: Path) -> None:
    """The question held until exit: Ctrl-C ends the line, stores nothing, prints no traceback, and the
    program's own exit status stands (it had finished)."""
    home = tmp_path / "home"
    code, out = run_on_tty("optin_cli.py", home, b"\x03")
    assert code == 0 and "working" in out and out.endswith("[y/N] ^C\r\n"), out
    assert "Traceback" not in out and "Exception ignored" not in out
    assert not (home / "consent").exists()
    _, again = run_on_tty("optin_cli.py", home, b"n\n")  # no answer was stored: asked again
    assert "[y/N]" in again and (home / "consent").read_text() == "denied"
