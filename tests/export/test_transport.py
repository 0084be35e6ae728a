"""The HTTP transport and its configuration, against real servers on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import logging
import random
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any, TypeVar

import pytest

from otel_expansion.config import warn_once as warn_mod
from otel_expansion.config.otlp import OtlpConfig, otlp_config_from_env, parse_headers
from otel_expansion.export.transport import (
    HttpTransport,
    Outcome,
    SendResult,
    backoff_delay,
    classify_status,
    parse_retry_after,
)
from otel_expansion.otlp.model import BATCH_ID_HEADER
from tests.export.servers import (
    Certificates,
    blackhole,
    cycle,
    export_response,
    flaky,
    hang_up,
    make_certificates,
    ok,
    otlp_server,
    refused_port,
    respond,
    sequence,
    server_tls_context,
    slow,
)

T = TypeVar("T")
BODY = b"\x0a\x10" + bytes(range(16)) * 40  # protobuf-ish bytes that compress well
GUARD_S = 10.0  # a call that should end quickly is abandoned (and the test fails) after this


def bounded(call: Callable[[], T], guard_s: float = GUARD_S) -> T:
    """Run ``call`` on a thread so a hang fails the test instead of stalling the suite."""
    box: list[T] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    thread.join(guard_s)
    assert box, f"call did not return within {guard_s} s"
    return box[0]


def config(url: str, **env: str) -> OtlpConfig:
    return otlp_config_from_env(env, endpoint=url)


def send(
    cfg: OtlpConfig,
    signal: str = "traces",
    body: bytes = BODY,
    batch_id: str = "b-1",
    deadline_s: float | None = None,
) -> SendResult:
    with HttpTransport(cfg) as transport:
        return bounded(lambda: transport.send(signal, body, batch_id, deadline_s))


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    warn_mod.forget()
    yield
    warn_mod.forget()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "otel_expansion.export" and r.levelno == logging.WARNING
    ]


# -- configuration ---------------------------------------------------------------------------------------


class TestOtlpConfig:
    def test_defaults(self) -> None:
        """No variables: localhost:4318 per-signal URLs, protobuf, gzip, 10 s, no headers, no TLS files."""
        cfg = otlp_config_from_env({})
        assert (cfg.traces_url, cfg.metrics_url, cfg.logs_url) == (
            "http://localhost:4318/v1/traces",
            "http://localhost:4318/v1/metrics",
            "http://localhost:4318/v1/logs",
        )
        assert (cfg.protocol, cfg.compression, cfg.headers, cfg.timeout_s) == (
            "http/protobuf",
            "gzip",
            (),
            10.0,
        )
        assert (cfg.certificate_file, cfg.client_key_file, cfg.client_certificate_file) == (None, None, None)
        assert cfg.insecure is False
        assert cfg == OtlpConfig()

    @pytest.mark.parametrize(
        ("base", "traces"),
        [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("https://example.com/otlp", "https://example.com/otlp/v1/traces"),
            ("https://example.com/otlp/", "https://example.com/otlp/v1/traces"),
        ],
    )
    def test_general_endpoint_gets_signal_paths(self, base: str, traces: str) -> None:
        """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: v1/<signal> is appended after any path prefix."""
        cfg = otlp_config_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": base})
        assert cfg.traces_url == traces
        assert cfg.logs_url == traces.replace("traces", "logs")

    def test_signal_endpoint_used_as_is_and_beats_general(self) -> None:
        """A signal's own endpoint is used unmodified and only for that signal."""
        cfg = otlp_config_from_env(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://metrics.example/custom",
            }
        )
        assert cfg.metrics_url == "https://metrics.example/custom"
        assert cfg.traces_url == "http://general:4318/v1/traces"

    def test_explicit_endpoint_beats_general_but_not_signal_variable(self) -> None:
        """init(endpoint=) wins over OTEL_EXPORTER_OTLP_ENDPOINT; a signal's own variable still wins."""
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9999/in",
        }
        cfg = otlp_config_from_env(env, endpoint="https://vendor.example")
        assert cfg.traces_url == "https://vendor.example/v1/traces"
        assert cfg.logs_url == "http://logs:9999/in"

    def test_signal_options_beat_general_options(self) -> None:
        """Protocol, compression, headers and timeout of one signal override the general ones for it only."""
        cfg = otlp_config_from_env(
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json",
                "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "none",
                "OTEL_EXPORTER_OTLP_HEADERS": "a=1",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "5000",
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "250",
            }
        )
        traces, metrics, logs = (cfg.for_signal(s) for s in ("traces", "metrics", "logs"))
        assert (cfg.protocol, logs.protocol, traces.protocol) == (
            "http/protobuf",
            "http/json",
            "http/protobuf",
        )
        assert (metrics.compression, traces.compression) == ("none", "gzip")
        assert (traces.headers, metrics.headers) == ((("b", "2"),), (("a", "1"),))
        assert (traces.timeout_s, metrics.timeout_s, cfg.timeout_s) == (0.25, 5.0, 5.0)
        assert logs.url == cfg.logs_url

    def test_timeout_is_milliseconds(self) -> None:
        """OTEL_EXPORTER_OTLP_TIMEOUT=10000 means ten seconds (spec 1.x)."""
        assert otlp_config_from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "1500"}).timeout_s == 1.5

    def test_headers_are_percent_decoded_and_trimmed(self) -> None:
        """Headers follow the baggage-like format: k=v pairs, whitespace trimmed, values percent-decoded."""
        cfg = otlp_config_from_env(
            {"OTEL_EXPORTER_OTLP_HEADERS": " api-key = s%3Dcr%2Ct ,Authorization=Bearer%20x"}
        )
        assert cfg.headers == (("api-key", "s=cr,t"), ("Authorization", "Bearer x"))

    def test_empty_values_count_as_unset(self) -> None:
        """Empty variables are ignored, as the specification asks."""
        env = {
            f"OTEL_EXPORTER_OTLP_{name}": ""
            for name in (
                "ENDPOINT",
                "TRACES_ENDPOINT",
                "PROTOCOL",
                "COMPRESSION",
                "HEADERS",
                "TIMEOUT",
                "CERTIFICATE",
            )
        }
        assert otlp_config_from_env(env) == OtlpConfig()

    @pytest.mark.parametrize("raw", ["abc", "-5", "0", "inf", "nan"])
    def test_bad_timeout_warns_and_defaults(self, raw: str, caplog: pytest.LogCaptureFixture) -> None:
        """A timeout that is not a positive number of milliseconds warns and keeps 10 s."""
        cfg = otlp_config_from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": raw})
        assert cfg.timeout_s == 10.0
        assert any("OTEL_EXPORTER_OTLP_TIMEOUT" in w for w in warnings_of(caplog))

    def test_unknown_protocol_warns_and_defaults(self, caplog: pytest.LogCaptureFixture) -> None:
        """An unknown protocol warns and uses http/protobuf."""
        cfg = otlp_config_from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})
        assert cfg.protocol == "http/protobuf"
        said = warnings_of(caplog)
        assert any("OTEL_EXPORTER_OTLP_PROTOCOL" in w for w in said)
        assert not any("carrier-pigeon" in w for w in said)  # a bad value is never repeated: it may be a secret

    def test_grpc_falls_back_to_http_protobuf_warning_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """grpc is not offered: it warns once per process and uses http/protobuf."""
        for _ in range(3):
            assert otlp_config_from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}).protocol == "http/protobuf"
        assert len([w for w in warnings_of(caplog) if "grpc" in w]) == 1

    def test_bad_compression_warns_and_defaults(self, caplog: pytest.LogCaptureFixture) -> None:
        """Only gzip and none are supported; anything else warns and keeps gzip."""
        assert otlp_config_from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}).compression == "gzip"
        assert otlp_config_from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": "NONE"}).compression == "none"
        said = warnings_of(caplog)
        assert any("OTEL_EXPORTER_OTLP_COMPRESSION" in w for w in said) and not any("zstd" in w for w in said)

    def test_bad_header_members_warn_and_are_skipped(self, caplog: pytest.LogCaptureFixture) -> None:
        """Members without '=' or with a non-token key are skipped with a warning; valid ones are kept."""
        cfg = otlp_config_from_env({"OTEL_EXPORTER_OTLP_HEADERS": "good=1,novalue,bad key=2,=3"})
        assert cfg.headers == (("good", "1"),)
        assert len(warnings_of(caplog)) == 3

    def test_header_injection_is_rejected(self) -> None:
        """A percent-encoded CR/LF cannot smuggle extra headers into requests."""
        assert parse_headers("x=a%0D%0AEvil: 1,y=2") == (("y", "2"),)

    def test_all_bad_signal_headers_fall_back_to_general(self) -> None:
        """A signal's header variable with nothing valid in it leaves the general headers in force."""
        cfg = otlp_config_from_env(
            {"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "junk"}
        )
        assert cfg.for_signal("traces").headers == (("a", "1"),)

    @pytest.mark.parametrize("raw", ["ftp://host/x", "http://", "http://host:notaport", "https://:443",
                                     "not a url"])
    def test_bad_endpoint_warns_once_and_holds(self, raw: str, caplog: pytest.LogCaptureFixture,
                                               capsys: pytest.CaptureFixture[str]) -> None:
        """An endpoint that is not an http(s) URL with a host marks the configuration unusable: the sender
        holds the data instead of sending it to the default endpoint (issue 24, defect 9). It is said once,
        by the settings loader every process runs ("nothing will be sent until it is fixed"), never
        contradicted by the OTLP parser ("ignored", "using https://")."""
        from otel_expansion.config import load

        cfg = otlp_config_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": raw})
        assert cfg.endpoint_problem == "OTEL_EXPORTER_OTLP_ENDPOINT is not a valid URL"
        assert warnings_of(caplog) == []
        assert otlp_config_from_env({}).endpoint_problem is None
        warn_mod.forget()
        capsys.readouterr()
        load("app", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": raw})
        said = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
        assert len(said) == 1 and said[0].endswith("; nothing will be sent until it is fixed"), said

    def test_bad_explicit_endpoint_falls_back_to_general_variable(self) -> None:
        """A bad init(endpoint=) gives way to the next level, OTEL_EXPORTER_OTLP_ENDPOINT."""
        cfg = otlp_config_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:1"}, endpoint="gopher://x")
        assert (cfg.traces_url, cfg.endpoint_problem) == ("http://general:1/v1/traces", None)
        assert otlp_config_from_env({}, endpoint="gopher://x").endpoint_problem

    def test_endpoint_without_scheme_uses_insecure_flag(self, caplog: pytest.LogCaptureFixture) -> None:
        """A scheme-less endpoint warns and gets https, or http when OTEL_EXPORTER_OTLP_INSECURE=true."""
        assert (
            otlp_config_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "col:4318"}).traces_url
            == "https://col:4318/v1/traces"
        )
        cfg = otlp_config_from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "col:4318", "OTEL_EXPORTER_OTLP_INSECURE": "true"}
        )
        assert (cfg.traces_url, cfg.insecure) == ("http://col:4318/v1/traces", True)
        assert warnings_of(caplog)

    def test_bad_insecure_flag_warns_and_defaults(self, caplog: pytest.LogCaptureFixture) -> None:
        """OTEL_EXPORTER_OTLP_INSECURE must be true/false; anything else warns and means false."""
        assert otlp_config_from_env({"OTEL_EXPORTER_OTLP_INSECURE": "maybe"}).insecure is False
        assert any("INSECURE" in w for w in warnings_of(caplog))

    def test_certificate_files_must_exist(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """Certificate paths are kept when the file exists; a missing one warns and is ignored."""
        ca = tmp_path / "ca.pem"
        ca.write_text("x")
        cfg = otlp_config_from_env(
            {
                "OTEL_EXPORTER_OTLP_CERTIFICATE": str(ca),
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(tmp_path / "missing.pem"),
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(ca),
            }
        )
        assert (cfg.certificate_file, cfg.client_certificate_file) == (str(ca), None)
        assert cfg.for_signal("traces").certificate_file == str(ca)
        said = warnings_of(caplog)
        assert any("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" in w for w in said)
        assert not any("missing.pem" in w for w in said)

    def test_reads_os_environ_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without an explicit mapping the process environment is read."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-env:1234")
        assert otlp_config_from_env().traces_url == "http://from-env:1234/v1/traces"


