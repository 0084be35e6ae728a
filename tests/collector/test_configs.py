"""The collector configs in collector-config/, checked by the real collector binary.

Every config must validate; otelcol.yaml is also run: real OTLP/HTTP protobuf requests go in, a small
recording HTTP server on 127.0.0.1 stands in for the embedded backend, and what reaches it is decoded
and compared with what was sent.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from .conftest import CONFIG_DIR, Collector, CollectorFactory, free_ports

DELIVERY_TIMEOUT_S = 20.0
CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if p.name != "manifest.yaml")
NETWORK_EXPORTERS = ("otlp_http", "clickhouse")
BATCH_ID = "otel_expansion.batch.id"
# Shaped so the card-number rule would mask it if the key were not exempt.
BATCH_ID_VALUE = "b-4111111111111111"
PROTOBUF = "application/x-protobuf"
# In pipeline order: see the privacy section of otelcol.yaml.
PRIVACY_PROCESSORS = ("transform/drop_secret_keys", "transform/redact", "redaction", "transform/restore_names")

Message = Any  # any of the generated OTLP protobuf message classes


# --------------------------------------------------------------------------- recording backend


@dataclass(frozen=True)
class Received:
    """One request the backend got, body already un-gzipped."""

    path: str
    headers: dict[str, str]
    body: bytes


class RecordingBackend:
    """A tiny OTLP/HTTP sink on 127.0.0.1: records every POST and answers 200 with an empty response."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self._changed = threading.Condition()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
                with backend._changed:
                    backend.received.append(Received(self.path, headers, body))
                    backend._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", PROTOBUF)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_until(
        self, done: Callable[[list[Received]], bool], what: str, timeout: float = DELIVERY_TIMEOUT_S
    ) -> list[Received]:
        """All requests so far, once ``done(requests)`` holds; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self.received):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {what} within {timeout} s; received {self.received!r}"
                self._changed.wait(remaining)
            return list(self.received)

    def wait_for(self, path: str, count: int = 1) -> list[Received]:
        """The requests to ``path`` once there are at least ``count``."""
        received = self.wait_until(lambda rs: sum(r.path == path for r in rs) >= count, f"{count} x {path}")
        return [r for r in received if r.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def backend() -> Iterator[RecordingBackend]:
    server = RecordingBackend()
    try:
        yield server
    finally:
        server.close()


# --------------------------------------------------------------------------- OTLP payloads


def attrs(**values: str | int | float | bool) -> list[Message]:
    """OTLP KeyValues; keys spelled with ``__`` stand for dots (``cli__command`` -> ``cli.command``)."""
    return [kv(key.replace("__", "."), value) for key, value in values.items()]


def kv(key: str, value: str | int | float | bool) -> Message:
    if isinstance(value, bool):
        any_value = AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = AnyValue(double_value=value)
    else:
        any_value = AnyValue(string_value=value)
    return KeyValue(key=key, value=any_value)


def as_dict(key_values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in key_values:
        out[item.key] = getattr(item.value, item.value.WhichOneof("value"))
    return out


def resource(*extra: Message) -> Message:
    return Resource(
        attributes=[
            kv("service.name", "hello-cli"),
            kv("service.version", "1.2.3"),
            kv(BATCH_ID, BATCH_ID_VALUE),
            *extra,
        ]
    )


SCOPE = InstrumentationScope(name="otel_expansion", version="0.1.0")
START_NS = 1_732_560_000_000_000_000
END_NS = START_NS + 12_345_678


def trace_request(
    span_attributes: list[Message],
    *,
    name: str = "hello",
    events: tuple[Message, ...] = (),
    resource_attributes: tuple[Message, ...] = (),
) -> Message:
    span = Span(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=START_NS,
        end_time_unix_nano=END_NS,
        attributes=span_attributes,
        status=Status(code=Status.STATUS_CODE_OK),
        events=list(events),
    )
    scope_spans = ScopeSpans(scope=SCOPE, spans=[span])
    resource_spans = ResourceSpans(resource=resource(*resource_attributes), scope_spans=[scope_spans])
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def metrics_request(point_attributes: list[Message]) -> Message:
    delta = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    invocations = Metric(
        name="cli.command.invocations",
        unit="{invocation}",
        sum=Sum(
            aggregation_temporality=delta,
            is_monotonic=True,
            data_points=[
                NumberDataPoint(
                    attributes=point_attributes,
                    start_time_unix_nano=START_NS,
                    time_unix_nano=END_NS,
                    as_int=7,
                )
            ],
        ),
    )
    duration = Metric(
        name="cli.command.duration",
        unit="s",
        histogram=Histogram(
            aggregation_temporality=delta,
            data_points=[
                HistogramDataPoint(
                    attributes=point_attributes,
                    start_time_unix_nano=START_NS,
                    time_unix_nano=END_NS,
                    count=3,
                    sum=0.75,
                    min=0.125,
                    max=0.5,
                    explicit_bounds=[0.1, 0.25, 1.0],
                    bucket_counts=[0, 1, 2, 0],
                )
            ],
        ),
    )
    scope_metrics = ScopeMetrics(scope=SCOPE, metrics=[invocations, duration])
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(resource=resource(), scope_metrics=[scope_metrics])]
    )


def logs_request(body: str) -> Message:
    record = LogRecord(
        time_unix_nano=START_NS,
        observed_time_unix_nano=END_NS,
        severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
        severity_text="INFO",
        body=AnyValue(string_value=body),
        attributes=attrs(cli__command__name="hello"),
    )
    scope_logs = ScopeLogs(scope=SCOPE, log_records=[record])
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource(), scope_logs=[scope_logs])]
    )


def post(url: str, body: bytes, *, encoding: str | None = "gzip") -> int:
    """POST an OTLP/HTTP protobuf body; returns the HTTP status."""
    headers = {"Content-Type": PROTOBUF}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def send(collector_url: str, signal: str, message: Message) -> None:
    status = post(f"{collector_url}/v1/{signal}", gzip.compress(message.SerializeToString()))
    assert status == 200, f"collector answered {status} to /v1/{signal}"


def decode(cls: Callable[[], Message], received: list[Received]) -> Message:
    """All received requests of one signal merged into one message."""
    merged = cls()
    for item in received:
        part = cls()
        part.ParseFromString(item.body)
        merged.MergeFrom(part)
    return merged


# --------------------------------------------------------------------------- configs


def harmless_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPANSION_")}
    env.update(
        {
            "OTEL_EXPANSION_COLLECTOR_STORAGE": str(tmp_path / "storage"),
            "OTEL_EXPANSION_COLLECTOR_FILE_PATH": str(tmp_path / "export.jsonl"),
            "OTEL_EXPANSION_GATEWAY_STORAGE": str(tmp_path / "gateway-storage"),
            "OTEL_EXPANSION_CLICKHOUSE_PASSWORD": "not-a-secret",
        }
    )
    return env


def resolved(collector: CollectorFactory, config: Path, tmp_path: Path) -> dict[str, Any]:
    """The config as the collector resolves it (env substituted, defaults filled in)."""
    done = subprocess.run(
        [
            str(collector.binary),
            "print-config",
            "--mode=unredacted",
            "--format=json",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=harmless_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates(collector: CollectorFactory, config: Path, tmp_path: Path) -> None:
    """Each shipped config passes `otelcol validate` (schema, regexes, OTTL, pipeline graph)."""
    done = subprocess.run(
        [str(collector.binary), "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        env=harmless_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{config.name}: {done.stdout}{done.stderr}"
    assert not (tmp_path / "storage").exists(), "validate must not create the queue directory"


def test_expected_configs_are_shipped() -> None:
    """The three topologies' configs exist, so the parametrized validation cannot pass on an empty list."""
    assert {p.name for p in CONFIGS} >= {"otelcol.yaml", "gateway-clickhouse.yaml", "edge-to-gateway.yaml"}


