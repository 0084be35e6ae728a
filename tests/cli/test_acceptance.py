"""Findings of an independent acceptance run on the debugging tools and the CLI, each pinned on real runs.

Every metric kind the package sends is shown and counted (`show`, `show --sent`, the history, the inspector's
state); `status` says when the next send really happens; `flush` under an opt-out sends nothing; `debug`
names the endpoint it resolves; `flush`'s retry lines agree with its count.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.sdk import signals
from tests.cli.helpers import ox, received
from tests.conftest import EXAMPLES, ROOT, RunCli, clean_env, journal_records, settled, wait_until
from tests.export.servers import otlp_server

REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens there, a connection is refused at once

NOT_FROM_THESE_RUNS = {
    signals.SESSION_DURATION, signals.SESSION_COMMANDS,  # a session ends after 30 minutes idle
    signals.HEARTBEATS, signals.SERVICE_SPILLED, signals.SPANS_SAMPLED_OUT,  # long-running programs only
    signals.HANDLED,  # democli reports no handled exception
    signals.SPOOL_DROPPED,  # nothing is dropped here
    signals.EXPORT_DURATION,  # measured on a round that sent; these runs' data was never accepted
}
"""Declared metrics four CLI runs and a refused send cannot produce; every other one must be shown."""


def runs(run_cli: RunCli) -> None:
    for args in (["hello", "a"], ["hello", "b", "--shout"], ["fail"], ["remote", "add", "x"]):
        run_cli(*args, OTEL_EXPANSION_SEND="false", OTEL_EXPANSION_LEVEL="full")


def metric_names(request: dict[str, Any]) -> set[str]:
    return {m["name"] for rm in request.get("resourceMetrics", []) for sm in rm.get("scopeMetrics", [])
            for m in sm.get("metrics", [])}


def points_in(request: dict[str, Any]) -> int:
    """Data points of every kind, counted straight from the OTLP/JSON (not through the code under test)."""
    return sum(len(m[kind]["dataPoints"]) for rm in request.get("resourceMetrics", [])
               for sm in rm.get("scopeMetrics", []) for m in sm.get("metrics", [])
               for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary") if kind in m)


@pytest.fixture
def converted(run_cli: RunCli, home: Path) -> Path:
    """Four real runs converted into the spool by a real round against a refused endpoint: all pending."""
    runs(run_cli)
    result = ox(home, "flush", "--endpoint", REFUSED, "--timeout", "1")
    assert result.returncode == 1 and "ingested 4 run records" in result.stdout, (result.stdout, result.stderr)
    return home


class TestEveryMetricKindIsShown:
    def test_show_has_a_line_for_every_metric_the_package_emitted(self, converted: Path) -> None:
        """`show` has one line per pending metric, exponential histograms included; every declared metric
        these runs can produce is there (names from the one table, sdk/signals.py)."""
        pending = json.loads(ox(converted, "show", "--json").stdout)["pending"]["metrics"]
        sent_names = metric_names(pending)
        out = ox(converted, "show").stdout
        shown = set(re.findall(r"^  metric (\S+): ", out, re.M))
        assert shown == sent_names, (sent_names - shown, out)
        assert shown <= set(signals.METRICS_BY_NAME)
        missing = {m.name for m in signals.METRICS} - NOT_FROM_THESE_RUNS - shown
        assert not missing, (missing, out)
        exponential = {m.name for m in signals.METRICS if m.exponential} - NOT_FROM_THESE_RUNS
        assert {signals.DURATION, signals.CPU_TIME, signals.STARTUP_TIME} <= exponential <= shown
        line = next(x for x in out.splitlines() if x.startswith(f"  metric {signals.DURATION}: "))
        assert re.search(r": 4 values, sum [\d.]+ m?s, min [\d.]+ m?s max [\d.]+ m?s in 3 series$", line), line
        assert f", {points_in(pending)} metric points" in out.splitlines()[0], out
        app = subprocess.run([sys.executable, str(EXAMPLES / "democli.py"), "telemetry", "show"],
                             env=clean_env(converted, OTEL_EXPANSION_SEND="false"), capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
        assert set(re.findall(r"^  metric (\S+): ", app.stdout, re.M)) == sent_names, app.stdout  # the app's own

    def test_show_detail_lists_every_point(self, converted: Path) -> None:
        """`--detail` has one line per data point of every kind, an exponential histogram's with its count,
        sum, min and max."""
        pending = json.loads(ox(converted, "show", "--json").stdout)["pending"]["metrics"]
        out = ox(converted, "show", "--detail").stdout
        lines = [x for x in out.splitlines() if x.startswith("  ") and not x.startswith(("  span ", "  run record"))]
        assert len(lines) == points_in(pending), out
        durations = [x for x in lines if x.startswith(f"  {signals.DURATION} ")]
        assert len(durations) == 3 and all(re.search(r" count=\d+ sum=\S+ m?s min=\S+ m?s max=\S+ m?s$", x)
                                           for x in durations), durations

    def test_sent_history_and_show_sent_count_every_point(self, converted: Path) -> None:
        """What the receiver got, request for request: the kept history's item count, `show --sent`'s count
        and its listed lines all equal the data points of every kind."""
        with otlp_server() as srv:
            assert ox(converted, "flush", "--endpoint", srv.url).returncode == 0
            got = [(signal, req) for signal, req in received(srv.requests)]
        assert any(signal == "metrics" for signal, _ in got)
        expected = [points_in(req) if signal == "metrics" else None for signal, req in got]
        from otel_expansion.export import history

        headers = [e.header() for e in history.entries(str(converted))]
        assert [h["items"] for h in headers if h["signal"] == "metrics"] == [n for n in expected if n is not None]
        shown = json.loads(ox(converted, "show", "--sent", "--json").stdout)["sent"]
        assert [s["items"] for s in shown if s["signal"] == "metrics"] == [n for n in expected if n is not None]
        text = ox(converted, "show", "--sent", "--detail").stdout
        blocks = re.split(r"^  \S+ \S+ (?=traces|metrics)", text, flags=re.M)[1:]
        listed: set[str] = set()
        for block, (signal, req) in zip(blocks, got, strict=True):
            head, *rest = block.splitlines()
            if signal == "metrics":
                n = points_in(req)
                assert head.startswith(f"metrics {n} items"), head
                assert len([x for x in rest if x.startswith("    ")]) == n
                listed |= {x.split()[0] for x in rest}
        assert {signals.DURATION, signals.CPU_TIME, signals.STARTUP_TIME} <= listed

    def test_inspector_state_lists_every_point(self, converted: Path) -> None:
        """The inspector's /api/state (what the page draws): every pending point, durations included."""
        from otel_expansion.cli import ui

        state = ui.state(str(converted), "democli")
        pending = state["pending"]["content"]["metrics"]
        assert len(state["pending"]["points"]) == points_in(pending)
        assert any(line.startswith(f"{signals.DURATION} ") and " min=" in line for line in state["pending"]["points"])

    def test_history_count_agrees_with_the_listing(self) -> None:
        """The count kept with a sent request and the lines `show` lists come from the same rule: every member
        of a metric holding dataPoints, whatever its kind."""
        from otel_expansion.cli.show import points_of
        from otel_expansion.export.health import items_in

        request = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "a", "sum": {"dataPoints": [{}, {}]}},
            {"name": "b", "exponentialHistogram": {"dataPoints": [{"count": "1"}]}},
            {"name": "c", "gauge": {"dataPoints": [{}]}},
            {"name": "d", "histogram": {"dataPoints": [{}]}},
        ]}]}]}
        assert items_in("metrics", request) == len(points_of(request)) == 5