# -- helpers: Retry-After, backoff, status classes -----------------------------------------------------


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("120", 120.0),
            ("0", 0.0),
            (" 7 ", 7.0),
            ("1.5", 1.5),
            ("99999999", 86400.0),
            (None, None),
            ("", None),
            ("   ", None),
            ("-1", None),
            ("soon", None),
            ("1e400", None),
            ("inf", None),
            ("nan", None),
            ("12abc", None),
            ("Mon, 99 Foo 2020 99:99:99 GMT", None),
        ],
    )
    def test_delay_seconds(self, value: str | None, expected: float | None) -> None:
        """delay-seconds are read, capped at one day; anything unparseable is None."""
        assert parse_retry_after(value) == expected

    def test_http_date_in_future(self) -> None:
        """An HTTP-date gives the seconds from now until then."""
        now = 1_700_000_000.0
        assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0

    def test_http_date_in_past_is_zero(self) -> None:
        """A date already past means retry now, not a negative delay."""
        assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=1_700_000_000.0) == 0.0

    def test_obsolete_date_formats(self) -> None:
        """RFC 850 and asctime dates (which HTTP still allows) are understood as GMT."""
        now = 784_111_777.0 - 60  # one minute before Sun, 06 Nov 1994 08:49:37 GMT
        assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now=now) == 60.0
        assert parse_retry_after("Sun Nov  6 08:49:37 1994", now=now) == 60.0

    def test_far_future_date_is_capped(self) -> None:
        """A date years ahead still means at most one day."""
        assert parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", now=1_700_000_000.0) == 86400.0


