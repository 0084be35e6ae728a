"""Defect #9 of issue 24: user choices survive disable/enable, and warnings say what is in effect.

Each test runs the real programs (the demo CLI, ``python -m otel_expansion``) as subprocesses with a private
home, the way a user meets them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion.config import Stored, endpoint_problem, load, read_stored
from tests.cli.helpers import ox
from tests.conftest import ROOT, RunCli, clean_env

SECRET = "s3cr3t-T0KEN"


def test_level_comes_back_after_disable_and_enable(run_cli: RunCli, home: Path) -> None:
    """`telemetry level basic`, `disable`, `enable`: the next run records at basic, shown as the user's."""
    for command in (["level", "basic"], ["disable"], ["enable"]):
        assert run_cli("telemetry", *command, OTEL_EXPANSION_SEND="false").returncode == 0
    status = json.loads(ox(home, "status", "--json").stdout)
    assert (status["level"], status["level_source"]) == ("basic", "user")
    result = run_cli("telemetry", "level", OTEL_EXPANSION_SEND="false")
    assert result.stdout.strip() == "basic"


def test_a_level_chosen_before_this_release_also_survives(tmp_path: Path) -> None:
    """A consent file written as ``granted:basic`` by an older release (no level-choice file yet)."""
    from otel_expansion.privacy import consent

    home = str(tmp_path / "home")
    (tmp_path / "home").mkdir(mode=0o700)
    (tmp_path / "home" / "consent").write_text("granted:basic")
    consent.deny(home)
    consent.grant(home)
    assert read_stored(home).choice == "granted:basic"


def test_bad_level_variable_warns_with_the_level_in_effect(run_cli: RunCli, home: Path) -> None:
    """The user chose full; OTEL_EXPANSION_LEVEL=banana must not claim 'keeping enhanced'."""
    assert run_cli("telemetry", "level", "full", OTEL_EXPANSION_SEND="false").returncode == 0
    result = run_cli("hello", "a", OTEL_EXPANSION_SEND="false", OTEL_EXPANSION_LEVEL="banana")
    assert (result.returncode, result.stdout) == (0, "hello a\n")
    warnings = [line for line in result.stderr.splitlines() if "OTEL_EXPANSION_LEVEL" in line]
    assert warnings == ["democli telemetry (otel-expansion): warning: OTEL_EXPANSION_LEVEL is not "
                        "off|basic|enhanced|full; ignored (level in effect: full)"]
    assert "banana" not in result.stderr


def test_malformed_endpoint_warns_in_the_run_and_flush_sends_nothing(run_cli: RunCli, home: Path) -> None:
    """The CLI run says so; `flush` holds the data and says why instead of sending to localhost:4318."""
    bad = f"http://{SECRET}@collector:43x8"
    result = run_cli("hello", "a", OTEL_EXPANSION_SEND="false", OTEL_EXPORTER_OTLP_ENDPOINT=bad)
    assert (result.returncode, result.stdout) == (0, "hello a\n")
    assert "democli telemetry (otel-expansion): warning: OTEL_EXPORTER_OTLP_ENDPOINT has an invalid port" in (
        result.stderr)
    flushed = ox(home, "flush", "--timeout", "5", OTEL_EXPORTER_OTLP_ENDPOINT=bad)
    assert flushed.returncode == 1
    assert "localhost:4318" not in flushed.stderr and "sending to" not in flushed.stderr
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is not a valid URL" in flushed.stderr
    assert SECRET not in flushed.stderr + flushed.stdout + result.stderr
    status = json.loads(ox(home, "status", "--json", OTEL_EXPORTER_OTLP_ENDPOINT=bad).stdout)
    assert status["endpoint_problem"] and status["spool_series"] > 0  # held, and said so


