"""Decoding, flattening and storing OTLP payloads, without the HTTP layer."""

from __future__ import annotations

import gzip
import json
import sqlite3
import zlib
from pathlib import Path

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from otel_expansion.backend.ingest import (
    BATCH_ID_ATTRIBUTE,
    JSON,
    PROTOBUF,
    PayloadError,
    decode,
    decompress,
    flatten,
    media_type,
)
from otel_expansion.backend.store import Store

from .conftest import (
    CUMULATIVE,
    LINUX,
    REMOTE_ADD_ERR,
    hist_metric,
    logs_request,
    metrics_request,
    ns,
    span,
    sum_metric,
    traces_request,
)

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"

OTLP_JSON_TRACES = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "gitx"}},
                    {"key": "ci.detected", "value": {"boolValue": True}},
                ]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "otel_expansion", "version": "0.1.0"},
                    "spans": [
                        {
                            "traceId": TRACE_HEX,
                            "spanId": SPAN_HEX,
                            "parentSpanId": PARENT_HEX,
                            "name": "gitx remote add",
                            "kind": 1,
                            "startTimeUnixNano": "1714564800000000000",
                            "endTimeUnixNano": "1714564800250000000",
                            "attributes": [
                                {"key": "cli.command.name", "value": {"stringValue": "remote add"}},
                                {"key": "cli.command.outcome", "value": {"stringValue": "error"}},
                                {"key": "error.type", "value": {"stringValue": "ConnectionError"}},
                                {"key": "process.exit.code", "value": {"intValue": "1"}},
                                {"key": "session.id", "value": {"stringValue": "s-1"}},
                                {"key": "traceId", "value": {"stringValue": "an attribute, not an id"}},
                            ],
                            "status": {"code": 2, "message": "boom"},
                            "someFutureField": {"ignored": True},
                        }
                    ],
                }
            ],
        }
    ],
}


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


class TestMediaType:
    def test_known_types_with_parameters(self) -> None:
        """Content-Type parameters and case do not matter; both OTLP encodings are recognised."""
        assert media_type("application/x-protobuf") == PROTOBUF
        assert media_type("Application/JSON; charset=utf-8") == JSON

    def test_unknown_types(self) -> None:
        """Anything else (or nothing) is not an OTLP encoding."""
        assert media_type("text/plain") is None
        assert media_type(None) is None


class TestDecompress:
    def test_identity_and_gzip(self) -> None:
        """identity passes through; gzip (also as several concatenated members) is inflated."""
        assert decompress(b"abc", None) == b"abc"
        assert decompress(b"abc", "identity") == b"abc"
        assert decompress(gzip.compress(b"hello " * 100), "gzip") == b"hello " * 100
        assert decompress(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip") == b"abcd"

    def test_deflate(self) -> None:
        """HTTP deflate (zlib-wrapped) is accepted too."""
        assert decompress(zlib.compress(b"xyz" * 50), "deflate") == b"xyz" * 50

    def test_gzip_bomb_stops_at_limit(self) -> None:
        """Inflating stops once the cap is passed: a bomb is refused with 413, not inflated in full."""
        bomb = gzip.compress(bytes(8 * 2**20))
        with pytest.raises(PayloadError) as caught:
            decompress(bomb, "gzip", limit=2**20)
        assert caught.value.status == 413

    def test_identity_over_limit(self) -> None:
        """An uncompressed body over the cap is refused with 413 too."""
        with pytest.raises(PayloadError) as caught:
            decompress(bytes(11), "identity", limit=10)
        assert caught.value.status == 413

    def test_corrupt_and_truncated_gzip(self) -> None:
        """Corrupt or truncated gzip is the client's fault: 400."""
        for body in (b"not gzip at all", gzip.compress(b"x" * 1000)[:-12]):
            with pytest.raises(PayloadError) as caught:
                decompress(body, "gzip")
            assert caught.value.status == 400

    def test_unknown_encoding(self) -> None:
        """A content coding we cannot undo is 415 Unsupported Media Type."""
        with pytest.raises(PayloadError) as caught:
            decompress(b"x", "br")
        assert caught.value.status == 415


class TestDecode:
    def test_protobuf_round_trip(self) -> None:
        """A serialized request decodes to an equal message."""
        request = traces_request((LINUX, [span("gitx status", {"a": 1}, ns(1), ns(1) + 5, 7, 9)]))
        assert decode("traces", request.SerializeToString(), PROTOBUF) == request

    def test_otlp_json_hex_ids_and_camel_case(self) -> None:
        """OTLP/JSON: lowerCamelCase fields, hex ids, string int64s, unknown fields ignored."""
        message = decode("traces", json.dumps(OTLP_JSON_TRACES).encode(), JSON)
        parsed = message.resource_spans[0].scope_spans[0].spans[0]
        assert parsed.trace_id.hex() == TRACE_HEX
        assert parsed.span_id.hex() == SPAN_HEX
        assert parsed.parent_span_id.hex() == PARENT_HEX
        assert parsed.start_time_unix_nano == 1714564800000000000
        assert parsed.attributes[5].value.string_value == "an attribute, not an id"

    def test_empty_body_is_an_empty_request(self) -> None:
        """An empty body is a valid, empty export."""
        assert len(decode("metrics", b"", PROTOBUF).resource_metrics) == 0
        assert len(decode("logs", b"", JSON).resource_logs) == 0

    @pytest.mark.parametrize(
        ("body", "encoding"),
        [
            (b"\xff\xff\xff", PROTOBUF),
            (b"{not json", JSON),
            (b"[1, 2]", JSON),
            (
                json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).encode(),
                JSON,
            ),
            (json.dumps({"resourceSpans": "nope"}).encode(), JSON),
        ],
    )
    def test_undecodable_is_400(self, body: bytes, encoding: str) -> None:
        """Malformed protobuf, malformed JSON, non-hex ids and wrong shapes all raise PayloadError(400)."""
        with pytest.raises(PayloadError) as caught:
            decode("traces", body, encoding)
        assert caught.value.status == 400


