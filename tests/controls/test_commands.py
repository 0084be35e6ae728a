"""`<prog> telemetry ...` under click, typer and argparse: output, exit status, what is stored and sent.

Every test runs the example apps as real subprocesses with a private state directory; sending goes to a
real OTLP/HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RunCli, journal_records
from tests.export.servers import otlp_server, refused_port


@dataclass(frozen=True)
class App:
    script: str
    prog: str  # the name the user types, as the commands print it
    service: str
    work: tuple[str, ...]  # one ordinary command of the app
    work_name: str  # ... as recorded


APPS = {
    "click": App("democli.py", "democli", "democli", ("hello", "x"), "hello"),
    "typer": App("typer_cli.py", "typer_cli", "typercli", ("users", "list"), "users list"),
    "argparse": App("argparse_cli.py", "argcli", "argcli", ("db", "migrate"), "db migrate"),
}


class Runner:
    def __init__(self, app: App, run_cli: RunCli, home: Path) -> None:
        self.app, self._run, self.home = app, run_cli, home

    def __call__(self, *args: str, **env: str) -> tuple[int, str, str]:
        env.setdefault("OTEL_EXPANSION_SEND", "false")
        result = self._run(*args, script=self.app.script, **env)
        return result.returncode, result.stdout, result.stderr

    def telemetry(self, *args: str, **env: str) -> tuple[int, str, str]:
        return self("telemetry", *args, **env)

    def work(self, **env: str) -> None:
        code, _, err = self(*self.app.work, **env)
        assert code == 0, err

    def commands(self) -> list[str]:
        return [str(c["name"]) for r in journal_records(self.home) for c in r["commands"]]  # type: ignore[attr-defined]


@pytest.fixture(params=list(APPS))
def cli(request: pytest.FixtureRequest, run_cli: RunCli, home: Path) -> Runner:
    return Runner(APPS[request.param], run_cli, home)


def test_status_says_whether_on_at_what_level_and_why(cli: Runner) -> None:
    """status: exit 0, the level and its source, pending work, and how to see and stop what is sent."""
    cli.work()
    code, out, err = cli.telemetry("status")
    assert code == 0, err
    assert f"{cli.app.service} telemetry: enabled, level enhanced (the program's default)" in out
    assert "pending: 1 run records" in out
    assert re.search(r"next send: (with the app's (next|first) run|not by itself: sending is off)", out), out
    assert f"`{cli.app.prog} telemetry show`" in out and f"`{cli.app.prog} telemetry disable`" in out
    info = json.loads(cli.telemetry("status", "--json")[1])
    assert info["service"] == cli.app.service and info["journal_records"] == 2 and info["level_source"] == "default"


def test_bare_group_shows_status_and_help_lists_every_command(cli: Runner) -> None:
    """`telemetry` alone is status; --help names every subcommand with the program's own name."""
    code, out, _ = cli.telemetry()
    assert code == 0 and "enabled, level enhanced" in out
    code, out, _ = cli.telemetry("--help")
    assert code == 0 and out.startswith(f"usage: {cli.app.prog} telemetry COMMAND")
    for sub in ("status", "enable", "disable", "level", "show", "flush", "reset-id", "debug", "docs"):
        assert f"\n  {sub}" in out


def test_unknown_subcommand_and_bad_level_are_usage_errors(cli: Runner) -> None:
    """Mistakes exit 2 with one line on stderr, no traceback, and change nothing."""
    code, _, err = cli.telemetry("bogus")
    assert code == 2 and "unknown command 'bogus'" in err and "Traceback" not in err
    code, _, err = cli.telemetry("level", "loud")
    assert code == 2 and "unknown telemetry level 'loud'" in err
    assert not (cli.home / "consent").exists()


