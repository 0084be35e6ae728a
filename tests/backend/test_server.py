"""The OTLP/HTTP receiver, report API and pages over a real socket on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import socket
import sqlite3
import threading
from pathlib import Path

from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otel_expansion.backend.ingest import BATCH_ID_ATTRIBUTE, MAX_BODY_BYTES
from otel_expansion.otlp.model import BATCH_ID_HEADER

from .conftest import (
    LINUX,
    REMOTE_ADD,
    LiveServer,
    known_data,
    logs_request,
    metrics_request,
    ns,
    span,
    sum_metric,
    traces_request,
)


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0] or 0)
    finally:
        conn.close()


def invocations(value: int = 3) -> metrics_service_pb2.ExportMetricsServiceRequest:
    return metrics_request((LINUX, [sum_metric("cli.command.invocations", [(REMOTE_ADD, value, ns(1))])]))


class TestExport:
    def test_traces_protobuf_gzip(self, live_server: LiveServer) -> None:
        """gzip protobuf traces: 200 with a protobuf ExportTraceServiceResponse, spans stored."""
        request = traces_request((LINUX, [span("gitx remote add", REMOTE_ADD, ns(1), ns(1) + 10, 1, 2)]))
        response = live_server.post("traces", request, gzip_body=True)
        assert response.status == 200
        assert response.headers["content-type"] == "application/x-protobuf"
        parsed = trace_service_pb2.ExportTraceServiceResponse.FromString(response.body)
        assert not parsed.HasField("partial_success")
        assert count(live_server.db_path, "SELECT COUNT(*) FROM spans WHERE command = 'remote add'") == 1

    def test_metrics_json_identity(self, live_server: LiveServer) -> None:
        """OTLP/JSON metrics: 200 with a JSON response body, point stored with its value."""
        body = json.dumps(
            {
                "resourceMetrics": [
                    {
                        "resource": {
                            "attributes": [{"key": "service.name", "value": {"stringValue": "gitx"}}]
                        },
                        "scopeMetrics": [
                            {
                                "metrics": [
                                    {
                                        "name": "cli.command.invocations",
                                        "unit": "{invocation}",
                                        "sum": {
                                            "aggregationTemporality": 1,
                                            "isMonotonic": True,
                                            "dataPoints": [
                                                {
                                                    "attributes": [
                                                        {
                                                            "key": "cli.command.name",
                                                            "value": {"stringValue": "status"},
                                                        }
                                                    ],
                                                    "startTimeUnixNano": "1",
                                                    "timeUnixNano": "2",
                                                    "asInt": "7",
                                                }
                                            ],
                                        },
                                    }
                                ]
                            }
                        ],
                    }
                ]
            }
        ).encode()
        response = live_server.request("POST", "/v1/metrics", body, {"Content-Type": "application/json"})
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert json.loads(response.body) == {}
        assert (
            count(live_server.db_path, "SELECT SUM(value) FROM metric_points WHERE command = 'status'") == 7
        )

    def test_json_gzip_logs(self, live_server: LiveServer) -> None:
        """gzip-compressed OTLP/JSON logs are accepted and stored."""
        body = json.dumps(
            {
                "resourceLogs": [
                    {
                        "scopeLogs": [
                            {
                                "logRecords": [
                                    {
                                        "timeUnixNano": "5",
                                        "body": {"stringValue": "hi"},
                                        "traceId": "00" * 16,
                                        "spanId": "ab" * 8,
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        )
        response = live_server.request(
            "POST",
            "/v1/logs",
            gzip.compress(body.encode()),
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert response.status == 200
        assert count(live_server.db_path, "SELECT COUNT(*) FROM logs WHERE span_id = 'abababababababab'") == 1

    def test_logs_protobuf(self, live_server: LiveServer) -> None:
        """Protobuf logs answer with an ExportLogsServiceResponse and are stored."""
        response = live_server.post("logs", logs_request(LINUX, ["a", "b"], ns(1)))
        assert response.status == 200
        logs_service_pb2.ExportLogsServiceResponse.FromString(response.body)
        assert count(live_server.db_path, "SELECT COUNT(*) FROM logs") == 2

    def test_chunked_body_and_keep_alive(self, live_server: LiveServer) -> None:
        """A chunked body is read, and the connection serves a second request afterwards."""
        conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
        try:
            data = invocations(2).SerializeToString()
            conn.request(
                "POST",
                "/v1/metrics",
                body=iter([data[:10], data[10:]]),
                encode_chunked=True,
                headers={"Content-Type": "application/x-protobuf", "Transfer-Encoding": "chunked"},
            )
            first = conn.getresponse()
            first.read()
            conn.request(
                "POST",
                "/v1/metrics",
                body=invocations(5).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            second = conn.getresponse()
            second.read()
        finally:
            conn.close()
        assert (first.status, second.status) == (200, 200)
        assert count(live_server.db_path, "SELECT SUM(value) FROM metric_points") == 7


class TestDuplicates:
    def test_same_header_twice(self, live_server: LiveServer) -> None:
        """The same batch header sent twice: both answered 200, data stored once."""
        for _ in range(2):
            assert (
                live_server.post(
                    "metrics", invocations(), headers={BATCH_ID_HEADER: "batch-1:metrics"}
                ).status
                == 200
            )
        assert count(live_server.db_path, "SELECT SUM(value) FROM metric_points") == 3

    def test_resource_attribute_through_other_request(self, live_server: LiveServer) -> None:
        """The same batch resource attribute via a request without the header (a collector) is dropped."""
        tagged = metrics_request(
            (
                {**LINUX, BATCH_ID_ATTRIBUTE: "batch-2"},
                [sum_metric("cli.command.invocations", [(REMOTE_ADD, 3, ns(1))])],
            )
        )
        assert live_server.post("metrics", tagged, headers={BATCH_ID_HEADER: "batch-2:metrics"}).status == 200
        assert live_server.post("metrics", tagged, gzip_body=True).status == 200
        assert count(live_server.db_path, "SELECT SUM(value) FROM metric_points") == 3
        assert (
            count(
                live_server.db_path,
                f"SELECT COUNT(*) FROM resources WHERE attributes LIKE '%{BATCH_ID_ATTRIBUTE}%'",
            )
            == 0
        )

    def test_concurrent_copies_stored_once(self, live_server: LiveServer) -> None:
        """Eight simultaneous copies of one batch: exactly one is stored."""
        statuses: list[int] = []

        def send() -> None:
            statuses.append(
                live_server.post("metrics", invocations(), headers={BATCH_ID_HEADER: "batch-3"}).status
            )

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert statuses == [200] * 8
        assert count(live_server.db_path, "SELECT SUM(value) FROM metric_points") == 3

    def test_untagged_requests_both_stored(self, live_server: LiveServer) -> None:
        """Without batch ids, two identical requests are two stores."""
        live_server.post("metrics", invocations())
        live_server.post("metrics", invocations())
        assert count(live_server.db_path, "SELECT SUM(value) FROM metric_points") == 6


class TestRefusals:
    def test_undecodable_protobuf_is_400_with_status(self, live_server: LiveServer) -> None:
        """Garbage protobuf: 400 with a protobuf google.rpc.Status (INVALID_ARGUMENT)."""
        response = live_server.request(
            "POST", "/v1/traces", b"\xff\xff\xff", {"Content-Type": "application/x-protobuf"}
        )
        assert response.status == 400
        status = status_pb2.Status.FromString(response.body)
        assert status.code == 3
        assert "protobuf" in status.message

    def test_undecodable_json_is_400_with_json_status(self, live_server: LiveServer) -> None:
        """Garbage JSON: 400 with a JSON Status body."""
        response = live_server.request("POST", "/v1/logs", b"{oops", {"Content-Type": "application/json"})
        assert response.status == 400
        assert response.headers["content-type"] == "application/json"
        assert json.loads(response.body)["code"] == 3

    def test_gzip_bomb_is_413(self, live_server: LiveServer) -> None:
        """A small gzip body inflating past the limit is refused with 413; nothing stored."""
        bomb = gzip.compress(bytes(MAX_BODY_BYTES + 2**20), compresslevel=9)
        assert len(bomb) < 2**20
        response = live_server.request(
            "POST",
            "/v1/metrics",
            bomb,
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert response.status == 413
        assert status_pb2.Status.FromString(response.body).code == 8
        assert count(live_server.db_path, "SELECT COUNT(*) FROM metric_points") == 0

    def test_declared_oversize_body_refused_unread(self, live_server: LiveServer) -> None:
        """A Content-Length over the limit gets 413 before the body is sent, then the connection closes."""
        with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1)
            )
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413 ")

    def test_unstorable_value_is_400(self, live_server: LiveServer) -> None:
        """A timestamp beyond SQLite's integer range is refused with 400, not a 500."""
        request = traces_request((LINUX, [span("x", {}, 2**64 - 1, 2**64 - 1, 1, 1)]))
        response = live_server.post("traces", request)
        assert response.status == 400
        assert count(live_server.db_path, "SELECT COUNT(*) FROM spans") == 0

    def test_wrong_content_type_is_415(self, live_server: LiveServer) -> None:
        """text/plain is not OTLP: 415."""
        response = live_server.request("POST", "/v1/metrics", b"hello", {"Content-Type": "text/plain"})
        assert response.status == 415

    def test_unknown_content_encoding_is_415(self, live_server: LiveServer) -> None:
        """A content coding the receiver cannot undo: 415."""
        response = live_server.request(
            "POST", "/v1/metrics", b"x", {"Content-Type": "application/x-protobuf", "Content-Encoding": "br"}
        )
        assert response.status == 415

    def test_unknown_paths(self, live_server: LiveServer) -> None:
        """Unknown paths are 404 for POST and GET; GET on an OTLP path is 405."""
        assert (
            live_server.request(
                "POST", "/v1/profiles", b"", {"Content-Type": "application/x-protobuf"}
            ).status
            == 404
        )
        assert live_server.request("GET", "/nope").status == 404
        response = live_server.request("GET", "/v1/traces")
        assert (response.status, response.headers["allow"]) == (405, "POST")

    def test_storage_failure_is_500_and_server_survives(self, live_server: LiveServer) -> None:
        """When the database cannot be opened the request gets 500, and the server keeps serving."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{live_server.db_path}{suffix}").unlink(missing_ok=True)
        live_server.db_path.mkdir()  # a directory where the database file should be
        try:
            response = live_server.post("metrics", invocations())
            assert response.status == 500
            assert b"internal error" in response.body
            assert live_server.request("GET", "/healthz").status == 200
        finally:
            shutil.rmtree(live_server.db_path)


class TestPages:
    def test_healthz(self, live_server: LiveServer) -> None:
        """GET /healthz answers ok."""
        response = live_server.request("GET", "/healthz")
        assert (response.status, response.body) == (200, b"ok\n")

    def test_dashboard_served_with_csp(self, live_server: LiveServer) -> None:
        """GET / serves the dashboard with a policy that forbids requests to other origins."""
        response = live_server.request("GET", "/")
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/html")
        assert b"/api/report" in response.body
        assert "connect-src 'self'" in response.headers["content-security-policy"]

    def test_report_api(self, live_server: LiveServer) -> None:
        """GET /api/report returns the report of what was ingested; ?since_ns filters it."""
        for signal, message in known_data():
            assert live_server.post(signal, message).status == 200
        report = json.loads(live_server.request("GET", "/api/report").body)
        assert report["totals"]["invocations"] == 150
        assert [c["command"] for c in report["commands"]] == ["remote add", "status"]
        recent = json.loads(live_server.request("GET", f"/api/report?since_ns={ns(3, 0)}").body)
        assert recent["totals"]["invocations"] == 40
        assert json.loads(live_server.request("GET", "/api/report?days=1").body)["totals"]["invocations"] == 0