class TestFlatten:
    def test_bucket_counts_text_is_the_json_of_the_list(self) -> None:
        """The counts' text written without the encoder is json.dumps' compact text for every kind of list:
        empty, single digits (the fast path), two digits, above a byte, up to uint64's maximum."""
        import random

        from otel_expansion.backend.ingest import _int_list

        rng = random.Random(4)
        for _ in range(5000):
            counts = [rng.choice((0, 0, 0, 1, 2, 9, 10, 11, 255, 256, 300, 2**40, 2**64 - 1))
                      for _ in range(rng.randint(0, 40))]
            assert _int_list(counts) == json.dumps(counts, separators=(",", ":"))

    def test_span_columns(self) -> None:
        """Span rows carry hex ids, duration and the extracted command/outcome/error/session/exit columns."""
        message = decode("traces", json.dumps(OTLP_JSON_TRACES).encode(), JSON)
        [resource] = flatten("traces", message)
        assert resource.attributes == {"service.name": "gitx", "ci.detected": True}
        [row] = resource.spans
        assert (row.trace_id, row.span_id, row.parent_span_id) == (TRACE_HEX, SPAN_HEX, PARENT_HEX)
        assert row.duration_ns == 250_000_000
        assert (row.command, row.outcome, row.error_type, row.session_id, row.exit_code) == (
            "remote add",
            "error",
            "ConnectionError",
            "s-1",
            1,
        )
        assert (row.status_code, row.status_message) == (2, "boom")
        assert json.loads(row.attributes)["process.exit.code"] == 1

    def test_metric_kinds(self) -> None:
        """Sums, histograms and gauges become points with kind, temporality, bounds and bucket counts."""
        gauge = metrics_pb2.Metric(
            name="g",
            gauge=metrics_pb2.Gauge(
                data_points=[
                    metrics_pb2.NumberDataPoint(time_unix_nano=5, as_double=2.5),
                    metrics_pb2.NumberDataPoint(
                        time_unix_nano=6, as_double=9.0, flags=1
                    ),  # no recorded value
                ]
            ),
        )
        request = metrics_request(
            (
                LINUX,
                [
                    sum_metric("cli.command.invocations", [(REMOTE_ADD_ERR, 3, ns(1))], unit="{invocation}"),
                    hist_metric(
                        "cli.command.duration",
                        [0.1, 1.0],
                        [(REMOTE_ADD_ERR, [1, 2, 0], 1.3, 0.05, 0.9, ns(1))],
                        temporality=CUMULATIVE,
                    ),
                    gauge,
                ],
            )
        )
        [resource] = flatten("metrics", request)
        by_name = {p.name: p for p in resource.points}
        assert len(resource.points) == 3
        total = by_name["cli.command.invocations"]
        assert (total.kind, total.temporality, total.monotonic, total.value, total.unit) == (
            "sum",
            "delta",
            1,
            3.0,
            "{invocation}",
        )
        assert (total.command, total.outcome, total.error_type) == ("remote add", "error", "ConnectionError")
        hist = by_name["cli.command.duration"]
        assert (hist.kind, hist.temporality, hist.samples, hist.sum, hist.min, hist.max) == (
            "histogram",
            "cumulative",
            3,
            1.3,
            0.05,
            0.9,
        )
        assert (json.loads(hist.bounds or ""), json.loads(hist.bucket_counts or "")) == (
            [0.1, 1.0],
            [1, 2, 0],
        )
        assert (by_name["g"].kind, by_name["g"].temporality, by_name["g"].value) == ("gauge", None, 2.5)

    def test_logs(self) -> None:
        """Log records keep body, severity, attributes and hex trace context."""
        [resource] = flatten("logs", logs_request(LINUX, ["first", "second"], ns(2)))
        assert [json.loads(r.body) for r in resource.logs] == ["first", "second"]
        assert resource.logs[0].severity_text == "WARN"
        assert resource.logs[0].trace_id == bytes(range(16)).hex()

    def test_batch_attribute_is_lifted_out(self) -> None:
        """The batch id attribute becomes ResourceData.batch_id and is removed from the attributes."""
        request = metrics_request(({**LINUX, BATCH_ID_ATTRIBUTE: "b-1"}, [sum_metric("m", [({}, 1, ns(1))])]))
        [resource] = flatten("metrics", request)
        assert resource.batch_id == "b-1"
        assert BATCH_ID_ATTRIBUTE not in resource.attributes
        assert resource.attributes["service.name"] == "gitx"

    def test_identical_copy_in_one_request_dropped(self) -> None:
        """A collector batching an SDK retry with its original: the byte-identical copy is dropped."""
        entry = ({**LINUX, BATCH_ID_ATTRIBUTE: "b-1"}, [sum_metric("m", [({}, 1, ns(1))])])
        other = ({**LINUX, BATCH_ID_ATTRIBUTE: "b-1"}, [sum_metric("m", [({}, 2, ns(1))])])
        assert len(flatten("metrics", metrics_request(entry, entry, other))) == 2