class TestBackoffDelay:
    def test_bounds(self) -> None:
        """Every delay lies in [0, min(cap, base * 2**attempt)]."""
        rng = random.Random(1)
        for attempt in range(0, 80):
            for _ in range(50):
                delay = backoff_delay(attempt, base_s=0.5, cap_s=60.0, rng=rng)
                assert 0.0 <= delay <= min(60.0, 0.5 * 2**attempt)

    def test_full_jitter_distribution(self) -> None:
        """Delays spread uniformly over the whole window (full jitter), not clustered at its top."""
        rng = random.Random(42)
        samples = [backoff_delay(3, base_s=1.0, cap_s=300.0, rng=rng) for _ in range(20000)]
        assert statistics.fmean(samples) == pytest.approx(4.0, abs=0.1)
        assert min(samples) < 0.05 and max(samples) > 7.95
        quartiles = statistics.quantiles(samples, n=4)
        assert quartiles == pytest.approx([2.0, 4.0, 6.0], abs=0.15)

    def test_cap_reached(self) -> None:
        """Past the cap the window stays at cap_s, and huge attempt numbers do not overflow."""
        rng = random.Random(7)
        samples = [backoff_delay(10**6, base_s=1.0, cap_s=300.0, rng=rng) for _ in range(2000)]
        assert max(samples) <= 300.0 and max(samples) > 290.0

    def test_negative_attempt_is_first_attempt(self) -> None:
        """A negative attempt behaves like attempt 0 (window of base_s)."""
        rng = random.Random(3)
        assert all(0.0 <= backoff_delay(-5, base_s=2.0, rng=rng) <= 2.0 for _ in range(500))


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (202, Outcome.SUCCESS),
        (204, Outcome.SUCCESS),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (504, Outcome.RETRY),
        (413, Outcome.TOO_LARGE),
        (400, Outcome.DROP),
        (401, Outcome.HOLD),  # a misconfigured endpoint: data held (issue 24)
        (403, Outcome.HOLD),  # a misconfigured endpoint: data held (issue 24)
        (404, Outcome.HOLD),  # a misconfigured endpoint: data held (issue 24)
        (405, Outcome.HOLD),  # a misconfigured endpoint: data held (issue 24)
        (501, Outcome.DROP),
        (301, Outcome.DROP),
    ],
)
def test_classify_status(status: int, outcome: Outcome) -> None:
    """2xx succeed; 408, 429, 5xx but 501 retry; 413 is too large; everything else drops."""
    assert classify_status(status) is outcome


