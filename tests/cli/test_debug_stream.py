"""The debug stream shows exactly what is exported, in every mode; the sent history equals what arrived."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion.sdk.debug import parse_stream
from tests.cli.helpers import app_signals, ox, received
from tests.conftest import EXAMPLES, RunCli, clean_env
from tests.export.servers import otlp_server

pytestmark = pytest.mark.slow


def flush_to(home: Path, url: str) -> subprocess.CompletedProcess[str]:
    result = ox(home, "flush", "--timeout", "20", OTEL_EXPORTER_OTLP_ENDPOINT=url)
    assert result.returncode == 0, result.stderr
    return result


def test_cli_mode_debug_stream_is_what_leaves(run_cli: RunCli, home: Path) -> None:
    """`debug on` (stored): each run prints its spans and points; after a flush the receiver got the same."""
    assert ox(home, "level", "full").returncode == 0
    on = ox(home, "debug", "on", "--otlp")  # the OTLP/JSON, to compare with what arrives
    assert on.returncode == 0 and "debug on" in on.stdout and "in full as OTLP/JSON" in on.stdout
    stream = ""
    for args in (["hello", "ann"], ["fail"], ["remote", "add", "origin"]):
        result = run_cli(*args, OTEL_EXPANSION_SEND="false")
        assert "otel-expansion debug:" in result.stderr
        stream += result.stderr
    blocks = parse_stream(stream)
    assert {signal for signal, _ in blocks} == {"traces", "metrics"}
    with otlp_server() as srv:
        flush_to(home, srv.url)
        exported = received(srv.requests)
    debug_spans, debug_series = app_signals(blocks)
    sent_spans, sent_series = app_signals(exported)
    assert len(debug_spans) == 3 and debug_spans == sent_spans
    assert debug_series == sent_series
    assert any(k[2] == "otel_expansion.record.duration" for k in debug_series)  # our own cost, recorded


def test_cli_debug_logs_through_python_logging(tmp_path: Path) -> None:
    """A host with its own logging gets each signal on the `otel_expansion` logger at DEBUG."""
    script = tmp_path / "app.py"
    script.write_text(
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format='%(name)s %(levelname)s %(message)s')\n"
        "import otel_expansion\n"
        "otel_expansion.init('logged', send=False)\n"
        "with otel_expansion.command('work'):\n    pass\n")
    result = subprocess.run([sys.executable, str(script)], env=clean_env(tmp_path / "home", OTEL_EXPANSION_DEBUG="1"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    logged = [line for line in result.stdout.splitlines() if line.startswith("otel_expansion DEBUG")]
    assert any("this run traces" in line and 'work' in line for line in logged)
    assert any("this run metrics" in line for line in logged)


def test_service_mode_debug_stream_is_what_leaves(tmp_path: Path) -> None:
    """A long-running program prints every commit to the spool; the flush sends the same signals."""
    home = tmp_path / "home"
    env = clean_env(home, OTEL_EXPANSION_DEBUG="1", OTEL_EXPANSION_DEBUG_JSON="1", OTEL_EXPANSION_SEND="false",
                    OTEL_BSP_SCHEDULE_DELAY="100")
    result = subprocess.run([sys.executable, str(EXAMPLES / "service_app.py"), "4", "0.5"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    blocks = parse_stream(result.stderr)
    with otlp_server() as srv:
        flush_to(home, srv.url)
        exported = received(srv.requests)
    debug_spans, debug_series = app_signals(blocks)
    sent_spans, sent_series = app_signals(exported)
    assert len(debug_spans) == 4 and debug_spans == sent_spans
    assert debug_series == sent_series


def test_opentelemetry_instrument_debug_stream_is_what_leaves(tmp_path: Path) -> None:
    """Under opentelemetry-instrument the debug stream prints too, and equals what is exported."""
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert instrument
    home = tmp_path / "home"
    env = clean_env(home, OTEL_EXPANSION_DEBUG="1", OTEL_EXPANSION_DEBUG_JSON="1", OTEL_EXPANSION_SEND="false",
                    OTEL_SERVICE_NAME="plain",
                    OTEL_PYTHON_DISTRO="otel_expansion", OTEL_PYTHON_CONFIGURATOR="otel_expansion")
    result = subprocess.run([instrument, sys.executable, str(EXAMPLES / "plain_click.py"), "greet", "bob"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "hi bob\n", result.stderr
    blocks = parse_stream(result.stderr)
    with otlp_server() as srv:
        flush_to(home, srv.url)
        exported = received(srv.requests)
    debug_spans, debug_series = app_signals(blocks)
    sent_spans, sent_series = app_signals(exported)
    # ours, and contrib's click instrumentation's (installed in the test environment), named after its scope
    assert sorted(s[2]["name"] for s in debug_spans.values()) == ["opentelemetry.instrumentation.click",
                                                                 "plain greet"]
    assert debug_spans == sent_spans and debug_series == sent_series


def test_sent_history_equals_what_the_receiver_got(run_cli: RunCli, home: Path) -> None:
    """`show --sent --json` holds every accepted request, decoded, exactly as the receiver decoded it."""
    for args in (["hello", "a"], ["fail"]):
        run_cli(*args, OTEL_EXPANSION_SEND="false")
    with otlp_server() as srv:
        flush = flush_to(home, srv.url)
        got = received(srv.requests)
        batch_ids = [r.batch_id for r in srv.requests]
    assert "sent" in flush.stdout
    shown = json.loads(ox(home, "show", "--sent", "--json").stdout)["sent"]
    assert [(item["signal"], item["content"]) for item in shown] == got
    assert [item["batch_id"] for item in shown] == batch_ids
    assert all(item["endpoint"].startswith("http://127.0.0.1:") and item["wire_bytes"] > 0 for item in shown)
    only_traces = json.loads(ox(home, "show", "--sent", "--signal", "traces", "--json").stdout)["sent"]
    assert [i["content"] for i in only_traces] == [c for s, c in got if s == "traces"]
    assert json.loads(ox(home, "show", "--sent", "--since", "2099-01-01", "--json").stdout)["sent"] == []
    cleared = json.loads(ox(home, "clear", "--json").stdout)
    assert cleared["cleared"]["sent_entries"] == len(got)
    assert json.loads(ox(home, "show", "--sent", "--json").stdout)["sent"] == []


def test_sent_history_is_bounded(run_cli: RunCli, home: Path) -> None:
    """OTEL_EXPANSION_SENT_MAX_BATCHES keeps only the newest requests."""
    for i in range(3):
        run_cli("hello", str(i), OTEL_EXPANSION_SEND="false")
        with otlp_server() as srv:
            assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url,
                      OTEL_EXPANSION_SENT_MAX_BATCHES="2").returncode == 0
            last = received(srv.requests)
    shown = json.loads(ox(home, "show", "--sent", "--json").stdout)["sent"]
    assert len(shown) == 2 and [(i["signal"], i["content"]) for i in shown] == last[-2:]


def test_dry_run_records_and_shows_but_never_sends(run_cli: RunCli, home: Path) -> None:
    """`debug on --dry-run`: the run is shown and kept; flush refuses to send; nothing reaches a receiver."""
    assert ox(home, "level", "basic").returncode == 0
    assert ox(home, "debug", "on", "--dry-run", "--otlp").returncode == 0
    with otlp_server() as srv:
        result = run_cli("hello", "x", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        assert parse_stream(result.stderr)
        flush = ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        assert flush.returncode == 1 and "dry-run" in flush.stderr and "Traceback" not in flush.stderr
        assert srv.requests == []
    status = json.loads(ox(home, "status", "--json").stdout)
    assert status["dry_run"] is True and status["spool_series"] > 0
    assert ox(home, "debug", "off").returncode == 0
    assert json.loads(ox(home, "status", "--json").stdout)["debug"] is False