def test_validate_script_reports_each_config(collector: CollectorFactory) -> None:
    """validate.sh exits 0 and prints one ok line per config, manifest.yaml excluded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPANSION_")}
    done = subprocess.run(
        [str(CONFIG_DIR / "validate.sh")], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"ok   {p.name}" for p in CONFIGS]


def test_validate_script_fails_on_a_broken_config(collector: CollectorFactory, tmp_path: Path) -> None:
    """validate.sh exits non-zero and names the config when one of them is invalid."""
    folder = tmp_path / "collector-config"
    folder.mkdir()
    for name in ("build.sh", "manifest.yaml", "validate.sh", "otelcol.yaml"):
        shutil.copy2(CONFIG_DIR / name, folder / name)
    broken = (
        (CONFIG_DIR / "otelcol.yaml")
        .read_text()
        .replace("check_interval: 1s", "check_interval: 1s\n    bogus: 1")
    )
    (folder / "broken.yaml").write_text(broken)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPANSION_")}
    done = subprocess.run(
        [str(folder / "validate.sh")], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode != 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("FAIL broken.yaml:") and "bogus" in lines[0]
    assert lines[1] == "ok   otelcol.yaml"


def test_configs_share_the_privacy_rules(collector: CollectorFactory, tmp_path: Path) -> None:
    """The edge and the gateway apply exactly the privacy processors of otelcol.yaml, in the same order."""
    reference = resolved(collector, CONFIG_DIR / "otelcol.yaml", tmp_path)["processors"]
    for name in ("edge-to-gateway.yaml", "gateway-clickhouse.yaml"):
        processors = resolved(collector, CONFIG_DIR / name, tmp_path)["processors"]
        for processor in PRIVACY_PROCESSORS:
            assert processors[processor] == reference[processor], f"{name}: {processor} differs"
        pipelines = resolved(collector, CONFIG_DIR / name, tmp_path)["service"]["pipelines"]
        for signal, pipeline in pipelines.items():
            privacy = [p for p in pipeline["processors"] if p in PRIVACY_PROCESSORS]
            assert privacy == list(PRIVACY_PROCESSORS), f"{name}: {signal} runs {privacy}"


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_pipelines_limit_memory_redact_and_persist(
    collector: CollectorFactory, config: Path, tmp_path: Path
) -> None:
    """Every pipeline starts with memory_limiter, redacts, and queues network exports on disk."""
    cfg = resolved(collector, config, tmp_path)
    pipelines = cfg["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == "memory_limiter", name
        assert "redaction" in pipeline["processors"], name
        network = [e for e in pipeline["exporters"] if e.split("/")[0] in NETWORK_EXPORTERS]
        assert network, f"{name} exports nowhere"
        for exporter in network:
            queue = cfg["exporters"][exporter]["sending_queue"]
            assert queue["storage"] == "file_storage", exporter
            assert queue["batch"]["min_size"] > 0, exporter
    assert "file_storage" in cfg["service"]["extensions"] and "health_check" in cfg["service"]["extensions"]


# --------------------------------------------------------------------------- running otelcol.yaml


def test_forwards_otlp_http_protobuf_intact(collector: CollectorFactory, backend: RecordingBackend) -> None:
    """Traces, metrics and logs sent gzip-compressed reach the backend unchanged, as gzip protobuf."""
    running = collector.start(backend.url)
    traces = trace_request(
        attrs(cli__command__name="hello", process__exit__code=0, cli__command__cpu_time=0.25)
    )
    metrics = metrics_request(attrs(cli__command__name="hello", cli__command__outcome="success"))
    logs = logs_request("hello finished")
    send(running.otlp_http_url, "traces", traces)
    send(running.otlp_http_url, "metrics", metrics)
    send(running.otlp_http_url, "logs", logs)

    got_traces = backend.wait_for("/v1/traces")
    got_metrics = backend.wait_for("/v1/metrics")
    got_logs = backend.wait_for("/v1/logs")
    assert decode(ExportTraceServiceRequest, got_traces) == traces
    assert decode(ExportMetricsServiceRequest, got_metrics) == metrics
    assert decode(ExportLogsServiceRequest, got_logs) == logs
    for item in got_traces + got_metrics + got_logs:
        assert item.headers["content-type"] == PROTOBUF
        assert item.headers["content-encoding"] == "gzip"


def test_refuses_compression_it_does_not_accept(
    collector: CollectorFactory, backend: RecordingBackend
) -> None:
    """Only identity and gzip bodies are accepted; other encodings get 400 and are not forwarded."""
    running = collector.start(backend.url)
    body = trace_request(attrs(cli__command__name="hello")).SerializeToString()
    assert post(f"{running.otlp_http_url}/v1/traces", body, encoding="zstd") == 400
    assert post(f"{running.otlp_http_url}/v1/traces", body, encoding=None) == 200
    assert len(backend.wait_for("/v1/traces")) == 1


GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2  # 40 characters after the prefix
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
MASKED = {
    "note": ("mail alice@example.com please", "mail **** please"),
    "vcs.auth": (f"token {GITHUB_TOKEN}", "token ****"),
    "vcs.fine_grained": ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "****"),
    "net.peer": ("connect 10.20.30.40:443", "connect ****:443"),
    "aws.key": ("AKIAIOSFODNN7EXAMPLE", "****"),
    "slack.bot": ("xoxb-123456789012-abcdefghijklmnop", "****"),
    "slack.hook": ("https://hooks.slack.com/services/T000/B000/XXXXXXXX", "****"),
    "auth.jwt": (JWT, "****"),
    "http.auth_value": ("Bearer abcdef0123456789", "Bearer <token>"),  # the scheme stays, as in the SDK
    "card.visa": ("4111 1111 1111 1111", "****"),
    "card.mastercard": ("5500-0000-0000-0004", "****"),
    "card.amex": ("378282246310005", "****"),
}
UNTOUCHED = {
    "cli.command.name": "deploy",
    "cli.command.args": "--dry-run --count 3",
    "process.runtime.version": "3.11.4",
    "time.unix_nano": "1732560000000000000",
    "session.id": "4111-1111-1111-1111",  # an id: exempt even though it is card-shaped
}
DROPPED = (
    "db.password",
    "user.passwd",
    "http.request.header.authorization",
    "service.api_key",
    "CLIENT_SECRET",
)


def test_redacts_secrets_but_keeps_ids(collector: CollectorFactory, backend: RecordingBackend) -> None:
    """Secrets in values are masked, secret-named keys dropped; the batch id and ids pass untouched."""
    running = collector.start(backend.url)
    span_attributes = [kv(k, v) for k, (v, _) in MASKED.items()]
    span_attributes += [kv(k, v) for k, v in UNTOUCHED.items()]
    span_attributes += [kv(k, "hunter2") for k in DROPPED]
    event = Span.Event(
        time_unix_nano=START_NS + 1,
        name="retry",
        attributes=attrs(user__password="x", note="to bob@example.org"),
    )
    sent = trace_request(span_attributes, events=(event,), resource_attributes=(kv("deploy.secret", "x"),))
    send(running.otlp_http_url, "traces", sent)
    send(running.otlp_http_url, "metrics", metrics_request(attrs(user="bob@example.org")))
    send(running.otlp_http_url, "logs", logs_request("login by alice@example.com from 192.168.1.20"))

    traces = decode(ExportTraceServiceRequest, backend.wait_for("/v1/traces"))
    resource_spans = traces.resource_spans[0]
    span = resource_spans.scope_spans[0].spans[0]
    assert as_dict(span.attributes) == {k: masked for k, (_, masked) in MASKED.items()} | UNTOUCHED
    assert as_dict(span.events[0].attributes) == {"note": "to ****"}
    assert as_dict(resource_spans.resource.attributes) == as_dict(resource().attributes)
    original = sent.resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id, span.span_id, span.name) == (original.trace_id, original.span_id, original.name)

    metrics = decode(ExportMetricsServiceRequest, backend.wait_for("/v1/metrics"))
    resource_metrics = metrics.resource_metrics[0]
    assert as_dict(resource_metrics.resource.attributes)[BATCH_ID] == BATCH_ID_VALUE
    for metric in resource_metrics.scope_metrics[0].metrics:
        point = (metric.sum if metric.HasField("sum") else metric.histogram).data_points[0]
        assert as_dict(point.attributes) == {"user": "****"}, metric.name

    logs = decode(ExportLogsServiceRequest, backend.wait_for("/v1/logs"))
    assert logs.resource_logs[0].scope_logs[0].log_records[0].body.string_value == "login by **** from ****"
    assert as_dict(logs.resource_logs[0].resource.attributes)[BATCH_ID] == BATCH_ID_VALUE


def test_persistent_queue_survives_outage_and_restart(collector: CollectorFactory, tmp_path: Path) -> None:
    """Data accepted while the backend is down is kept on disk, across a restart, and delivered later."""
    (port,) = free_ports(1)
    backend_url = f"http://127.0.0.1:{port}"  # nothing listens here yet
    storage = tmp_path / "queue"
    before_restart = trace_request(attrs(cli__command__name="first"), name="before-restart")
    after_restart = trace_request(attrs(cli__command__name="second"), name="after-restart")

    first = collector.start(backend_url, storage_dir=storage)
    send(first.otlp_http_url, "traces", before_restart)
    wait_for_log(first, "connection refused")
    first.stop()
    assert any(storage.iterdir()), "the persistent queue's files are missing"

    second = collector.start(backend_url, storage_dir=storage)
    send(second.otlp_http_url, "traces", after_restart)
    wait_for_log(second, "connection refused")
    backend = RecordingBackend(port)
    try:
        received = backend.wait_until(
            lambda rs: len(span_names(rs)) >= 2, "both spans", timeout=DELIVERY_TIMEOUT_S
        )
    finally:
        backend.close()
    assert sorted(span_names(received)) == ["after-restart", "before-restart"]
    second.stop()


def span_names(received: list[Received]) -> list[str]:
    traces = decode(ExportTraceServiceRequest, [r for r in received if r.path == "/v1/traces"])
    return [span.name for rs in traces.resource_spans for ss in rs.scope_spans for span in ss.spans]


def wait_for_log(collector: Collector, text: str) -> None:
    """Wait (bounded) until the collector's log mentions ``text``."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while text not in collector.log():
        assert time.monotonic() < deadline, f"the collector never logged {text!r}"
        time.sleep(0.05)


