"""Warnings about bad configuration name the variable and never echo its value (CI logs keep stderr)."""

from __future__ import annotations

import pytest

from otel_expansion.config import parse_resource_attributes, resolve
from otel_expansion.config.otlp import otlp_config_from_env

SECRET = "jane.doe-1985-api-4f9a"


def test_settings_warnings_do_not_echo_values(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed OTEL_RESOURCE_ATTRIBUTES member and bad OTEL_EXPANSION_* values are not repeated."""
    parse_resource_attributes(f"team=a,{SECRET}")
    resolve("app", environ={"OTEL_EXPANSION_LEVEL": SECRET, "OTEL_EXPANSION_DEBUG": SECRET,
                            "OTEL_EXPANSION_SPOOL_MAX_BYTES": SECRET})
    err = capsys.readouterr().err
    assert "OTEL_RESOURCE_ATTRIBUTES member 2" in err and "OTEL_EXPANSION_LEVEL" in err
    assert "jane" not in err and "1985" not in err


def test_exporter_warnings_do_not_echo_headers_or_endpoints(caplog: pytest.LogCaptureFixture,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A bad header member (often a credential) or endpoint is reported by position or name only."""
    otlp_config_from_env({"OTEL_EXPORTER_OTLP_HEADERS": f"good=1,Authorization {SECRET}",
                          "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{SECRET}:4318/x",
                          "OTEL_EXPORTER_OTLP_TIMEOUT": SECRET})
    text = " ".join(r.getMessage() for r in caplog.records) + capsys.readouterr().err
    assert "member 2" in text and "OTEL_EXPORTER_OTLP_TIMEOUT" in text
    assert "jane" not in text and "1985" not in text