def test_disable_stops_before_this_run_is_stored_and_deletes_pending(cli: Runner) -> None:
    """disable: pending data deleted, its own run never stored, later runs record and send nothing."""
    cli.work()
    assert cli.commands() == [cli.app.work_name]
    code, out, err = cli.telemetry("disable")
    assert code == 0, err
    assert f"{cli.app.service}: telemetry disabled" in out and "deleted 1 pending run records" in out
    assert (cli.home / "consent").read_text() == "denied"
    assert journal_records(cli.home) == []  # neither the earlier run nor the `disable` run itself
    cli.work()
    assert journal_records(cli.home) == []
    with otlp_server() as srv:
        code, out, err = cli.telemetry("flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, OTEL_EXPANSION_SEND="true")
        assert code == 1 and "sent 0 batches" in out and "denied by the user" in err  # as `otel-expansion flush`
        assert srv.requests == []
    assert journal_records(cli.home) == []


def test_enable_turns_collection_back_on(cli: Runner) -> None:
    """enable after disable: the next run is recorded at the program's level; DO_NOT_TRACK still wins."""
    cli.telemetry("disable")
    code, out, _ = cli.telemetry("enable")
    assert code == 0 and f"{cli.app.service}: telemetry enabled (level enhanced)" in out
    assert (cli.home / "consent").read_text() == "granted"
    cli.work()
    assert cli.app.work_name in cli.commands()
    code, out, _ = cli.telemetry("enable", DO_NOT_TRACK="1")
    assert code == 0 and "DO_NOT_TRACK is set" in out
    before = cli.commands()
    cli.work(DO_NOT_TRACK="1")
    assert cli.commands() == before


def test_level_sets_what_the_next_run_records(cli: Runner) -> None:
    """level basic: stored as the user's choice, shown by `level`, and the next record is at basic."""
    code, out, _ = cli.telemetry("level", "basic")
    assert code == 0 and "telemetry level set to basic" in out
    assert cli.telemetry("level")[1].strip() == "basic"
    cli.work()
    (record,) = [r for r in journal_records(cli.home) if r["commands"][0]["name"] == cli.app.work_name]  # type: ignore[index]
    assert record["level"] == 1
    assert "session" not in record  # sessions start at enhanced
    code, out, _ = cli.telemetry("level", "off")
    assert code == 0 and "telemetry disabled" in out and journal_records(cli.home) == []


def test_own_use_is_a_plain_invocation(cli: Runner) -> None:
    """Even at full, running `telemetry ...` is recorded as `telemetry` with its exit code and how long it
    took (never a zero that would pull the report's percentiles down), nothing more."""
    cli.telemetry("level", "full")
    cli.telemetry("show", "--limit", "5")
    cli.telemetry("level", "loud")
    own = [c for r in journal_records(cli.home) for c in r["commands"]]  # type: ignore[attr-defined]
    assert [c["name"] for c in own] == ["telemetry", "telemetry", "telemetry"]
    assert [c["exit"] for c in own] == [0, 0, 2]
    assert all(set(c) <= {"name", "exe", "start", "end", "exit", "error"} and c["end"] > c["start"] for c in own)


def test_show_prints_what_is_pending(cli: Runner) -> None:
    """show summarises what is pending; --json gives the records, already minimised and redacted."""
    cli.work()
    code, out, _ = cli.telemetry("show")
    assert code == 0 and "pending" in out.lower()
    code, out, _ = cli.telemetry("show", "--json")
    assert code == 0
    data = json.loads(out)
    names = [c["name"] for r in data["pending"]["journal"] for c in r["commands"]]
    assert names == [cli.app.work_name, "telemetry"]  # the first `show` itself: a plain invocation


def test_flush_sends_now_and_fails_loudly_when_refused(cli: Runner) -> None:
    """flush sends everything to the collector (exit 0); a refused collector is exit 1 and data stays."""
    cli.work()
    with refused_port() as addr:
        code, _, err = cli.telemetry("flush", "--timeout", "3", OTEL_EXPORTER_OTLP_ENDPOINT=addr.url,
                                     OTEL_EXPANSION_SEND="true")
    assert code == 1 and "error:" in err
    with otlp_server() as srv:
        code, out, err = cli.telemetry("flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, OTEL_EXPANSION_SEND="true")
        assert code == 0, err
        spans = [s.name for r in srv.requests if r.signal == "traces" for rs in r.message().resource_spans
                 for ss in rs.scope_spans for s in ss.spans]
    # the app's command, and the earlier `telemetry flush` (refused) as a bare `telemetry` invocation
    exe = cli.app.service  # a script file's name is never sent: the service name stands in for it
    assert sorted(spans) == sorted([f"{exe} {cli.app.work_name}", f"{exe} telemetry"])
    assert f" batches: {len(spans)} spans" in out  # how many batches depends on self-health points


def test_reset_id_replaces_the_installation_id(cli: Runner) -> None:
    """reset-id: a new random id, reported by status."""
    cli.work()
    before = json.loads(cli.telemetry("status", "--json")[1])["installation_id"]
    code, out, _ = cli.telemetry("reset-id")
    assert code == 0 and "new anonymous installation id" in out
    after = json.loads(cli.telemetry("status", "--json")[1])["installation_id"]
    assert before and after and before != after and len(after) == 32


def test_debug_on_prints_records_and_the_variable_still_wins(cli: Runner) -> None:
    """debug on: each later run prints a short summary of what it records to stderr; OTEL_EXPANSION_DEBUG=false
    silences it (the variable wins, as `otel-expansion debug` documents); off stops; the variable alone turns it
    on."""
    shown = f"{cli.app.service} telemetry (debug) this run:"
    code, out, _ = cli.telemetry("debug", "on")
    assert code == 0 and "printed to stderr as a short summary" in out
    code, _, err = cli(*cli.app.work)
    assert code == 0 and shown in err
    code, _, err = cli(*cli.app.work, OTEL_EXPANSION_DEBUG="false")
    assert code == 0 and "(debug)" not in err
    cli.telemetry("debug", "off")
    code, _, err = cli(*cli.app.work)
    assert code == 0 and "(debug)" not in err
    code, _, err = cli(*cli.app.work, OTEL_EXPANSION_DEBUG="true")
    assert code == 0 and shown in err
    code, out, _ = cli.telemetry("debug")
    assert code == 0 and "effective settings:" in out


def test_debug_output_is_sized_for_a_person(cli: Runner) -> None:
    """With a backlog pending, the first run after `debug on` shows only itself, as a summary of a few dozen
    lines naming the app; `debug off` prints one line and nothing of its own run; --otlp gives the OTLP/JSON."""
    from otel_expansion.sdk.debug import parse_stream

    for _ in range(5):
        cli.work()  # a backlog from before debug was on (OTEL_EXPANSION_SEND=false keeps it pending)
    cli.telemetry("debug", "on")
    code, _, err = cli(*cli.app.work)
    lines = err.splitlines()
    assert code == 0 and any("earlier run records converted too, not shown" in line for line in lines), err
    assert sum(1 for line in lines if line.startswith("  span ")) == 1, err  # this run's span only
    assert len(lines) < 40 and "{" not in err.replace("{invocation}", ""), err  # no JSON dump
    assert all(line.startswith(("  ", f"{cli.app.service} telemetry (debug)")) for line in lines), err
    code, out, err = cli.telemetry("debug", "off")
    assert code == 0 and out.count("\n") == 1 and err == "", (out, err)
    cli.telemetry("debug", "on", "--otlp")
    code, _, err = cli(*cli.app.work)
    requests = parse_stream(err)
    assert code == 0 and {signal for signal, _ in requests} == {"traces", "metrics"}
    spans = [sp for signal, r in requests if signal == "traces" for rs in r["resourceSpans"]
             for ss in rs["scopeSpans"] for sp in ss["spans"]]
    assert len(spans) == 1


def test_docs_prints_this_programs_document(cli: Runner) -> None:
    """docs: the program's own TELEMETRY.md, naming its commands by its own name."""
    code, out, _ = cli.telemetry("docs")
    assert code == 0 and out.startswith(f"# What {cli.app.service} collects")
    assert f"`{cli.app.prog} telemetry disable`" in out and "cli.command.invocations" in out


def test_ordinary_commands_are_unchanged(cli: Runner, run_cli: RunCli) -> None:
    """Adding the group changes neither the app's other commands' output nor their exit status."""
    result = run_cli(*cli.app.work, script=cli.app.script, OTEL_EXPANSION_SEND="false")
    bare = run_cli(*cli.app.work, script=cli.app.script, DO_NOT_TRACK="1")
    assert (result.returncode, result.stdout) == (bare.returncode, bare.stdout) == (0, result.stdout)
