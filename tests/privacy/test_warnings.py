"""Warnings about bad configuration name the variable and never echo its value (CI logs keep stderr)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion.config import parse_resource_attributes, resolve
from otel_expansion.config.otlp import otlp_config_from_env
from tests.conftest import clean_env

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


def _run(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "ex.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script), "ok"], env=clean_env(tmp_path / "home", **env),
                          capture_output=True, text=True, timeout=60)


def test_invalid_redact_pattern_warns_by_position_with_the_prefix(tmp_path: Path) -> None:
    """A bad OTEL_EXPANSION_REDACT_PATTERNS line: the standard prefix, the variable, its position, why;
    never the pattern, not even the words the regex engine quotes from it (a group name, an escape)."""
    patterns = f"ok\n({SECRET}@secret\n(?P<jane>x)(?P<jane>y)\n\\q"
    proc = _run(tmp_path, "import otel_expansion\notel_expansion.init('ex', '1.0')\nprint('hello')\n",
                OTEL_EXPANSION_REDACT_PATTERNS=patterns, OTEL_EXPANSION_SEND="false")
    assert proc.returncode == 0 and proc.stdout == "hello\n"
    lines = proc.stderr.splitlines()
    assert lines == [
        "ex telemetry (otel-expansion): warning: OTEL_EXPANSION_REDACT_PATTERNS: pattern 2 of 4 is not a valid "
        "regular expression (missing ), unterminated subpattern); ignored",
        "ex telemetry (otel-expansion): warning: OTEL_EXPANSION_REDACT_PATTERNS: pattern 3 of 4 is not a valid "
        "regular expression (redefinition of group name as group 2; was group 1); ignored",
        "ex telemetry (otel-expansion): warning: OTEL_EXPANSION_REDACT_PATTERNS: pattern 4 of 4 is not a valid "
        "regular expression (bad escape); ignored"], proc.stderr
    assert "jane" not in proc.stderr and "1985" not in proc.stderr


def test_init_patterns_and_allow_entries_are_named_by_their_source(tmp_path: Path) -> None:
    """init(redact_patterns=...) and OTEL_EXPANSION_REDACT_ALLOW's `re:` lines are counted in their own list."""
    code = (f"import otel_expansion\notel_expansion.init('ex', '1.0', redact_patterns=['a', '[{SECRET}'[:5]])\n"
            "print('hello')\n")
    proc = _run(tmp_path, code, OTEL_EXPANSION_REDACT_ALLOW=f"keep\nre:({SECRET}", OTEL_EXPANSION_SEND="false")
    assert proc.returncode == 0 and proc.stdout == "hello\n"
    assert "ex telemetry (otel-expansion): warning: init(redact_patterns=...): pattern 2 of 2 is not a valid " \
           "regular expression (unterminated character set); ignored" in proc.stderr.splitlines()
    assert "ex telemetry (otel-expansion): warning: OTEL_EXPANSION_REDACT_ALLOW: entry 2 of 2 is not a valid " \
           "regular expression (missing ), unterminated subpattern); ignored" in proc.stderr.splitlines()
    assert "jane" not in proc.stderr


def test_init_option_warnings_do_not_echo_values(capsys: pytest.CaptureFixture[str]) -> None:
    """init(level=/consent=/mode=) with a bad value: named by option, not repeated."""
    resolve("app", environ={}, level=SECRET, consent=SECRET, mode=SECRET)  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "init(level=...)" in err and "init(consent=...)" in err and "init(mode=...)" in err
    assert "jane" not in err
