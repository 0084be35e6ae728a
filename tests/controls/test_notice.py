"""The first-run notice names the host's own `telemetry` commands; shown once, on a terminal, never in CI."""

from __future__ import annotations

from pathlib import Path

from otel_expansion.config import Level
from otel_expansion.privacy.consent import notice_text
from tests.conftest import RunCli, journal_records
from tests.privacy.test_consent import run_on_tty

GROUP_APP = """
import click
import otel_expansion

otel_expansion.init("optgroup", "1.0", consent={consent!r})

@click.group()
def cli():
    pass

@cli.command()
def work():
    click.echo("working")

otel_expansion.add_telemetry_commands(cli, prog="optgroup")
cli()
"""


def test_notice_names_the_commands_the_level_and_how_to_opt_out() -> None:
    """With the group added: the program's own commands to see what is sent and to opt out; short."""
    text = notice_text("mycli", Level.ENHANCED, "MYCLI_NO_TELEMETRY", program="mycli")
    assert "(level: enhanced)" in text and "`mycli telemetry show`" in text
    assert "`mycli telemetry disable`" in text and "MYCLI_NO_TELEMETRY=1 or DO_NOT_TRACK=1" in text
    assert text.count("\n") == 2 and len(text) < 600
    plain = notice_text("mycli", Level.BASIC, None)
    assert "telemetry disable" not in plain and "OTEL_EXPANSION_DEBUG=1" in plain and "DO_NOT_TRACK=1" in plain


def test_ask_text_asks_before_saying_anything_is_collected() -> None:
    """Under consent='ask' the text does not claim collection; it says nothing happens without a yes."""
    text = notice_text("mycli", Level.FULL, None, program="mycli", policy="ask")
    assert "would like to collect" in text and " collects " not in text
    assert "Nothing is collected unless you agree" in text and "`mycli telemetry enable`" in text
    assert "stack traces" in text  # full says what more it includes


def test_first_run_on_a_terminal_shows_it_once_before_the_output(tmp_path: Path) -> None:
    """democli on a pty: the notice, naming `democli telemetry ...`, precedes the output, once."""
    home = tmp_path / "home"
    code, first = run_on_tty("democli.py", home, args=("hello", "x"))
    assert code == 0 and "democli collects anonymous usage telemetry (level: enhanced)" in first
    assert "`democli telemetry disable`" in first and "`democli telemetry show`" in first
    assert first.index("telemetry disable") < first.index("hello x")
    _, second = run_on_tty("democli.py", home, args=("hello", "y"))
    assert "collects anonymous" not in second and "hello y" in second


def test_running_a_telemetry_command_first_is_the_choice(tmp_path: Path) -> None:
    """`democli telemetry disable` as the very first command: no notice, nothing stored, none later."""
    home = tmp_path / "home"
    code, out = run_on_tty("democli.py", home, args=("telemetry", "disable"))
    assert code == 0 and "collects anonymous" not in out and "telemetry disabled" in out
    _, later = run_on_tty("democli.py", home, args=("hello", "z"))
    assert "collects anonymous" not in later and journal_records(home) == []


def test_never_without_a_terminal_or_in_ci(tmp_path: Path, run_cli: RunCli, home: Path) -> None:
    """Piped runs and CI runs never see the notice (and are not marked as having seen it)."""
    result = run_cli("hello", "x", OTEL_EXPANSION_SEND="false")
    assert result.returncode == 0 and result.stderr == ""
    _, out = run_on_tty("democli.py", home, args=("hello", "x"), CI="true")
    assert "collects anonymous" not in out and not (home / "notice-shown").exists()


def test_ask_with_the_group_asks_before_the_command_and_yes_records_this_run(tmp_path: Path) -> None:
    """consent='ask': the question names the commands and comes before any output; yes counts this run."""
    script = tmp_path / "optgroup.py"
    script.write_text(GROUP_APP.format(consent="ask"))
    home = tmp_path / "yes"
    code, out = run_on_tty(str(script), home, b"y\n", args=("work",))
    assert code == 0 and "would like to collect" in out and "`optgroup telemetry enable`" in out
    assert out.index("[y/N]") < out.index("working")
    assert [c["name"] for r in journal_records(home) for c in r["commands"]] == ["work"]  # type: ignore[attr-defined]
    no_home = tmp_path / "no"
    code, out = run_on_tty(str(script), no_home, b"n\n", args=("work",))
    assert code == 0 and "working" in out and journal_records(no_home) == []
    assert (no_home / "consent").read_text() == "denied"