def test_forwards_otlp_grpc_from_the_stock_sdk(
    collector: CollectorFactory, backend: RecordingBackend
) -> None:
    """The gRPC receiver takes a gzip export from the stock OTel SDK exporter and forwards it."""
    from grpc import Compression  # type: ignore[import-untyped]
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    running = collector.start(backend.url)
    exporter = OTLPSpanExporter(
        endpoint=f"http://{running.otlp_grpc_endpoint}",
        insecure=True,
        compression=Compression.Gzip,
        timeout=10,
    )
    provider = TracerProvider(resource=SdkResource.create({"service.name": "grpc-cli"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("otel_expansion").start_as_current_span("via-grpc") as span:
        span.set_attribute("cli.command.name", "hello")
    provider.shutdown()

    traces = decode(ExportTraceServiceRequest, backend.wait_for("/v1/traces"))
    (forwarded,) = [s for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert forwarded.name == "via-grpc"
    assert forwarded.span_id == span.get_span_context().span_id.to_bytes(8, "big")
    assert as_dict(forwarded.attributes) == {"cli.command.name": "hello"}


def test_file_exporter_is_opt_in_by_environment(
    collector: CollectorFactory, backend: RecordingBackend, tmp_path: Path
) -> None:
    """OTEL_EXPANSION_COLLECTOR_EXPORTERS adds the file exporter: a redacted OTLP/JSON copy on disk."""
    path = tmp_path / "copy" / "export.jsonl"
    running = collector.start(
        backend.url,
        env={
            "OTEL_EXPANSION_COLLECTOR_EXPORTERS": "[otlp_http, debug, file]",
            "OTEL_EXPANSION_COLLECTOR_FILE_PATH": str(path),
        },
    )
    send(running.otlp_http_url, "traces", trace_request(attrs(note="from carol@example.com"), name="to-file"))
    backend.wait_for("/v1/traces")
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.05)
    (line,) = path.read_text().splitlines()
    span = json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["name"] == "to-file"
    assert span["attributes"] == [{"key": "note", "value": {"stringValue": "from ****"}}]
