"""Settings: environment precedence, opt-out, bad values."""

from __future__ import annotations

import pytest

from otel_expansion.config import Level, parse_resource_attributes, resolve
from otel_expansion.config import warn_once as warn_mod


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    warn_mod.forget()


def test_defaults_are_enhanced_and_sending() -> None:
    """With nothing set, the app's default (enhanced) applies and data is sent."""
    s = resolve("app", environ={}, home="/tmp/x")
    assert s.level == Level.ENHANCED and s.level_source == "default" and s.send and not s.debug


@pytest.mark.parametrize(
    "env",
    [{"DO_NOT_TRACK": "1"}, {"DO_NOT_TRACK": "true"}, {"OTEL_SDK_DISABLED": "true"}, {"MYAPP_NO_TELEMETRY": "yes"}],
)
def test_opt_out_wins_over_everything(env: dict[str, str]) -> None:
    """DO_NOT_TRACK, OTEL_SDK_DISABLED and the app's variable beat an explicit level and a stored grant."""
    env = {**env, "OTEL_EXPANSION_LEVEL": "full"}
    s = resolve("app", environ=env, opt_out_env="MYAPP_NO_TELEMETRY", stored_choice="granted:full")
    assert s.level == Level.OFF and s.level_source == "opt-out" and s.opt_out_reason


def test_do_not_track_zero_does_not_opt_out() -> None:
    """DO_NOT_TRACK=0 means tracking is allowed."""
    assert resolve("app", environ={"DO_NOT_TRACK": "0"}).level == Level.ENHANCED


def test_env_level_beats_app_level_and_the_stored_command_beats_env() -> None:
    """OTEL_EXPANSION_LEVEL beats the app's level; the user's explicit `level` command beats both (issue 14)."""
    s = resolve("app", environ={"OTEL_EXPANSION_LEVEL": "basic"}, level="full", file_values={})
    assert s.level == Level.BASIC and s.level_source == "env"
    s = resolve("app", environ={"OTEL_EXPANSION_LEVEL": "basic"}, level="full", stored_choice="granted:full",
                file_values={})
    assert s.level == Level.FULL and s.level_source == "user"


def test_stored_denial_turns_off() -> None:
    """A persisted `consent deny` turns telemetry off."""
    assert resolve("app", environ={}, stored_choice="denied").level == Level.OFF


def test_ask_policy_is_off_until_granted() -> None:
    """Opt-in apps collect nothing before the user agrees."""
    s = resolve("app", environ={}, consent="ask")
    assert s.level == Level.OFF and s.level_source == "consent-pending"
    assert resolve("app", environ={}, consent="ask", stored_choice="granted").level == Level.ENHANCED


def test_bad_values_warn_once_and_fall_back(capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid variables give one clear warning each and the safe default, never an exception."""
    env = {"OTEL_EXPANSION_LEVEL": "loud", "OTEL_EXPANSION_DEBUG": "maybe", "OTEL_EXPANSION_SPOOL_MAX_BYTES": "-5"}
    s = resolve("app", environ=env)
    resolve("app", environ=env)
    err = capsys.readouterr().err
    assert s.level == Level.ENHANCED and s.debug is False and s.spool_max_bytes == 20 * 2**20
    assert err.count("OTEL_EXPANSION_LEVEL") == 1 and "loud" not in err  # warnings name, never echo
    assert err.count("OTEL_EXPANSION_DEBUG") == 1 and err.count("SPOOL_MAX_BYTES") == 1


def test_service_name_env_and_home_env() -> None:
    """OTEL_SERVICE_NAME is the app's own choice: ignored unless opted in, then only identifier-shaped;
    OTEL_EXPANSION_HOME the state directory."""
    s = resolve("app", environ={"OTEL_SERVICE_NAME": "other", "OTEL_EXPANSION_HOME": "/tmp/h"})
    assert s.service_name == "app" and s.home == "/tmp/h"
    assert resolve("app", environ={"OTEL_SERVICE_NAME": "other"}, service_name_env=True).service_name == "other"
    for raw in ("Jan Novák", "jan.novak@example.cz", "ops-420612345", "/home/jan"):
        assert resolve("app", environ={"OTEL_SERVICE_NAME": raw}, service_name_env=True).service_name == "app"


def test_otel_intervals_are_milliseconds() -> None:
    """Standard OTEL_* intervals are in milliseconds."""
    s = resolve("app", environ={"OTEL_METRIC_EXPORT_INTERVAL": "1500", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64"})
    assert s.metric_interval_s == 1.5 and s.span_batch_size == 64


def test_resource_attributes_parse_and_skip_bad(capsys: pytest.CaptureFixture[str]) -> None:
    """k=v pairs are percent-decoded; malformed members are skipped with a warning."""
    assert parse_resource_attributes("a=1,b=x%20y,bad,=v") == (("a", "1"), ("b", "x y"))
    err = capsys.readouterr().err
    assert "member 3" in err and "bad" not in err  # CI logs keep stderr: the value is never echoed


def test_level_parse_errors_list_names() -> None:
    """Level.parse names the accepted values."""
    with pytest.raises(ValueError, match=r"off\|basic\|enhanced\|full"):
        Level.parse("verbose")


def test_state_directory_belongs_to_the_app_not_to_otel_service_name() -> None:
    """An exported OTEL_SERVICE_NAME (opted in) renames the data, but consent and level stay the app's."""
    a = resolve("acmecli", environ={"XDG_STATE_HOME": "/s"})
    b = resolve("acmecli", environ={"XDG_STATE_HOME": "/s", "OTEL_SERVICE_NAME": "my-api"}, service_name_env=True)
    assert b.service_name == "my-api" and a.home == b.home