# -- the transport against real servers -----------------------------------------------------------------


class TestDelivery:
    def test_gzip_body_arrives_intact(self) -> None:
        """The body is gzipped on the wire and decompresses to exactly what was given."""
        with otlp_server() as srv:
            result = send(config(srv.url))
            (req,) = srv.requests
        assert result.outcome is Outcome.SUCCESS and result.status == 200
        assert req.header("content-encoding") == "gzip"
        assert req.raw_body != BODY and gzip.decompress(req.raw_body) == BODY and req.body == BODY
        assert result.sent_bytes == len(req.raw_body) < len(BODY)
        assert (req.method, req.path) == ("POST", "/v1/traces")

    def test_no_compression(self) -> None:
        """With compression none the body is sent as is, without Content-Encoding."""
        with otlp_server() as srv:
            send(config(srv.url, OTEL_EXPORTER_OTLP_COMPRESSION="none"))
            (req,) = srv.requests
        assert req.raw_body == BODY and req.header("content-encoding") is None

    @pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
    def test_protobuf_content_type_and_signal_path(self, signal: str) -> None:
        """http/protobuf posts application/x-protobuf to the signal's URL."""
        with otlp_server() as srv:
            assert send(config(srv.url), signal=signal).outcome is Outcome.SUCCESS
            (req,) = srv.requests
        assert (req.path, req.content_type) == (f"/v1/{signal}", "application/x-protobuf")

    def test_json_content_type(self) -> None:
        """http/json posts application/json; a signal-specific protocol applies to that signal only."""
        with otlp_server() as srv:
            cfg = config(srv.url, OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/json")
            send(cfg, signal="logs", body=b'{"resourceLogs":[]}')
            send(cfg, signal="traces")
            logs, traces = srv.requests
        assert (logs.content_type, logs.json()) == ("application/json", {"resourceLogs": []})
        assert traces.content_type == "application/x-protobuf"

    def test_configured_headers_user_agent_and_batch_id(self) -> None:
        """Headers from the environment, the User-Agent and the batch id header all reach the server."""
        with otlp_server() as srv:
            cfg = config(srv.url, OTEL_EXPORTER_OTLP_HEADERS="api-key=s%3Dcret,X-Team=cli")
            with HttpTransport(cfg, user_agent="mycli-telemetry/2.0") as transport:
                transport.send("metrics", BODY, "batch-42:metrics")
            (req,) = srv.requests
        assert (req.header("api-key"), req.header("x-team")) == ("s=cret", "cli")
        assert req.header("user-agent") == "mycli-telemetry/2.0"
        assert req.header(BATCH_ID_HEADER) == "batch-42:metrics" == req.batch_id

    def test_configured_headers_cannot_break_framing(self) -> None:
        """Configured Content-Type/Content-Length headers are ignored; a configured User-Agent wins."""
        with otlp_server() as srv:
            send(
                config(
                    srv.url,
                    OTEL_EXPORTER_OTLP_HEADERS="Content-Type=text/plain,Content-Length=1,User-Agent=me",
                )
            )
            (req,) = srv.requests
        assert req.content_type == "application/x-protobuf" and req.body == BODY
        assert req.header("user-agent") == "me"

    def test_batch_id_is_sanitised(self) -> None:
        """A batch id with CR/LF or spaces cannot break the request; only printable ASCII is sent."""
        with otlp_server() as srv:
            result = send(config(srv.url), batch_id="id 1\r\nX-Evil: 1")
            (req,) = srv.requests
        assert result.outcome is Outcome.SUCCESS
        assert req.batch_id == "id1X-Evil:1" and req.header("x-evil") is None

    def test_one_persistent_connection(self) -> None:
        """Consecutive requests to one host, whatever the signal, reuse one kept-alive connection."""
        with otlp_server() as srv, HttpTransport(config(srv.url)) as transport:
            for signal in ("traces", "metrics", "logs", "traces"):
                assert transport.send(signal, BODY, "b").outcome is Outcome.SUCCESS
            assert {r.connection for r in srv.requests} == {1}
            assert srv.connections_opened == 1

    def test_reconnects_after_server_closed_idle_connection(self) -> None:
        """A kept-alive connection the server silently closed is replaced transparently, once."""
        with otlp_server(respond(200, close_after=True)) as srv, HttpTransport(config(srv.url)) as transport:
            first = transport.send("traces", BODY, "b1")
            srv.wait_for(1)
            time.sleep(0.05)  # let the server's close land before reusing the connection
            second = transport.send("traces", BODY, "b2")
            requests = srv.requests
        assert (first.outcome, second.outcome) == (Outcome.SUCCESS, Outcome.SUCCESS)
        assert [r.batch_id for r in requests] == ["b1", "b2"]
        assert [r.connection for r in requests] == [1, 2]

    def test_close_then_send_reconnects(self) -> None:
        """close() drops connections; the transport stays usable and opens a new one."""
        with otlp_server() as srv:
            transport = HttpTransport(config(srv.url))
            transport.send("traces", BODY, "b1")
            transport.close()
            result = transport.send("traces", BODY, "b2")
            transport.close()
            assert result.outcome is Outcome.SUCCESS
            assert [r.connection for r in srv.requests] == [1, 2]

    def test_oversized_response_is_cut_and_connection_dropped(self) -> None:
        """A huge 2xx response body is not read in full; the connection is closed, not reused."""
        with otlp_server(respond(200, b"x" * 300_000)) as srv, HttpTransport(config(srv.url)) as transport:
            first = transport.send("traces", BODY, "b1")
            second = transport.send("traces", BODY, "b2")
            connections = [r.connection for r in srv.requests]
        assert (first.outcome, first.rejected, second.outcome) == (Outcome.SUCCESS, 0, Outcome.SUCCESS)
        assert connections == [1, 2]


class TestPartialSuccess:
    @pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
    def test_protobuf(self, signal: str) -> None:
        """A 200 whose protobuf Export*ServiceResponse rejects items reports them and the server's reason."""
        with otlp_server(ok(rejected=3, message="too old")) as srv:
            result = send(config(srv.url), signal=signal)
        assert (result.outcome, result.rejected, result.error) == (Outcome.SUCCESS, 3, "too old")

    @pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
    def test_json(self, signal: str) -> None:
        """JSON partialSuccess (int64 as string, camelCase keys) is read the same way."""
        with otlp_server(ok(rejected=5, message="dup")) as srv:
            result = send(config(srv.url, OTEL_EXPORTER_OTLP_PROTOCOL="http/json"), signal=signal, body=b"{}")
        assert (result.outcome, result.rejected, result.error) == (Outcome.SUCCESS, 5, "dup")

    def test_full_success_has_no_rejections(self) -> None:
        """An empty Export*ServiceResponse means everything was accepted."""
        with otlp_server() as srv:
            result = send(config(srv.url))
        assert (result.rejected, result.error) == (0, None)

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            ("application/x-protobuf", b"\xff\xff\xff"),
            ("application/json", b"{not json"),
            ("application/json", b"[1, 2]"),
            ("text/html", b"<html>ok</html>"),
        ],
    )
    def test_undecodable_body_is_still_success(self, content_type: str, body: bytes) -> None:
        """A 2xx with a body that is not an Export*ServiceResponse counts as full success."""
        with otlp_server(respond(200, body, {"Content-Type": content_type})) as srv:
            result = send(config(srv.url))
        assert (result.outcome, result.rejected) == (Outcome.SUCCESS, 0)

    def test_response_encoding_follows_response_content_type(self) -> None:
        """A JSON response to a protobuf request is still understood."""
        body = export_response("traces", rejected=2, as_json=True)
        with otlp_server(respond(200, body, {"Content-Type": "application/json"})) as srv:
            assert send(config(srv.url)).rejected == 2