class TestStore:
    def test_round_trip_all_signals(self, tmp_path: Path) -> None:
        """Spans, points and logs land in their tables; one resource row for the shared resource."""
        db = tmp_path / "s.sqlite"
        with Store(db) as store:
            store.write(
                "traces", flatten("traces", decode("traces", json.dumps(OTLP_JSON_TRACES).encode(), JSON))
            )
            store.write(
                "metrics", flatten("metrics", metrics_request((LINUX, [sum_metric("m", [({}, 4, ns(1))])])))
            )
            store.write("logs", flatten("logs", logs_request(LINUX, ["hello"], ns(1))))
            store.write("logs", flatten("logs", logs_request(LINUX, ["again"], ns(1))))
        assert rows(db, "SELECT command, outcome, error_type, session_id, exit_code FROM spans") == [
            ("remote add", "error", "ConnectionError", "s-1", 1)
        ]
        assert rows(db, "SELECT name, kind, value FROM metric_points") == [("m", "sum", 4.0)]
        assert rows(db, "SELECT body FROM logs ORDER BY id") == [('"hello"',), ('"again"',)]
        assert rows(db, "SELECT COUNT(*), COUNT(DISTINCT installation_id) FROM resources") == [(2, 1)]

    def test_same_header_batch_stored_once(self, tmp_path: Path) -> None:
        """A retried request with the same batch id header is dropped entirely."""
        resources = flatten("metrics", metrics_request((LINUX, [sum_metric("m", [({}, 4, ns(1))])])))
        with Store(tmp_path / "s.sqlite") as store:
            first = store.write("metrics", resources, "hdr-1")
            second = store.write("metrics", resources, "hdr-1")
        assert (first.points, second.points, second.duplicates) == (1, 0, 1)
        assert rows(tmp_path / "s.sqlite", "SELECT SUM(value) FROM metric_points") == [(4.0,)]

    def test_same_resource_batch_through_other_request(self, tmp_path: Path) -> None:
        """The same resource batch id arriving again (no header, as via a collector) is dropped."""
        tagged = ({**LINUX, BATCH_ID_ATTRIBUTE: "b-7"}, [sum_metric("m", [({}, 4, ns(1))])])
        fresh = (LINUX, [sum_metric("m", [({}, 1, ns(1))])])
        with Store(tmp_path / "s.sqlite") as store:
            store.write("metrics", flatten("metrics", metrics_request(tagged)), "hdr-1")
            result = store.write("metrics", flatten("metrics", metrics_request(tagged, fresh)), None)
        assert (result.resources, result.duplicates) == (1, 1)
        assert rows(tmp_path / "s.sqlite", "SELECT SUM(value) FROM metric_points") == [(5.0,)]
        stored = rows(tmp_path / "s.sqlite", "SELECT attributes FROM resources")
        assert all(BATCH_ID_ATTRIBUTE not in json.loads(str(a)) for (a,) in stored)

    def test_batch_split_by_a_collector_is_stored_whole(self, tmp_path: Path) -> None:
        """Parts of one batch that a collector split into two requests are both kept."""
        part1 = ({**LINUX, BATCH_ID_ATTRIBUTE: "b-3"}, [sum_metric("m", [({"k": "a"}, 1, ns(1))])])
        part2 = ({**LINUX, BATCH_ID_ATTRIBUTE: "b-3"}, [sum_metric("m", [({"k": "b"}, 2, ns(1))])])
        with Store(tmp_path / "s.sqlite") as store:
            store.write("metrics", flatten("metrics", metrics_request(part1)))
            second = store.write("metrics", flatten("metrics", metrics_request(part2)))
            again = store.write("metrics", flatten("metrics", metrics_request(part2)))
        assert (second.points, again.points, again.duplicates) == (1, 0, 1)
        assert rows(tmp_path / "s.sqlite", "SELECT SUM(value) FROM metric_points") == [(3.0,)]

    def test_batch_id_is_per_signal(self, tmp_path: Path) -> None:
        """The same batch id on another signal is not a duplicate."""
        tagged = {**LINUX, BATCH_ID_ATTRIBUTE: "b-9"}
        with Store(tmp_path / "s.sqlite") as store:
            store.write(
                "metrics", flatten("metrics", metrics_request((tagged, [sum_metric("m", [({}, 1, ns(1))])])))
            )
            result = store.write("logs", flatten("logs", logs_request(tagged, ["x"], ns(1))))
        assert result.logs == 1

    def test_resources_sharing_a_batch_id_in_one_request(self, tmp_path: Path) -> None:
        """Several resources of one fresh batch are all stored (the check runs before marking)."""
        a = ({**LINUX, BATCH_ID_ATTRIBUTE: "b-2"}, [sum_metric("m", [({}, 1, ns(1))])])
        b = (
            {**LINUX, "service.version": "9", BATCH_ID_ATTRIBUTE: "b-2"},
            [sum_metric("m", [({}, 2, ns(1))])],
        )
        with Store(tmp_path / "s.sqlite") as store:
            result = store.write("metrics", flatten("metrics", metrics_request(a, b)))
        assert (result.resources, result.points) == (2, 2)

    def test_untagged_data_stored_as_is(self, tmp_path: Path) -> None:
        """Without any batch id nothing is deduplicated: the same metrics twice are stored twice."""
        resources = flatten("metrics", metrics_request((LINUX, [sum_metric("m", [({}, 4, ns(1))])])))
        with Store(tmp_path / "s.sqlite") as store:
            store.write("metrics", resources)
            store.write("metrics", resources)
        assert rows(tmp_path / "s.sqlite", "SELECT COUNT(*) FROM metric_points") == [(2,)]

    def test_empty_request_does_not_claim_batch(self, tmp_path: Path) -> None:
        """An empty request carrying a batch header does not make the real batch a duplicate."""
        resources = flatten("metrics", metrics_request((LINUX, [sum_metric("m", [({}, 4, ns(1))])])))
        with Store(tmp_path / "s.sqlite") as store:
            store.write("metrics", [], "hdr-5")
            result = store.write("metrics", resources, "hdr-5")
        assert result.points == 1
