"""Sender: journal -> SDK pipeline -> spool -> real OTLP/HTTP servers on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from otel_expansion import _runtime
from otel_expansion.config import Level, resolve
from otel_expansion.export import launcher
from otel_expansion.journal import store as journal
from otel_expansion.workers.sender import run_round
from tests.conftest import ROOT, clean_env, temp_environ, wait_until
from tests.export.servers import blackhole, cycle, otlp_server, refused_port, respond, slow


def write_runs(home: Path, runs: list[tuple[str, int, str | None]], level: Level = Level.ENHANCED,
               features: tuple[str, ...] = ()) -> None:
    """Journal records exactly as the recorder writes them, one per (command, exit code, error type)."""
    settings = resolve("svc", "2.0", environ={}, home=str(home), level=level)
    t = _runtime.Telemetry(settings)
    from otel_expansion import collect as resource

    resource.forget()
    os.makedirs(home, exist_ok=True)
    for i, (name, code, error) in enumerate(runs):
        run = t.recorder.begin(name, "svc", origin="literal")
        assert run is not None
        for f in features:
            t.recorder.feature(f)
        exc: BaseException | None = None
        if error is not None:
            exc = RuntimeError("x") if error == "RuntimeError" else SystemExit(code)
        t.recorder.end(run, exc, code)
        body = t.recorder.drain()
        assert body is not None
        now = time.time_ns() + i
        journal.append(str(home), _runtime.build_record(t, body, now), now)


def flush(home: Path, url: str, **env: str) -> Any:
    with temp_environ(OTEL_EXPORTER_OTLP_ENDPOINT=url, **env):
        s = resolve("sender", environ=os.environ, home=str(home), level=Level.FULL)
        return run_round(str(home), s, force=True, deadline_s=20)


DAY_NS = 86_400 * 10**9


def write_days(home: Path, records: list[list[int]]) -> None:
    """Journal records as the recorder writes them, each holding one command per day given (UTC days since
    the epoch), run at noon of that day: what runs recorded offline on those days leave behind."""
    settings = resolve("svc", "2.0", environ={}, home=str(home), level=Level.ENHANCED)
    t = _runtime.Telemetry(settings)
    from otel_expansion import collect as resource

    resource.forget()
    os.makedirs(home, exist_ok=True)
    for i, days in enumerate(records):
        for _ in days:
            run = t.recorder.begin("build", "svc", origin="literal")
            assert run is not None
            t.recorder.end(run, None, 0)
        body = t.recorder.drain()
        assert body is not None and len(body["commands"]) == len(days)
        for j, (cmd, day) in enumerate(zip(body["commands"], days, strict=True)):
            cmd["start"] = day * DAY_NS + DAY_NS // 2 + (i * 10 + j) * 10**9
            cmd["end"] = cmd["start"] + 3 * 10**8
        now = time.time_ns() + i
        journal.append(str(home), _runtime.build_record(t, body, now), now)


def metric_points(requests: list[Any], name: str) -> list[Any]:
    """Every data point of one metric across all metrics requests."""
    return [dp for r in requests if r.signal == "metrics" for rm in r.message().resource_metrics
            for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for dp in getattr(m, m.WhichOneof("data")).data_points]


def metric_values(requests: list[Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sum of every data point per (metric, attributes) across all metrics requests."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for req in requests:
        if req.signal != "metrics":
            continue
        for rm in req.message().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    for dp in getattr(m, kind).data_points:
                        attrs = tuple(sorted((kv.key, str(kv.value.ListFields()[0][1])) for kv in dp.attributes))
                        value = (dp.as_int or dp.as_double) if kind in ("sum", "gauge") else dp.count
                        out[(m.name, attrs)] = out.get((m.name, attrs), 0) + value
    return out


def spans_of(requests: list[Any]) -> list[Any]:
    return [s for r in requests if r.signal == "traces" for rs in r.message().resource_spans
            for ss in rs.scope_spans for s in ss.spans]


class TestDelivery:
    def test_runs_arrive_aggregated_with_exact_totals(self, tmp_path: Path) -> None:
        """300 runs of three commands become one point per series with exact sums, plus one span per run."""
        runs = [("build", 0, None)] * 200 + [("test", 1, "RuntimeError")] * 60 + [("deploy", 0, None)] * 40
        write_runs(tmp_path, runs, features=("cache",))
        with otlp_server() as srv:
            summary = flush(tmp_path, srv.url)
            values = metric_values(srv.requests)
            assert summary.ok and summary.ingested == 300
            inv = {k[1]: v for k, v in values.items() if k[0] == "cli.command.invocations"}
            assert inv[(("cli.command.name", "build"), ("cli.command.outcome", "success"))] == 200
            assert inv[(("cli.command.name", "test"), ("cli.command.outcome", "error"),
                        ("error.type", "RuntimeError"))] == 60
            assert sum(v for k, v in values.items() if k[0] == "cli.command.duration") == 300
            assert sum(v for k, v in values.items() if k[0] == "cli.feature.usage") == 300
            points = [dp for r in srv.requests if r.signal == "metrics" for rm in r.message().resource_metrics
                      for sm in rm.scope_metrics for m in sm.metrics if m.name == "cli.command.invocations"
                      for dp in m.sum.data_points]
            assert len(points) == 3  # aggregated: one point per series, not one per run
            assert len(spans_of(srv.requests)) == 300
            assert all(r.header("content-encoding") == "gzip" and r.batch_id for r in srv.requests)

    def test_span_follows_cli_conventions(self, tmp_path: Path) -> None:
        """The span carries exit code, error.type only on failure, session id and ERROR status."""
        write_runs(tmp_path, [("remote add", 0, None), ("push", 1, "RuntimeError")])
        with otlp_server() as srv:
            flush(tmp_path, srv.url)
            spans = {s.name: s for s in spans_of(srv.requests)}
        ok, bad = spans["svc remote add"], spans["svc push"]
        attrs = {kv.key: kv.value for kv in ok.attributes}
        assert attrs["process.exit.code"].int_value == 0 and "error.type" not in attrs
        assert attrs["cli.command.name"].string_value == "remote add" and attrs["session.id"].string_value
        bad_attrs = {kv.key: kv.value for kv in bad.attributes}
        assert bad_attrs["error.type"].string_value == "RuntimeError" and bad.status.code == 2
        assert ok.kind == 1  # SPAN_KIND_INTERNAL

    def test_basic_level_sends_metrics_only(self, tmp_path: Path) -> None:
        """basic: no spans, no performance, session or activity metrics."""
        write_runs(tmp_path, [("build", 0, None)] * 5, level=Level.BASIC)
        with otlp_server() as srv:
            flush(tmp_path, srv.url)
            names = {k[0] for k in metric_values(srv.requests)}
            assert not spans_of(srv.requests)
        assert "cli.command.invocations" in names and "cli.command.duration" in names
        assert not names & {"cli.command.cpu_time", "cli.command.memory.peak", "cli.activity"}

    def test_json_protocol(self, tmp_path: Path) -> None:
        """http/json sends OTLP/JSON with hex ids."""
        write_runs(tmp_path, [("build", 0, None)])
        with otlp_server() as srv:
            flush(tmp_path, srv.url, OTEL_EXPORTER_OTLP_PROTOCOL="http/json")
            traces = next(r for r in srv.requests if r.signal == "traces")
            span = traces.json()["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        assert traces.content_type.startswith("application/json")
        assert len(span["traceId"]) == 32 and int(span["traceId"], 16)


class TestDays:
    def test_runs_count_on_the_day_they_ran_not_the_day_they_were_sent(self, tmp_path: Path) -> None:
        """Runs recorded offline on three UTC days (one record holding runs of two of them), part ingested by
        a round that could not send, the rest by the round that sends: each day's points count exactly that
        day's runs (a backend files a delta point under the day it ends), their windows lie inside their day,
        and a series sends one point per day, not one per run (was: one point from the first day to the last,
        every run counted on the day of the send)."""
        today = time.time_ns() // DAY_NS
        d1, d2, d3 = today - 8, today - 3, today
        write_days(tmp_path, [[d1]] * 5)
        with refused_port() as addr:
            assert not flush(tmp_path, addr.url).ok  # ingested into the spool, nothing sent
        write_days(tmp_path, [[d2]] * 3 + [[d2, d3]] + [[d3]] * 2)
        with otlp_server() as srv:
            summary = flush(tmp_path, srv.url)
            assert summary.ok
            by_day: dict[int, float] = {}
            points = metric_points(srv.requests, "cli.command.invocations")
            for dp in points:
                day = dp.time_unix_nano // DAY_NS
                assert dp.start_time_unix_nano // DAY_NS == day, "a point's window spans two days"
                by_day[day] = by_day.get(day, 0) + dp.as_int
            assert by_day == {d1: 5, d2: 4, d3: 3}
            assert len(points) == 3  # one point per series and day
            durations: dict[int, int] = {}
            for dp in metric_points(srv.requests, "cli.command.duration"):
                durations[dp.time_unix_nano // DAY_NS] = durations.get(dp.time_unix_nano // DAY_NS, 0) + dp.count
            assert durations == {d1: 5, d2: 4, d3: 3}
            spans = spans_of(srv.requests)
            assert sorted(s.start_time_unix_nano // DAY_NS for s in spans) == [d1] * 5 + [d2] * 4 + [d3] * 3


class TestFailures:
    def test_refused_keeps_data_and_backs_off(self, tmp_path: Path) -> None:
        """A refused collector ends the round fast, keeps everything, and defers the next attempt."""
        write_runs(tmp_path, [("build", 0, None)] * 3)
        with refused_port() as addr:
            t0 = time.monotonic()
            summary = flush(tmp_path, addr.url)
            assert time.monotonic() - t0 < 5
        assert not summary.ok and summary.pending_spans == 3
        assert launcher.next_send_at(str(tmp_path)) > time.time() + 4
        assert not launcher.should_start(str(tmp_path), send=True)
        with otlp_server() as srv:
            summary = flush(tmp_path, srv.url)
            assert summary.ok and len(spans_of(srv.requests)) == 3

    def test_blackholed_round_is_bounded(self, tmp_path: Path) -> None:
        """A collector that never answers costs at most the configured timeout."""
        write_runs(tmp_path, [("build", 0, None)])
        with blackhole() as addr:
            t0 = time.monotonic()
            summary = flush(tmp_path, addr.url, OTEL_EXPORTER_OTLP_TIMEOUT="2000")
            assert time.monotonic() - t0 < 8
        assert not summary.ok and summary.pending_spans == 1

    def test_retry_after_is_honoured(self, tmp_path: Path) -> None:
        """429 with Retry-After pushes the next attempt at least that far out."""
        write_runs(tmp_path, [("build", 0, None)])
        with otlp_server(respond(429, headers={"Retry-After": "120"})) as srv:
            summary = flush(tmp_path, srv.url)
            assert len(srv.requests) == 1
        assert not summary.ok and launcher.next_send_at(str(tmp_path)) >= time.time() + 110

    def test_bad_request_is_dropped_and_counted(self, tmp_path: Path) -> None:
        """400 is not retried: the batch is dropped and the drop is reported as self-health."""
        write_runs(tmp_path, [("build", 0, None)] * 2)
        with otlp_server(respond(400)) as srv:
            summary = flush(tmp_path, srv.url)
            assert summary.dropped > 0 and summary.pending_spans == 0
        write_runs(tmp_path, [("build", 0, None)])
        with otlp_server() as srv:
            flush(tmp_path, srv.url)
            values = metric_values(srv.requests)
        assert values[("otel_expansion.spool.dropped", (("reason", "rejected"),))] >= 1

    def test_too_large_splits_batches(self, tmp_path: Path) -> None:
        """413 makes the sender split the request until it fits; everything arrives exactly once."""
        write_runs(tmp_path, [(f"cmd{i % 7}", 0, None) for i in range(120)])

        def limit(req: Any) -> Any:
            return respond(413)(req) if len(req.raw_body) > 1500 else respond(200)(req)

        with otlp_server(limit) as srv:
            summary = flush(tmp_path, srv.url)
            accepted = [r for r in srv.requests if len(r.raw_body) <= 1500]
            spans = spans_of([r for r in accepted if r.signal == "traces"])
            values = metric_values(accepted)
        assert summary.ok and len(spans) == 120 and summary.spans_sent == 120
        invocations = sum(v for k, v in values.items() if k[0] == "cli.command.invocations")
        assert invocations == 120  # split requests never resend what was already accepted

    def test_flapping_collector_delivers_every_batch_with_stable_ids(self, tmp_path: Path) -> None:
        """5xx then success: retries resend the same batch id, and all data arrives."""
        write_runs(tmp_path, [("build", 0, None)] * 10)
        inner = cycle(respond(503), respond(200), respond(200))
        answered: list[tuple[Any, int]] = []

        def flapping(req: Any) -> Any:
            reply = inner(req)
            answered.append((req, reply.status))
            return reply

        with otlp_server(flapping) as srv:
            for _ in range(6):
                launcher.write_next_send_at(str(tmp_path), 0)
                flush(tmp_path, srv.url)
            ok = [req for req, status in answered if status == 200]
            ids = [r.batch_id for r in srv.requests]
        assert len(set(ids)) < len(ids)  # a retried batch keeps its id
        assert len({s.span_id for s in spans_of(ok)}) == 10
        assert len(spans_of(ok)) == 10  # a signal already accepted is not sent again

    def test_sender_killed_mid_send_loses_nothing(self, tmp_path: Path) -> None:
        """kill -9 while the collector holds the request: the next round delivers the same batch id."""
        write_runs(tmp_path, [("build", 0, None)] * 4)
        env = clean_env(tmp_path, OTEL_EXPANSION_SENDER_TIMEOUT="30")
        with otlp_server(slow(20)) as srv:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = srv.url
            proc = subprocess.Popen([sys.executable, "-m", "otel_expansion.workers.sender", "--home", str(tmp_path)],
                                    env=env, cwd=ROOT)
            srv.wait_for(1, timeout_s=20)
            first_id = srv.requests[0].batch_id
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            srv.behaviour = respond(200)
            summary = flush(tmp_path, srv.url)
            later = srv.requests[1:]
        assert summary.ok and first_id in {r.batch_id for r in later}
        assert len(spans_of([r for r in later if r.batch_id == first_id])) == 4


def test_cli_exit_starts_a_detached_sender(tmp_path: Path) -> None:
    """A real CLI run with the collector up: its sender delivers without the CLI waiting for it."""
    home = tmp_path / "home"
    with otlp_server() as srv:
        env = clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "democli.py"), "hello", "x"], env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stdout == "hello x\n"
        srv.wait_for(2, timeout_s=20)
        spans = spans_of(srv.requests)
    assert [s.name for s in spans] == ["democli hello"]
    wait_until(lambda: not launcher.sender_running(str(home)), timeout_s=10,
               what="the sender exited on its own")  # nothing lingers


@pytest.fixture(autouse=True)
def _no_leftover_handle() -> Any:
    yield
    _runtime._reset_for_tests()


def test_new_session_links_to_the_previous_one(tmp_path: Path) -> None:
    """After an idle gap the first span of the new session carries session.previous_id."""
    from otel_expansion.config.paths import SESSION_FILE

    write_runs(tmp_path, [("build", 0, None)])
    session_file = tmp_path / SESSION_FILE
    sid, prev, start, last, count = session_file.read_text().split()
    session_file.write_text(f"{sid} {prev} {int(start) - 10**13} {int(last) - 10**13} {count}")
    write_runs(tmp_path, [("test", 0, None), ("lint", 0, None)])
    with otlp_server() as srv:
        flush(tmp_path, srv.url)
        spans = {s.name: {kv.key: kv.value.string_value for kv in s.attributes} for s in spans_of(srv.requests)}
    assert spans["svc test"]["session.previous_id"] == sid and spans["svc test"]["session.id"] != sid
    assert "session.previous_id" not in spans["svc build"] and "session.previous_id" not in spans["svc lint"]


def test_sender_starts_are_rate_limited(tmp_path: Path) -> None:
    """Even when a send is due, a sender started seconds ago blocks another start (no spawn storms)."""
    tmp_path.mkdir(exist_ok=True)
    assert launcher.should_start(str(tmp_path), send=True)
    launcher._write_state(str(tmp_path), 0, time.time())
    assert not launcher.should_start(str(tmp_path), send=True)
    assert launcher.should_start(str(tmp_path), send=True, now=time.time() + launcher.MIN_SPAWN_INTERVAL_S + 1)


def test_a_sender_that_cannot_start_does_not_grow_its_log_forever(tmp_path: Path) -> None:
    """A sender that dies on start (an environment that cannot import it) never trims its own log: the
    launcher empties a log past its bound before each start, so repeated crashes stay bounded."""
    from otel_expansion.config.paths import SENDER_LOG

    log = tmp_path / SENDER_LOG
    log.write_bytes(b"x" * (launcher.SENDER_LOG_MAX_BYTES + 1))
    for _ in range(3):
        pid = launcher.spawn(str(tmp_path), entry="otel_expansion_no_such_module")
        assert pid is not None
        os.waitpid(pid, 0)
        launcher._children.clear()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert 0 < len(text) < 4096 and "otel_expansion_no_such_module" in text  # three short errors, no more


class TestPerSignal:
    def test_a_refused_signal_does_not_hold_back_the_other(self, tmp_path: Path) -> None:
        """A traces-only backend (404 on metrics): spans still arrive; metrics are dropped and counted."""
        write_runs(tmp_path, [("build", 0, None)] * 3)

        def traces_only(req: Any) -> Any:
            return respond(404)(req) if req.signal == "metrics" else respond(200)(req)

        with otlp_server(traces_only) as srv:
            summary = flush(tmp_path, srv.url)
            spans = spans_of([r for r in srv.requests if r.signal == "traces"])
        assert len(spans) == 3 and summary.spans_sent == 3 and summary.points_sent == 0
        assert summary.dropped > 0 and summary.pending_spans == 0 and "metrics" in (summary.error or "")

    def test_exporter_none_keeps_a_signal_off_the_wire(self, tmp_path: Path) -> None:
        """OTEL_METRICS_EXPORTER=none: only traces are sent."""
        write_runs(tmp_path, [("build", 0, None)] * 2)
        with otlp_server() as srv:
            summary = flush(tmp_path, srv.url, OTEL_METRICS_EXPORTER="none")
            signals = {r.signal for r in srv.requests}
        assert signals == {"traces"} and summary.ok and summary.spans_sent == 2