class TestStatuses:
    @pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
    def test_server_errors_retry(self, status: int) -> None:
        """Timeouts and 5xx ask for a retry, without a Retry-After unless given on 429/503."""
        with otlp_server(respond(status)) as srv:
            result = send(config(srv.url))
        assert (result.outcome, result.status, result.retry_after_s) == (Outcome.RETRY, status, None)
        assert result.error is not None and str(status) in result.error

    @pytest.mark.parametrize("status", [400, 501])
    def test_client_errors_drop(self, status: int) -> None:
        """Requests the collector will never accept are dropped."""
        with otlp_server(respond(status)) as srv:
            result = send(config(srv.url))
        assert (result.outcome, result.status) == (Outcome.DROP, status)

    @pytest.mark.parametrize("status", [401, 403, 404])
    def test_a_misconfigured_endpoint_holds(self, status: int) -> None:
        """A wrong path or credentials: the data is held and the error says what to check (issue 24, #10)."""
        with otlp_server(respond(status)) as srv:
            result = send(config(srv.url))
        assert (result.outcome, result.status) == (Outcome.HOLD, status)
        assert result.error is not None and str(status) in result.error and "endpoint" in result.error

    def test_payload_too_large(self) -> None:
        """413 tells the sender to split the batch."""
        with otlp_server(respond(413)) as srv:
            assert send(config(srv.url)).outcome is Outcome.TOO_LARGE

    def test_429_retry_after_seconds(self) -> None:
        """429 with Retry-After in seconds is a retry after exactly that long."""
        with otlp_server(respond(429, headers={"Retry-After": "7"})) as srv:
            result = send(config(srv.url))
        assert (result.outcome, result.status, result.retry_after_s) == (Outcome.RETRY, 429, 7.0)

    def test_429_retry_after_http_date(self) -> None:
        """429 with Retry-After as an HTTP-date gives the seconds until that date."""
        date = formatdate(time.time() + 120, usegmt=True)
        with otlp_server(respond(429, headers={"Retry-After": date})) as srv:
            result = send(config(srv.url))
        assert result.outcome is Outcome.RETRY
        assert result.retry_after_s is not None and 100 < result.retry_after_s <= 121

    def test_503_retry_after(self) -> None:
        """503 carries Retry-After too."""
        with otlp_server(respond(503, headers={"Retry-After": "30"})) as srv:
            assert send(config(srv.url)).retry_after_s == 30.0

    def test_retry_after_ignored_on_other_statuses(self) -> None:
        """Retry-After on a 500 is not taken as throttling."""
        with otlp_server(respond(500, headers={"Retry-After": "30"})) as srv:
            assert send(config(srv.url)).retry_after_s is None

    def test_invalid_retry_after(self) -> None:
        """An unparseable Retry-After leaves the delay to the sender's backoff."""
        with otlp_server(respond(429, headers={"Retry-After": "later"})) as srv:
            result = send(config(srv.url))
        assert (result.outcome, result.retry_after_s) == (Outcome.RETRY, None)

    def test_error_detail_from_rpc_status(self) -> None:
        """The message of a google.rpc.Status error body is kept in the result's error."""
        from google.rpc import status_pb2  # type: ignore[import-untyped]

        body = status_pb2.Status(code=3, message="unknown field 'x'").SerializeToString()
        with otlp_server(respond(400, body, {"Content-Type": "application/x-protobuf"})) as srv:
            result = send(config(srv.url))
        assert result.error == "HTTP 400: unknown field 'x'"

    def test_error_detail_from_json_and_text(self) -> None:
        """JSON ``message`` and plain-text error bodies are kept too, whitespace collapsed and bounded."""
        body = json.dumps({"code": 7, "message": "no such tenant"}).encode()
        with otlp_server(respond(403, body, {"Content-Type": "application/json"})) as srv:
            assert (send(config(srv.url)).error or "").startswith("HTTP 403: no such tenant from http://127.0.0.1:")
        with otlp_server(
            respond(502, b"bad\n  gateway " + b"z" * 500, {"Content-Type": "text/plain"})
        ) as srv:
            error = send(config(srv.url)).error
        assert error is not None and error.startswith("HTTP 502: bad gateway zzz") and len(error) < 220

    def test_flapping_server(self) -> None:
        """A collector alternating 503 and 200 gives retry, success, retry, success on one connection."""
        with otlp_server(cycle(respond(503), ok())) as srv, HttpTransport(config(srv.url)) as transport:
            outcomes = [transport.send("traces", BODY, "same-batch").outcome for _ in range(4)]
            requests = srv.requests
        assert outcomes == [Outcome.RETRY, Outcome.SUCCESS, Outcome.RETRY, Outcome.SUCCESS]
        assert {r.batch_id for r in requests} == {"same-batch"} and {r.connection for r in requests} == {1}

    def test_flaky_server_recovers(self) -> None:
        """flaky(2): two 503s, then the batch goes through."""
        with otlp_server(flaky(2)) as srv, HttpTransport(config(srv.url)) as transport:
            outcomes = [transport.send("traces", BODY, "b").outcome for _ in range(3)]
        assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.SUCCESS]