def test_malformed_init_endpoint_is_held_not_replaced(tmp_path: Path) -> None:
    """init(endpoint=<malformed>): warned in the run; the stored endpoint makes `flush` hold, not redirect."""
    home = tmp_path / "home"
    script = ("import otel_expansion\n"
              f"otel_expansion.init('mycli', endpoint='ftp://{SECRET}@host')\n"
              "with otel_expansion.command('go'):\n    pass\n")
    run = subprocess.run([sys.executable, "-c", script], env=clean_env(home, OTEL_EXPANSION_SEND="false"),
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    assert "mycli telemetry (otel-expansion): warning: the collector endpoint" in run.stderr
    assert SECRET not in run.stderr
    flushed = ox(home, "flush", "--timeout", "5")
    assert flushed.returncode == 1 and "localhost:4318" not in flushed.stderr
    assert "not a valid URL" in flushed.stderr and SECRET not in flushed.stderr


def test_every_warning_has_the_prefix_and_no_value(run_cli: RunCli, home: Path) -> None:
    """Bad values in many variables: each warning starts with the prefix and none repeats the value. In the
    app's run the prefix names the app (its user never chose otel-expansion); in our own CLI, ours."""
    env = {"OTEL_EXPANSION_LEVEL": SECRET, "OTEL_EXPANSION_DEBUG": SECRET, "OTEL_EXPANSION_SEND": "false",
           "OTEL_EXPORTER_OTLP_PROTOCOL": SECRET, "OTEL_EXPORTER_OTLP_COMPRESSION": SECRET,
           "OTEL_EXPORTER_OTLP_CERTIFICATE": f"/nonexistent/{SECRET}", "OTEL_EXPORTER_OTLP_TIMEOUT": SECRET,
           "OTEL_EXPANSION_SESSION_IDLE": SECRET, "OTEL_RESOURCE_ATTRIBUTES": SECRET}
    run = run_cli("hello", "a", **env)
    flushed = ox(home, "flush", "--timeout", "3", **{**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    for stream, prefix in ((run.stderr, "democli telemetry (otel-expansion): warning: "),
                           (flushed.stderr, "otel-expansion: warning: ")):
        warnings = [line for line in stream.splitlines() if "warning" in line.lower()]
        assert warnings, stream
        assert all(line.startswith(prefix) for line in warnings), warnings
        assert SECRET not in stream


def test_one_loader_reads_each_stored_choice(tmp_path: Path) -> None:
    """The library, the sender and the CLI get their stored choices from the same reader."""
    from otel_expansion.cli.common import settings_for as cli_settings
    from otel_expansion.workers.sender import settings_for as sender_settings

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "consent").write_text("granted:basic")
    (home / "debug").write_text("on dry-run")
    (home / "endpoint").write_text("http://127.0.0.1:9")
    (home / "opt-out-env").write_text("MYAPP_NO_TELEMETRY")
    stored = read_stored(str(home))
    assert (stored.choice, stored.debug, stored.endpoint, stored.opt_out_env) == (
        "granted:basic", "on dry-run", "http://127.0.0.1:9", "MYAPP_NO_TELEMETRY")
    env = {"OTEL_EXPANSION_HOME": str(home)}
    cli = cli_settings(str(home), "mycli")
    assert (cli.level.name, cli.debug, cli.dry_run, cli.endpoint, cli.opt_out_env) == (
        "BASIC", True, True, "http://127.0.0.1:9", "MYAPP_NO_TELEMETRY")
    sender = sender_settings(str(home))
    assert (sender.level.name, sender.debug, sender.endpoint) == ("FULL", True, "http://127.0.0.1:9")
    lib = load("mycli", environ=env, stored=Stored(stored.choice, stored.debug))
    assert (lib.level.name, lib.debug, lib.endpoint) == ("BASIC", True, None)
    assert load("mycli", environ={**env, "MYAPP_NO_TELEMETRY": "1"}).opt_out_reason == "MYAPP_NO_TELEMETRY"


def test_endpoint_check_never_quotes_the_value() -> None:
    for bad in ("", "localhost", "ftp://h", "http://", "http://a b", f"http//{SECRET}", f"http://{SECRET}@h:4x",
                "http://h:99999"):
        problem = endpoint_problem(bad)
        assert problem and SECRET not in problem
    for good in ("http://localhost:4318", "https://u:p@collector.example/otlp", "http://[::1]:4318"):
        assert endpoint_problem(good) is None


def test_every_variable_row_is_read_by_the_table() -> None:
    """Each VARIABLES row has a parser in the table (OTLP rows: config/otlp.py reads the family), and the
    library reads the environment through it: what a row's parser says is what the settings hold."""
    from otel_expansion.config import BAD_VALUE, VARIABLES, Level, resolve, variable

    for row in VARIABLES:
        if row.kind == "otlp":
            with pytest.raises(ValueError, match=r"config/otlp\.py"):
                variable(row.name, {})
            continue
        variable(row.name, {})  # unset: the row's default, no error
    env = {"OTEL_SERVICE_NAME": "  svc  ", "OTEL_EXPANSION_HOME": " /tmp/x-home ", "OTEL_EXPANSION_LEVEL": "basic",
           "OTEL_RESOURCE_ATTRIBUTES": "team=a%20b", "DO_NOT_TRACK": "no"}
    assert variable("OTEL_SERVICE_NAME", env) == "svc"
    assert variable("OTEL_EXPANSION_LEVEL", env) is Level.BASIC
    assert variable("OTEL_EXPANSION_LEVEL", {"OTEL_EXPANSION_LEVEL": "loud"}) is BAD_VALUE
    assert variable("DO_NOT_TRACK", env) is False and variable("DO_NOT_TRACK", {"DO_NOT_TRACK": "1"}) is True
    s = resolve("app", environ=env, file_values={}, stored_debug="")
    # the service name is the app's own unless it opts in to the environment's (privacy.vocabulary)
    assert (s.service_name, s.home, s.level, s.resource_attributes, s.opt_out_reason) == (
        "app", "/tmp/x-home", Level.BASIC, (("team", "a b"),), None)
    assert resolve("app", environ=env, file_values={}, stored_debug="", service_name_env=True).service_name == "svc"