class TestNextSend:
    def test_a_past_due_time_is_said_as_the_next_run(self, run_cli: RunCli, home: Path) -> None:
        """Two runs close together with the backend up: the second only joins the journal (no sender within
        10 s of the last start), nothing sends by itself, and `status` says it goes with the app's next run,
        due since a time already past, not a time still to come."""
        with otlp_server() as srv:
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": srv.url, "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
            run_cli("hello", "a", **env)
            wait_until(lambda: settled(home), what="the first run's sender finished")
            from otel_expansion.export import launcher

            due = launcher.next_send_at(str(home))
            wait_until(lambda: time.time() > due + 0.1, timeout_s=5, what="the next-send time passed")
            run_cli("hello", "b", **env)
            assert len(journal_records(home)) == 1 and not launcher.sender_running(str(home))
            text = ox(home, "status").stdout
            line = next(x for x in text.splitlines() if x.strip().startswith("next send"))
            assert "with the app's next run (due since " in line, text
            assert json.loads(ox(home, "status", "--json").stdout)["next_send"].startswith(
                "with the app's next run (due since ")
            assert len(journal_records(home)) == 1  # status only read; nothing was sent meanwhile

    def test_a_future_time_is_a_run_after_it(self, run_cli: RunCli, home: Path) -> None:
        """Within the interval after a send, the data waits for the app's first run after the due time."""
        with otlp_server() as srv:
            run_cli("hello", "a", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
            wait_until(lambda: settled(home), what="the first run's sender finished")
            run_cli("hello", "b", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        text = ox(home, "status").stdout
        assert re.search(r"next send +with the app's first run after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text), text

    def test_nothing_pending(self, run_cli: RunCli, home: Path) -> None:
        """Nothing waits: no time is promised."""
        run_cli("hello", "a", OTEL_EXPANSION_SEND="false")
        assert ox(home, "clear").returncode == 0
        assert re.search(r"next send +nothing pending", ox(home, "status").stdout)

    def test_status_says_when_sending_is_off(self, run_cli: RunCli, home: Path) -> None:
        """With OTEL_EXPANSION_SEND=false or in dry run, the next send is never by itself: status says so
        (troubleshooting.md), not "with the app's next run"."""
        assert run_cli("hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
        off = ox(home, "status", OTEL_EXPANSION_SEND="false").stdout
        assert re.search(r"next send +not by itself: sending is off", off), off
        dry = ox(home, "status", OTEL_EXPANSION_DRY_RUN="true").stdout
        assert re.search(r"next send +never: dry run", dry), dry


OPT_OUTS = [{"DO_NOT_TRACK": "1"}, {"OTEL_SDK_DISABLED": "true"}, {"DEMOCLI_NO_TELEMETRY": "1"},
            {"OTEL_EXPANSION_LEVEL": "off"}]


class TestFlushUnderOptOut:
    @pytest.mark.parametrize("opt_out", OPT_OUTS, ids=lambda e: next(iter(e)))
    def test_flush_sends_nothing_and_keeps_the_data(self, run_cli: RunCli, home: Path,
                                                    opt_out: dict[str, str]) -> None:
        """`otel-expansion flush` and `democli telemetry flush` under an opt-out: no request, exit 1, the data
        kept, and the message says how to send it (without the opt-out) or delete it; then, without the
        opt-out, the same data goes."""
        runs(run_cli)
        (name,) = opt_out
        with otlp_server() as srv:
            result = ox(home, "flush", "--endpoint", srv.url, **opt_out)
            assert result.returncode == 1, result.stdout
            assert f"{name} is set" in result.stderr and "sends nothing" in result.stderr, result.stderr
            assert f"run `otel-expansion flush --home {home} --endpoint {srv.url}` without {name} set" in result.stderr
            assert f"to delete them, `otel-expansion clear --home {home}`" in result.stderr
            assert "4 run records" in result.stderr and "sending" not in result.stdout
            app = subprocess.run([sys.executable, str(EXAMPLES / "democli.py"), "telemetry", "flush"],
                                 env=clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, **opt_out),
                                 capture_output=True, text=True, timeout=60, cwd=ROOT)
            assert app.returncode == 1, (app.stdout, app.stderr)
            assert "`democli telemetry flush` without" in app.stderr and "`democli telemetry disable`" in app.stderr
            assert srv.requests == []
            assert len(journal_records(home)) == 4
            assert ox(home, "flush", "--endpoint", srv.url).returncode == 0  # kept, and sent once allowed
            assert any(r.signal == "traces" for r in srv.requests)


class TestDebugAndFlushWords:
    def test_debug_names_the_endpoint_it_resolves(self, run_cli: RunCli, home: Path) -> None:
        """`debug` shows the endpoint as resolved, with where it comes from; never `None`."""
        run_cli("hello", "a", OTEL_EXPANSION_SEND="false")
        out = ox(home, "debug").stdout
        assert re.search(r"^  endpoint +http://localhost:4318 \(the OpenTelemetry default\)$", out, re.M), out
        assert "None" not in out, out
        out = ox(home, "debug", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4999").stdout
        assert re.search(r"^  endpoint +http://127.0.0.1:4999 \(from OTEL_EXPORTER_OTLP_ENDPOINT\)$", out, re.M), out
        assert json.loads(ox(home, "debug", "--json").stdout)["endpoint"] == "http://localhost:4318"

    def test_debug_backlog_line_names_a_command_that_exists(self, tmp_path: Path, home: Path) -> None:
        """A program without telemetry commands: the debug stream's backlog line names `otel-expansion show`."""
        app = tmp_path / "noctl.py"
        app.write_text("import otel_expansion\notel_expansion.init('noctl', '1.0')\nprint('hi')\n")

        def run(**env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, str(app)], env=clean_env(home, **env), capture_output=True,
                                  text=True, timeout=60, cwd=ROOT)

        for _ in range(2):
            assert run(OTEL_EXPANSION_SEND="false").returncode == 0
        assert ox(home, "debug", "on").returncode == 0
        err = run(OTEL_EXPANSION_SEND="false").stderr
        assert "converted too, not shown" in err and "(`otel-expansion show` lists what is pending" in err, err

    def test_flush_prints_a_line_for_every_retry_it_counts(self, run_cli: RunCli, home: Path) -> None:
        """Against a refused endpoint: `retried N times` and exactly N retry lines, numbered 1..N."""
        run_cli("hello", "a", OTEL_EXPANSION_SEND="false")
        result = ox(home, "flush", "--endpoint", REFUSED, "--timeout", "4")
        assert result.returncode == 1
        n = int(re.search(r"retried (\d+) times", result.stdout).group(1))  # type: ignore[union-attr]
        assert re.search(r"the app's first run after \S+ \S+ sends it again", result.stderr), result.stderr
        lines = [x for x in result.stderr.splitlines() if "collector unavailable" in x]
        assert n >= 2 and len(lines) == n, (result.stdout, result.stderr)
        assert [int(re.search(r"retry (\d+):", x).group(1)) for x in lines] == list(range(1, n + 1))  # type: ignore[union-attr]
