"""Lowering the level applies to what is pending, not only to later runs: runs still in the journal are
converted at the new level; of what is already converted, what the new level does not allow (spans,
metrics above it) is deleted and counted, and the counts it keeps stay exact."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import ox
from tests.conftest import RunCli
from tests.export.servers import otlp_server
from tests.export.test_sender import metric_values, spans_of


def invocations(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(v for (name, _), v in values.items() if name == "cli.command.invocations")


def test_runs_in_the_journal_are_sent_at_the_lowered_level(run_cli: RunCli, home: Path) -> None:
    """3 runs recorded at enhanced and still pending, then `level basic`: the flush sends their counts
    and no span (spans are enhanced), nor the performance metrics basic leaves out."""
    for _ in range(3):
        assert run_cli("hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
    assert ox(home, "level", "basic").returncode == 0
    with otlp_server() as srv:
        assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        values = metric_values(srv.requests)
        spans = spans_of(srv.requests)
    assert invocations(values) == 3 and spans == []
    assert not any(name == "cli.command.cpu_time" for name, _ in values), sorted({n for n, _ in values})


def test_rows_converted_above_the_lowered_level_are_deleted_and_counted(run_cli: RunCli, home: Path) -> None:
    """Runs already converted into the spool (a flush that could not send) carry spans and CPU times:
    `level basic` deletes those (a drop counter says how many reach the collector) and keeps their
    invocation counts exact; later runs are sent at basic."""
    for _ in range(2):
        assert run_cli("hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
    down = ox(home, "flush", "--timeout", "0.5", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert down.returncode != 0  # converted, not sent
    assert ox(home, "level", "basic").returncode == 0
    assert run_cli("hello", "b", OTEL_EXPANSION_SEND="false").returncode == 0
    with otlp_server() as srv:
        assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        values = metric_values(srv.requests)
        spans = spans_of(srv.requests)
    assert spans == [] and invocations(values) == 3  # every run counted, none of the spans sent
    assert not any(name == "cli.command.cpu_time" for name, _ in values), sorted({n for n, _ in values})
    lowered = {attrs: v for (name, attrs), v in values.items() if name == "otel_expansion.spool.dropped"}
    assert any(("reason", "level_lowered") in attrs and v > 0 for attrs, v in lowered.items()), lowered


def test_raising_the_level_deletes_nothing(run_cli: RunCli, home: Path) -> None:
    assert ox(home, "level", "basic").returncode == 0
    assert run_cli("hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
    assert ox(home, "level", "full").returncode == 0
    with otlp_server() as srv:
        assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        assert invocations(metric_values(srv.requests)) == 1


def test_level_off_in_the_environment_beats_a_stored_level(run_cli: RunCli, home: Path) -> None:
    """`OTEL_EXPANSION_LEVEL=off` is an opt-out: it wins over a level the user stored (`level enhanced`):
    nothing is recorded, and flush sends nothing, keeps what is pending and exits 1."""
    assert ox(home, "level", "enhanced").returncode == 0
    assert run_cli("hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
    assert run_cli("hello", "b", OTEL_EXPANSION_SEND="false", OTEL_EXPANSION_LEVEL="off").returncode == 0
    with otlp_server() as srv:
        refused = ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, OTEL_EXPANSION_LEVEL="off")
        assert refused.returncode == 1 and "OTEL_EXPANSION_LEVEL is set" in refused.stderr, refused.stderr
        assert srv.requests == []
        assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        assert invocations(metric_values(srv.requests)) == 1  # the run under off was not recorded


def test_service_is_found_where_the_environment_put_its_home(run_cli: RunCli, home: Path) -> None:
    """With OTEL_EXPANSION_HOME set (the app writes there), `--service NAME` looks there too."""
    import os
    import subprocess
    import sys

    from tests.conftest import clean_env

    assert run_cli("hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
    env = clean_env(home)  # OTEL_EXPANSION_HOME=home
    result = subprocess.run([sys.executable, "-m", "otel_expansion", "status", "--service", "democli"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "journal records" in result.stdout and str(home) in result.stdout, (
        result.stdout, result.stderr)
    assert os.environ.get("OTEL_EXPANSION_HOME") != str(home)  # the test's own environment is not it