class TestUnreachable:
    def test_refused_port(self) -> None:
        """Nothing listening: an immediate retry, nothing sent."""
        with refused_port() as addr:
            result = send(config(addr.url))
        assert (result.outcome, result.status, result.sent_bytes) == (Outcome.RETRY, None, 0)
        assert result.error is not None and result.error.startswith("connect: ConnectionRefusedError")

    def test_blackholed_connect(self) -> None:
        """A collector that never completes the TCP handshake ends in a retry at the timeout."""
        with blackhole() as addr:
            result = send(config(addr.url, OTEL_EXPORTER_OTLP_TIMEOUT="300"))
        assert result.outcome is Outcome.RETRY
        assert result.error is not None and result.error.startswith("connect: TimeoutError")

    def test_connect_timeout_is_capped(self) -> None:
        """Connecting gets at most the connect cap even when the request timeout is long."""
        with blackhole() as addr:
            transport = HttpTransport(config(addr.url, OTEL_EXPORTER_OTLP_TIMEOUT="60000"))
            transport.connect_timeout_cap_s = 0.2  # the default cap is 3 s; the guard is 10 s, the timeout 60
            result = bounded(lambda: transport.send("traces", BODY, "b"))
            transport.close()
        assert result.error is not None and result.error.startswith("connect: TimeoutError")

    def test_blackholed_response(self) -> None:
        """A collector that accepts but never answers ends in a retry at the timeout."""
        with blackhole("response") as addr:
            result = send(config(addr.url, OTEL_EXPORTER_OTLP_TIMEOUT="300"))
        assert result.outcome is Outcome.RETRY and result.sent_bytes > 0
        assert result.error is not None and result.error.startswith("response: TimeoutError")

    def test_slow_server_beyond_timeout(self) -> None:
        """A server slower than the timeout gives a retry at the timeout, not its late 200."""
        with otlp_server(slow(30)) as srv:
            result = send(config(srv.url, OTEL_EXPORTER_OTLP_TIMEOUT="300"))
            assert len(srv.requests) == 1
        assert (result.outcome, result.status) == (Outcome.RETRY, None)
        assert result.error is not None and "TimeoutError" in result.error

    def test_deadline_bounds_the_timeout(self) -> None:
        """deadline_s (seconds left) ends a request earlier than the configured timeout."""
        with otlp_server(slow(30)) as srv:
            cfg = config(srv.url, OTEL_EXPORTER_OTLP_TIMEOUT="60000")
            result = send(cfg, deadline_s=0.3)
        assert result.outcome is Outcome.RETRY and "TimeoutError" in (result.error or "")

    def test_deadline_already_passed(self) -> None:
        """No time left (deadline_s <= 0) means retry later without touching the network."""
        with otlp_server() as srv:
            result = send(config(srv.url), deadline_s=0.0)
            assert srv.requests == []
        assert (result.outcome, result.sent_bytes) == (Outcome.RETRY, 0)

    def test_trickling_server_is_cut_at_the_deadline(self) -> None:
        """A server dribbling header bytes, each well within the timeout, still ends at the timeout."""
        stop = threading.Event()
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)

            def dribble() -> None:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while not stop.wait(0.05):
                        conn.sendall(b"a")

            thread = threading.Thread(target=dribble, daemon=True)
            thread.start()
            port = listener.getsockname()[1]
            try:
                result = send(config(f"http://127.0.0.1:{port}", OTEL_EXPORTER_OTLP_TIMEOUT="400"))
            finally:
                stop.set()
                thread.join(5)
        assert result.outcome is Outcome.RETRY
        assert result.error is not None and result.error.startswith("response: TimeoutError")

    def test_close_from_another_thread_aborts_request(self) -> None:
        """close() cuts an in-flight request short, without waiting or reconnecting: the send is a retry."""
        with otlp_server(sequence(ok(), slow(30))) as srv:
            transport = HttpTransport(config(srv.url, OTEL_EXPORTER_OTLP_TIMEOUT="60000"))
            assert transport.send("traces", BODY, "b1").outcome is Outcome.SUCCESS  # kept alive

            def close_when_second_request_arrives() -> None:
                srv.wait_for(2)
                transport.close()

            threading.Thread(target=close_when_second_request_arrives, daemon=True).start()
            result = bounded(lambda: transport.send("traces", BODY, "b2"))
            assert len(srv.requests) == 2
        assert (result.outcome, result.status) == (Outcome.RETRY, None)

    def test_server_hangs_up(self) -> None:
        """A connection closed without an answer is a retry."""
        with otlp_server(hang_up()) as srv:
            result = send(config(srv.url))
        assert (result.outcome, result.status) == (Outcome.RETRY, None)
        assert result.error is not None and "RemoteDisconnected" in result.error

    def test_unresolvable_host(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A DNS failure is a retry (the resolver is replaced: tests send nothing beyond 127.0.0.1)."""

        def no_such_host(*args: object, **kwargs: object) -> None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
        result = send(config("http://collector.example:4318"))
        assert result.outcome is Outcome.RETRY
        assert (result.error or "").startswith("connect: gaierror")

    def test_invalid_host_name(self) -> None:
        """A host name that cannot even be encoded (a 64+ character label) is a retry, not an exception."""
        result = send(config("http://" + "a" * 70 + ".example:4318"))
        assert result.outcome is Outcome.RETRY and (result.error or "").startswith("connect: UnicodeError")


class TestNeverRaises:
    def test_unknown_signal(self) -> None:
        """An unknown signal is dropped without a request."""
        with otlp_server() as srv:
            result = send(config(srv.url), signal="profiles")
            assert srv.requests == []
        assert result.outcome is Outcome.DROP and "profiles" in (result.error or "")

    def test_bad_url_in_hand_made_config(self) -> None:
        """A config built by hand with a bad URL keeps the data (retry) and explains why."""
        result = send(OtlpConfig(traces_url="ftp://nowhere/x"))
        assert result.outcome is Outcome.RETRY and "bad URL" in (result.error or "")

    def test_unreadable_client_certificate(self, tmp_path: Path) -> None:
        """Broken TLS files are a retry with the reason, not an exception."""
        junk = tmp_path / "junk.pem"
        junk.write_text("not a certificate")
        cfg = OtlpConfig(traces_url="https://127.0.0.1:1/v1/traces", client_certificate_file=str(junk))
        result = send(cfg)
        assert result.outcome is Outcome.RETRY and (result.error or "").startswith("tls setup")


# -- TLS --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_certificates(tmp_path_factory.mktemp("certs"))


class TestTls:
    def test_https_with_configured_ca(self, certs: Certificates) -> None:
        """HTTPS verifies the server against OTEL_EXPORTER_OTLP_CERTIFICATE."""
        with otlp_server(tls=server_tls_context(certs)) as srv:
            result = send(config(srv.url, OTEL_EXPORTER_OTLP_CERTIFICATE=certs.ca))
            (req,) = srv.requests
        assert srv.url.startswith("https://") and result.outcome is Outcome.SUCCESS and req.body == BODY

    def test_untrusted_server_is_a_retry(self, certs: Certificates) -> None:
        """A server certificate the client does not trust fails the handshake: retry, nothing sent."""
        with otlp_server(tls=server_tls_context(certs)) as srv:
            result = send(config(srv.url))
            assert srv.requests == []
        assert result.outcome is Outcome.RETRY and "SSLCertVerificationError" in (result.error or "")

    def test_client_certificate(self, certs: Certificates) -> None:
        """Mutual TLS: the client certificate and key from the environment are presented."""
        with otlp_server(tls=server_tls_context(certs, require_client_cert=True)) as srv:
            env: dict[str, Any] = {"OTEL_EXPORTER_OTLP_CERTIFICATE": certs.ca}
            without = send(config(srv.url, **env))
            env |= {
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certs.client_cert,
                "OTEL_EXPORTER_OTLP_CLIENT_KEY": certs.client_key,
            }
            with_cert = send(config(srv.url, **env))
            assert len(srv.requests) == 1
        assert without.outcome is Outcome.RETRY
        assert with_cert.outcome is Outcome.SUCCESS
