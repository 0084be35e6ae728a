"""Report numbers on a known data set, percentile estimation and cumulative handling."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.report import Histogram, build_report, render_report
from otel_expansion.backend.store import Store

from .conftest import CUMULATIVE, LINUX, REMOTE_ADD, hist_metric, known_data, metrics_request, ns, sum_metric


def load(db: Path, items: list[tuple[str, Any]]) -> None:
    with Store(db) as store:
        for signal, message in items:
            store.write(signal, flatten(signal, message))


@pytest.fixture
def report(tmp_path: Path) -> dict[str, Any]:
    load(tmp_path / "r.sqlite", known_data())
    return build_report(tmp_path / "r.sqlite")


class TestHistogram:
    def test_linear_interpolation_in_bucket(self) -> None:
        """p50/p95 interpolate linearly inside the bucket holding the rank."""
        h = Histogram()
        h.add([0.1, 0.5, 1.0, 5.0], [0, 10, 10, 0, 0], 20, 12.0, 0.11, 0.99)
        assert h.quantile(0.5) == pytest.approx(0.5)
        assert h.quantile(0.95) == pytest.approx(0.95)
        assert h.quantile(0.25) == pytest.approx(0.3)

    def test_open_buckets_use_min_and_max(self) -> None:
        """The first bucket starts at the observed min, the overflow bucket ends at the observed max."""
        low = Histogram()
        low.add([1.0], [4, 0], 4, 2.0, 0.2, 0.9)
        assert low.quantile(0.5) == pytest.approx(0.2 + 0.8 * 0.5)
        high = Histogram()
        high.add([1.0], [0, 4], 4, 20.0, 2.0, 10.0)
        assert high.quantile(0.5) == pytest.approx(1.0 + 9.0 * 0.5)

    def test_estimate_clamped_to_max(self) -> None:
        """An estimate beyond the observed max is clamped to it."""
        h = Histogram()
        h.add([0.5, 1.0], [0, 10, 0], 10, 6.0, 0.55, 0.7)
        assert h.quantile(0.95) == pytest.approx(0.7)

    def test_merges_points_and_layouts(self) -> None:
        """Points with one layout sum bucket-wise; a different layout still merges by spreading counts."""
        same = Histogram()
        same.add([1.0, 2.0], [0, 5, 0], 5, 7.5, 1.1, 1.9)
        same.add([1.0, 2.0], [0, 5, 0], 5, 7.5, 1.2, 1.8)
        assert same.quantile(0.5) == pytest.approx(1.5)
        mixed = Histogram()
        mixed.add([1.0, 2.0], [0, 10, 0], 10, 15.0, 1.0, 2.0)
        mixed.add([1.5], [0, 10], 10, 18.0, 1.5, 2.0)  # all ten in (1.5, 2.0]
        # CDF at 1.5 is 5 (half of the first), so the median (rank 10) lies in (1.5, 2] where 15 more spread.
        assert mixed.quantile(0.5) == pytest.approx(1.5 + 0.5 * 5 / 15)

    def test_empty(self) -> None:
        """No counts: no estimate."""
        assert Histogram().quantile(0.5) is None
        assert Histogram().mean() is None


class TestKnownDataSet:
    def test_totals(self, report: dict[str, Any]) -> None:
        """Invocations, errors, rate, sessions (distinct ids) and installations are exact."""
        assert report["totals"]["invocations"] == 150
        assert report["totals"]["errors"] == 25
        assert report["totals"]["error_rate"] == pytest.approx(25 / 150)
        assert report["totals"]["sessions"] == 2
        assert report["totals"]["installations"] == 2
        # merged durations [40, 60, 50, 0, 0]: rank 75 in (0.1, 0.5]; rank 142.5 in (0.5, 1]
        assert report["totals"]["p50_s"] == pytest.approx(0.1 + 0.4 * 35 / 60)
        assert report["totals"]["p95_s"] == pytest.approx(0.5 + 0.5 * 42.5 / 50)

    def test_commands(self, report: dict[str, Any]) -> None:
        """Per command: counts, error rate, p50/p95 from the merged duration buckets."""
        remote, status = report["commands"]
        assert (remote["command"], remote["invocations"], remote["errors"]) == ("remote add", 100, 20)
        assert remote["error_rate"] == pytest.approx(0.2)
        assert remote["p50_s"] == pytest.approx(0.5)  # [0, 50, 50, 0, 0]
        assert remote["p95_s"] == pytest.approx(0.95)
        assert (status["command"], status["invocations"], status["errors"]) == ("status", 50, 5)
        assert status["error_rate"] == pytest.approx(0.1)
        assert status["p50_s"] == pytest.approx(0.02 + 0.08 * 25 / 40)  # [40, 10, ...], min 0.02
        assert status["p95_s"] == pytest.approx(0.4)

    def test_usage_by_day(self, report: dict[str, Any]) -> None:
        """Days are UTC, continuous (the empty day shows as zero)."""
        assert report["usage_by_day"] == [
            {"day": "2024-05-01", "invocations": 110, "errors": 20},
            {"day": "2024-05-02", "invocations": 0, "errors": 0},
            {"day": "2024-05-03", "invocations": 40, "errors": 5},
        ]

    def test_errors_by_type(self, report: dict[str, Any]) -> None:
        """Errors by error.type from cli.command.errors, with the commands raising them."""
        assert report["errors"]["by_type"] == [
            {
                "error_type": "ConnectionError",
                "count": 20,
                "commands": [{"command": "remote add", "count": 20}],
            },
            {"error_type": "ValueError", "count": 5, "commands": [{"command": "status", "count": 5}]},
        ]

    def test_sessions(self, report: dict[str, Any]) -> None:
        """Sessions come from span session ids (open ones included): s1 has 2 commands over 1.1 s, s2 one."""
        sessions = report["sessions"]
        assert (sessions["count"], sessions["open"]) == (2, 0)  # 2024 data: idle for far more than 30 min
        # exact per-session values, nearest rank: lengths 0.2 s and 1.1 s, commands 1 and 2
        assert sessions["median_length_s"] == pytest.approx(0.2)
        assert sessions["p95_length_s"] == pytest.approx(1.1)  # never above the longest session
        assert (sessions["min_length_s"], sessions["max_length_s"]) == (pytest.approx(0.2), pytest.approx(1.1))
        assert (sessions["median_commands"], sessions["p95_commands"], sessions["max_commands"]) == (1, 2, 2)

    def test_environment_weighted_by_invocations(self, report: dict[str, Any]) -> None:
        """Environment shares count invocations, not resources."""
        env = report["environment"]
        assert [(v["value"], v["invocations"]) for v in env["os.type"]] == [("linux", 110), ("darwin", 40)]
        assert env["ci.detected"][1]["value"] == "true"
        assert env["ci.detected"][1]["share"] == pytest.approx(40 / 150)
        assert [v["value"] for v in env["container.detected"]] == ["false"]

    def test_features_activity_health(self, report: dict[str, Any]) -> None:
        """Feature counts, hour-of-week activity and self-health metrics."""
        assert report["features"] == [
            {"feature": "color-output", "count": 12, "last_7_days": 12, "previous_7_days": 0},
            {"feature": "json-output", "count": 3, "last_7_days": 3, "previous_7_days": 0},
        ]
        assert len(report["activity"]) == 168
        assert (report["activity"][36], report["activity"][37], sum(report["activity"])) == (100, 50, 150)
        health = report["health"]
        assert (health["export_attempts"], health["export_failures"]) == (10, 2)
        assert health["export_failure_rate"] == pytest.approx(0.2)
        assert health["spool_dropped"] == 4
        assert health["spool_dropped_by_reason"] == [
            {"reason": "full", "count": 3},
            {"reason": "expired", "count": 1},
        ]
        assert health["export_duration_p50_s"] == pytest.approx(0.05)

    def test_since_filters(self, tmp_path: Path) -> None:
        """since_ns keeps only data at or after it."""
        load(tmp_path / "r.sqlite", known_data())
        recent = build_report(tmp_path / "r.sqlite", since_ns=ns(2))
        assert (recent["totals"]["invocations"], recent["totals"]["errors"]) == (40, 5)
        assert recent["totals"]["installations"] == 1
        assert recent["totals"]["sessions"] == 1

    def test_json_safe(self, report: dict[str, Any]) -> None:
        """The report serialises as strict JSON (no NaN or Infinity)."""
        json.dumps(report, allow_nan=False)

    def test_render(self, report: dict[str, Any]) -> None:
        """The terminal rendering shows the key numbers."""
        text = render_report(report)
        assert "Invocations 150  errors 25 (16.7%)" in text
        assert "remote add   100      20       20.0%   500 ms  950 ms" in text  # beside "70.0 ms"
        assert "ConnectionError" in text
        assert "os.type: linux 73.3%, darwin 26.7%" in text
        assert "spool dropped 4 (full 3, expired 1)" in text


class TestCumulative:
    def test_cumulative_sums_become_deltas(self, tmp_path: Path) -> None:
        """Cumulative 10, 25, 40 count 40; a new start time is a reset and counts in full."""
        start, restart = ns(1, 0), ns(2, 0)
        load(
            tmp_path / "c.sqlite",
            [
                (
                    "metrics",
                    metrics_request(
                        (
                            LINUX,
                            [
                                sum_metric(
                                    "cli.command.invocations",
                                    [
                                        (REMOTE_ADD, 10, ns(1, 1)),
                                        (REMOTE_ADD, 25, ns(1, 2)),
                                        (REMOTE_ADD, 40, ns(1, 3)),
                                    ],
                                    temporality=CUMULATIVE,
                                    start=start,
                                ),
                                sum_metric(
                                    "cli.command.invocations",
                                    [(REMOTE_ADD, 5, ns(2, 1))],
                                    temporality=CUMULATIVE,
                                    start=restart,
                                ),
                            ],
                        )
                    ),
                )
            ],
        )
        report = build_report(tmp_path / "c.sqlite")
        assert report["totals"]["invocations"] == 45
        assert report["usage_by_day"][0] == {"day": "2024-05-01", "invocations": 40, "errors": 0}
        # the day after holds only the reset series' 5
        assert build_report(tmp_path / "c.sqlite", since_ns=ns(2))["totals"]["invocations"] == 5
        # a late copy of an older cumulative point changes nothing
        load(
            tmp_path / "c.sqlite",
            [
                (
                    "metrics",
                    metrics_request(
                        (
                            LINUX,
                            [
                                sum_metric(
                                    "cli.command.invocations", [(REMOTE_ADD, 25, ns(1, 2))],
                                    temporality=CUMULATIVE, start=start,
                                )
                            ],
                        )
                    ),
                )
            ],
        )
        assert build_report(tmp_path / "c.sqlite")["totals"]["invocations"] == 45

    def test_cumulative_histograms_become_deltas(self, tmp_path: Path) -> None:
        """Cumulative histogram buckets are differenced before percentiles are estimated."""
        load(
            tmp_path / "c.sqlite",
            [
                (
                    "metrics",
                    metrics_request(
                        (
                            LINUX,
                            [
                                hist_metric(
                                    "cli.command.duration",
                                    [1.0, 2.0],
                                    [
                                        (REMOTE_ADD, [0, 10, 0], 15.0, 1.0, 2.0, ns(1, 1)),
                                        (REMOTE_ADD, [0, 10, 10], 45.0, 1.0, 4.0, ns(2, 2)),
                                    ],
                                    temporality=CUMULATIVE,
                                    start=ns(1, 0),
                                ),
                            ],
                        )
                    ),
                )
            ],
        )
        recent = build_report(tmp_path / "c.sqlite", since_ns=ns(2))
        # day 2 holds only the delta [0, 0, 10]: all in (2, max=4]
        assert recent["commands"][0]["p50_s"] == pytest.approx(3.0)


def test_empty_store(tmp_path: Path) -> None:
    """An empty store yields zeros and no estimates, and still renders."""
    Store(tmp_path / "empty.sqlite").close()
    report = build_report(tmp_path / "empty.sqlite")
    assert report["totals"] == {
        "invocations": 0,
        "errors": 0,
        "error_rate": None,
        "installations": 0,
        "sessions": 0,
        "open_sessions": 0,
        "p50_s": None,
        "p95_s": None,
        "p99_s": None,
        "samples": 0,
    }
    assert report["commands"] == [] and report["usage_by_day"] == [] and report["activity"] == []
    assert "Invocations 0" in render_report(report)
    assert not math.isnan(report["stored"]["spans"])


def test_version_one_store_is_upgraded_with_its_rollups(tmp_path: Path) -> None:
    """A store from before the rollups (schema 1: raw tables only) gets them derived once, on first open."""
    import sqlite3

    db = tmp_path / "old.sqlite"
    load(db, known_data())
    expected = build_report(db)
    conn = sqlite3.connect(db)
    for table in ("r_metric", "r_bucket", "r_env", "r_error", "active", "active_count", "installations", "sessions",
                  "r_session", "cumulative", "dim_values", "limits", "counters", "meta"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    upgraded = build_report(db)
    for section in set(expected) - {"generated_ns"}:
        assert upgraded[section] == expected[section], section


def test_version_two_store_keeps_its_explicit_buckets_and_sessions(tmp_path: Path) -> None:
    """A round-2 store (schema 2: explicit duration buckets, session rollup in fixed bounds, no exponential
    rollup or app_days) opens as the current schema with the same report: old durations read from their buckets,
    sessions re-derived exactly; new exponential points then merge with the old ones."""
    import sqlite3

    from otel_expansion.backend.rollup import SESSION_BOUNDS, bucket_of
    from otel_expansion.backend.store import SCHEMA_VERSION, open_readonly
    from otel_expansion.otlp.encode import metrics_request as encode_points
    from otel_expansion.otlp.exponential import from_values
    from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM, MetricPoint, SeriesKey

    db = tmp_path / "round2.sqlite"
    load(db, known_data())
    expected = build_report(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE r_exp")
    conn.execute("DROP TABLE app_days")
    conn.execute("DROP TABLE r_error")
    for index in ("sessions_length", "sessions_commands", "installations_version"):
        conn.execute(f"DROP INDEX {index}")
    conn.execute("DELETE FROM r_session")
    for service, version, day, first, last, n in conn.execute(
            "SELECT service, version, day, first_ns, last_ns, commands FROM sessions").fetchall():
        for kind, value in (("length_s", (last - first) / 1e9), ("commands", float(n))):
            conn.execute("INSERT INTO r_session VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET n = n + 1",
                         (kind, day, service, version, *bucket_of(value, SESSION_BOUNDS[kind])))
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    upgraded = build_report(db)
    for section in set(expected) - {"generated_ns"}:
        assert upgraded[section] == expected[section], section
    assert open_readonly(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    before = next(c for c in upgraded["commands"] if c["command"] == "remote add")
    values = [0.2, 0.3, 0.4]
    b = from_values(values)
    key = SeriesKey(tuple(sorted(LINUX.items())), "otel_expansion", "0.3.0", "cli.command.duration",
                    EXPONENTIAL_HISTOGRAM, "s", "", (("cli.command.name", "remote add"),))
    point = MetricPoint(key, ns(3) - 10**9, ns(3), count=3, sum=0.9, min=0.2, max=0.4, bucket_counts=b.counts,
                        scale=b.scale, offset=b.offset)
    with Store(db) as store:
        store.write("metrics", flatten("metrics", encode_points([point])))
    after = next(c for c in build_report(db)["commands"] if c["command"] == "remote add")
    assert after["samples"] == before["samples"] + 3
    assert after["p50_s"] is not None and after["p99_s"] is not None


def test_text_report_says_when_a_table_is_cut(report: dict[str, Any]) -> None:
    """A table cut to its first rows says how many it shows of how many (nothing is dropped silently)."""
    errors = report["errors"]
    template = errors["by_type"][0]
    errors["by_type"] = [{**template, "error_type": f"E{i}"} for i in range(17)]
    text = render_report(report)
    assert "(15 of 17 shown; --json for all)" in text
    assert "E14" in text and "E15" not in text
    errors["by_type"] = errors["by_type"][:3]
    assert "shown; --json" not in render_report(report).split("Error rate by command")[0]
