"""The report's queries on ClickHouse, over the tables the collector's ClickHouse exporter writes.

Fleet topology (collector-config/README.md): SDKs -> edge collectors -> gateways (gateway-clickhouse.yaml)
-> ClickHouse. The exporter (contrib clickhouseexporter, pinned in collector-config/manifest.yaml) writes
raw points: ``otel_metrics_sum``, ``otel_metrics_histogram``, ``otel_metrics_exponential_histogram``,
``otel_metrics_gauge`` and ``otel_traces``,
with attributes in ``Map(LowCardinality(String), String)`` columns. ClickHouse aggregates raw points fast
enough that no rollup is kept; each method below is the same question query.py answers from SQLite's
rollups, with the same columns and value spellings, so report.py builds the same report from either.

Differences, by design: only delta sums and histograms are read (the SDK sends delta; cumulative
series would need the ingest-time differencing the embedded store does); a retried batch is not
de-duplicated by ClickHouse (the exporter has no batch-id check), and ingest limits do not apply.

Transport: plain HTTP (``http://host:8123``, the ClickHouse HTTP interface) with the stdlib, so the
report needs no ClickHouse driver; tests pass a callable that runs SQL in chDB instead.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from otel_expansion.backend.query import GROUPS, Filter
from otel_expansion.backend.rollup import (
    DAY_NS,
    ENVIRONMENT_KEYS,
    ERROR_METRICS,
    INVOCATIONS,
    LABELS,
    ROLLUP_SCALE,
    SESSION_SCALE,
    SIGNATURE,
    expand,
    fold,
)
from otel_expansion.otlp.exponential import Accumulator, Buckets, bucket_bounds, downscale

__all__ = ["ClickHouseEngine", "http_runner"]

Runner = Callable[[str], list[list[Any]]]
_SETTINGS = " SETTINGS output_format_json_quote_64bit_integers = 0, output_format_json_quote_denormals = 1"
_DAY = "intDiv(toUnixTimestamp(TimeUnix), 86400)"
_VERSION = "ResourceAttributes['service.version']"


_ADJUSTED = (
    "if(match(TraceState, '(^|,)ot=([^,]*;)?th:[0-9a-f]{1,14}'), greatest(1, round(pow(2, 56) / (pow(2, 56) -"
    " toFloat64(reinterpretAsUInt64(reverse(unhex(rightPad(extract(TraceState, 'th:([0-9a-f]{1,14})'), 14,"
    " '0')))))))), 1)"
)
"""The spans a span stands for (``1/p`` of its tracestate's ``ot=th`` threshold; 1 without one): sessions count
commands, and a sampled span stands for several (as ``ingest.adjusted_count``)."""


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _label_expr() -> str:
    cases = ", ".join(f"MetricName = {_quote(m)}, Attributes[{_quote(a)}]" for m, a in LABELS.items())
    return f"multiIf({cases}, '')"


_EXPR = {
    "day": _DAY,
    "week": f"intDiv({_DAY} + 3, 7)",
    "service": "ServiceName",
    "version": _VERSION,
    "command": "Attributes['cli.command.name']",
    "outcome": "Attributes['cli.command.outcome']",
    "error_type": "Attributes['error.type']",
    "label": _label_expr(),
    "metric": "MetricName",
}


def http_runner(url: str, timeout_s: float = 30.0) -> Runner:
    """Run SQL over ClickHouse's HTTP interface; ``http://user:password@host:8123/?database=otel``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the ClickHouse URL must be http:// or https:// (the HTTP interface, port 8123)")
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.setdefault("database", "otel_expansion")
    query["default_format"] = "JSONCompact"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    endpoint = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", urllib.parse.urlencode(query), ""))
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if parts.username:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()

    def run(sql: str) -> list[list[Any]]:
        request = urllib.request.Request(endpoint, data=sql.encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return list(json.loads(response.read())["data"])

    return run


def _only(command: str | None) -> str:
    """A clause narrowing a histogram question to one command, when one is given."""
    return "" if command is None else f" AND {_EXPR['command']} = {_quote(command)}"


def _number(value: Any) -> Any:
    if isinstance(value, str) and value in ("inf", "-inf", "+inf", "nan"):
        return float(value)
    return value


class ClickHouseEngine:
    """Answers the report's questions from the exporter's tables in one ClickHouse database."""

    def __init__(self, run: Runner, database: str | None = None) -> None:
        self._run = run
        self._db = f"`{database}`." if database else ""

    def close(self) -> None:
        return None

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(_number(v) for v in row) for row in self._run(sql + _SETTINGS)]

    def _where(self, f: Filter, *, time_col: str = "TimeUnix", day: str = _DAY, apps: bool = True) -> str:
        clauses = []
        if f.since_day is not None:
            clauses.append(f"{time_col} >= toDateTime({f.since_day * 86400}) AND {day} >= {f.since_day}")
        if f.until_day is not None:
            clauses.append(f"{time_col} < toDateTime({(f.until_day + 1) * 86400}) AND {day} <= {f.until_day}")
        if apps and f.service is not None:
            clauses.append(f"ServiceName = {_quote(f.service)}")
        if apps and f.version is not None:
            clauses.append(f"{_VERSION} = {_quote(f.version)}")
        return "".join(f" AND {c}" for c in clauses)

    def _table(self, name: str) -> str:
        return f"{self._db}{name}"

    @staticmethod
    def _group(group: Sequence[str], extra: Sequence[str] = ()) -> tuple[str, str]:
        for name in group:
            if name not in GROUPS:
                raise ValueError(f"unknown group {name!r}")
        cols = [_EXPR[g] for g in group] + list(extra)
        return ("".join(f"{c}, " for c in cols), (" GROUP BY " + ", ".join(cols)) if cols else "")

    @staticmethod
    def _names(metrics: Sequence[str]) -> str:
        return "MetricName IN (" + ", ".join(_quote(m) for m in metrics) + ")"

    def apps(self, f: Filter) -> list[tuple[Any, ...]]:
        return self._rows(
            f"SELECT ServiceName, {_VERSION}, sum(Value), sumIf(Value, Attributes['cli.command.outcome'] = 'error'),"
            f" min({_DAY}), max({_DAY}) FROM {self._table('otel_metrics_sum')}"
            f" WHERE MetricName = {_quote(INVOCATIONS)} AND AggregationTemporality = 1{self._where(f)}"
            f" GROUP BY ServiceName, {_VERSION}"
        )

    def catalog(self) -> list[tuple[Any, ...]]:
        return self._rows(
            f"SELECT DISTINCT ServiceName, {_VERSION} FROM {self._table('otel_metrics_sum')}"
            f" WHERE MetricName = {_quote(INVOCATIONS)} ORDER BY 1, 2"
        )

    def invocations(self, f: Filter, group: Sequence[str]) -> list[tuple[Any, ...]]:
        head, tail = self._group(group)
        return self._rows(
            f"SELECT {head}sum(Value), sumIf(Value, Attributes['cli.command.outcome'] = 'error')"
            f" FROM {self._table('otel_metrics_sum')} WHERE MetricName = {_quote(INVOCATIONS)}"
            f" AND AggregationTemporality = 1{self._where(f)}{tail}"
        )

    def metric_sum(self, f: Filter, metrics: Sequence[str], group: Sequence[str]) -> list[tuple[Any, ...]]:
        head, tail = self._group(group)
        return self._rows(
            f"SELECT {head}sum(Value) FROM {self._table('otel_metrics_sum')} WHERE {self._names(metrics)}"
            f" AND AggregationTemporality = 1{self._where(f)}{tail}"
        )

    def buckets(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]:
        """(*group, lower, upper, count) per non-empty bucket: counts summed per layout by sumForEach."""
        head, tail = self._group(group, ["ExplicitBounds"])
        width = len(group)
        out = []
        for row in self._rows(
            f"SELECT {head}sumForEach(BucketCounts) FROM {self._table('otel_metrics_histogram')}"
            f" WHERE {self._names(metrics)} AND AggregationTemporality = 1 AND length(BucketCounts) > 0"
            f"{self._where(f)}{_only(command)}{tail}"
        ):
            bounds, counts = fold(list(row[width]), list(row[width + 1]))
            out += [(*row[:width], lower, upper, n) for lower, upper, n in expand(bounds, counts)]
        return out

    def exponential(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]:
        """(*group, Buckets): points summed per (scale, offsets) by sumForEach, merged exactly here at no finer
        a scale than the embedded rollup keeps (ROLLUP_SCALE), so both engines report the same quantiles."""
        head, tail = self._group(group, ["Scale", "PositiveOffset", "NegativeOffset"])
        width = len(group)
        merged: dict[tuple[Any, ...], Accumulator] = {}
        for row in self._rows(
            f"SELECT {head}sum(ZeroCount), sumForEach(PositiveBucketCounts), sumForEach(NegativeBucketCounts)"
            f" FROM {self._table('otel_metrics_exponential_histogram')}"
            f" WHERE {self._names(metrics)} AND AggregationTemporality = 1{self._where(f)}{_only(command)}{tail}"
        ):
            key = tuple(row[:width])
            scale, offset, n_offset, zero, counts, n_counts = row[width:]
            acc = merged.get(key)
            if acc is None:
                acc = merged[key] = Accumulator()
            acc.add(downscale(Buckets(int(scale), int(zero), int(offset), tuple(int(n) for n in counts),
                                      int(n_offset), tuple(int(n) for n in n_counts)), ROLLUP_SCALE))
        return [(*key, acc.result()) for key, acc in merged.items()]

    def histogram_stats(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]:
        head, tail = self._group(group)
        cols = ("ServiceName, MetricName, ResourceAttributes, Attributes, TimeUnix, Count, Sum, Min, Max,"
                " AggregationTemporality")
        table = (f"(SELECT {cols} FROM {self._table('otel_metrics_histogram')}"
                 f" UNION ALL SELECT {cols} FROM {self._table('otel_metrics_exponential_histogram')})")
        return self._rows(
            f"SELECT {head}sum(Count), sum(Sum), min(Min), max(Max) FROM {table}"
            f" WHERE {self._names(metrics)} AND AggregationTemporality = 1{self._where(f)}{_only(command)}{tail}"
        )

    def metric_totals(self, f: Filter, prefix: str) -> list[tuple[Any, ...]]:
        where = f"startsWith(MetricName, {_quote(prefix)}){self._where(f)}"
        return self._rows(
            f"SELECT MetricName, 'sum', sum(Value) FROM {self._table('otel_metrics_sum')}"
            f" WHERE {where} AND AggregationTemporality = 1 GROUP BY MetricName"
            f" UNION ALL SELECT MetricName, 'histogram', sum(Count) FROM {self._table('otel_metrics_histogram')}"
            f" WHERE {where} AND AggregationTemporality = 1 GROUP BY MetricName"
            " UNION ALL SELECT MetricName, 'histogram', sum(Count) FROM"
            f" {self._table('otel_metrics_exponential_histogram')}"
            f" WHERE {where} AND AggregationTemporality = 1 GROUP BY MetricName"
            f" UNION ALL SELECT MetricName, 'gauge', argMax(Value, TimeUnix) FROM {self._table('otel_metrics_gauge')}"
            f" WHERE {where} GROUP BY MetricName"
        )

    def environment(self, f: Filter) -> list[tuple[Any, ...]]:
        pairs = ", ".join(f"({_quote(k)}, ResourceAttributes[{_quote(k)}])" for k in ENVIRONMENT_KEYS)
        return self._rows(
            f"SELECT kv.1, kv.2, sum(Value) FROM {self._table('otel_metrics_sum')} ARRAY JOIN [{pairs}] AS kv"
            f" WHERE MetricName = {_quote(INVOCATIONS)} AND AggregationTemporality = 1{self._where(f)}"
            " GROUP BY kv.1, kv.2"
        )

    def _installs(self, f: Filter) -> str:
        return (
            f"FROM {self._table('otel_metrics_sum')} WHERE MetricName = {_quote(INVOCATIONS)}"
            " AND AggregationTemporality = 1 AND Value > 0"
            f" AND ResourceAttributes['otel_expansion.installation.id'] != ''{self._where(f)}"
        )

    def active(self, f: Filter, period: str) -> list[tuple[Any, ...]]:
        if period != "day":  # weeks overlapping the range count whole, as the embedded weekly rollup does
            f = dataclasses.replace(
                f,
                since_day=None if f.since_day is None else (f.since_day + 3) // 7 * 7 - 3,
                until_day=None if f.until_day is None else (f.until_day + 3) // 7 * 7 + 3,
            )
        head, tail = self._group(["day" if period == "day" else "week"])
        return self._rows(
            f"SELECT {head}uniqExact(ServiceName, ResourceAttributes['otel_expansion.installation.id'])"
            f" {self._installs(f)}{tail}"
        )

    def installations(self, f: Filter) -> int:
        rows = self._rows(
            "SELECT uniqExact(ResourceAttributes['otel_expansion.installation.id'])"
            f" {self._installs(f)}"
        )
        return int(rows[0][0]) if rows else 0

    def _session_rows(self, f: Filter) -> str:
        """One row per session id: app and version of its first span, first start, last end, commands."""
        where = []
        if f.service is not None:
            where.append(f"service = {_quote(f.service)}")
        if f.version is not None:
            where.append(f"version = {_quote(f.version)}")
        if f.since_day is not None:
            where.append(f"intDiv(first, {DAY_NS}) >= {f.since_day}")
        if f.until_day is not None:
            where.append(f"intDiv(first, {DAY_NS}) <= {f.until_day}")
        return (
            "SELECT * FROM (SELECT SpanAttributes['session.id'] AS sid,"
            " argMin(ServiceName, Timestamp) AS service, argMin(ResourceAttributes['service.version'], Timestamp)"
            " AS version, min(toUnixTimestamp64Nano(Timestamp)) AS first,"
            " max(toUnixTimestamp64Nano(Timestamp) + Duration) AS last,"
            f" toUInt64(sum({_ADJUSTED})) AS commands"
            f" FROM {self._table('otel_traces')} WHERE SpanAttributes['session.id'] != '' GROUP BY sid)"
            + (" WHERE " + " AND ".join(where) if where else "")
        )

    def sessions(self, f: Filter) -> list[tuple[Any, ...]]:
        """(kind, lo, hi, n) as the embedded session rollup keeps them: lengths in base-2 buckets at
        SESSION_SCALE (0 and below as exact values), commands as exact values."""
        per = 1 << SESSION_SCALE
        index = (f"toInt64(ceil(log2(x) * {per})) - 1")
        fixed = (f"multiIf(x <= pow(2, ({index}) / {per}), ({index}) - 1,"
                 f" x > pow(2, ({index} + 1) / {per}), ({index}) + 1, {index})")
        out: list[tuple[Any, ...]] = []
        for z, i, n in self._rows(
            f"SELECT if(x <= 0, x, NULL) AS z, if(x <= 0, 0, {fixed}) AS i, count() FROM (SELECT (last - first) / 1e9"
            f" AS x FROM ({self._session_rows(f)})) GROUP BY z, i"
        ):
            if z is not None:
                out.append(("length_s", float(z), float(z), int(n)))
            else:
                out.append(("length_s", *bucket_bounds(int(i), SESSION_SCALE), int(n)))
        out += [("commands", float(c), float(c), int(n)) for c, n in self._rows(
            f"SELECT toFloat64(commands) AS c, count() FROM ({self._session_rows(f)}) GROUP BY c")]
        return out

    def session_stats(self, f: Filter, quantiles: Sequence[float]) -> list[tuple[Any, ...]]:
        """Exact nearest-rank values from the per-session rows (sorted once per kind)."""
        parts = []
        for kind, expr in (("length_s", "(last - first) / 1e9"), ("commands", "toFloat64(commands)")):
            picks = "".join(f", v[toUInt64(greatest(1, ceil({float(q)!r} * n - 1e-9)))]" for q in quantiles)
            parts.append(
                f"SELECT {_quote(kind)}, n, v[1], v[n]{picks} FROM (SELECT count() AS n,"
                f" arraySort(groupArray({expr})) AS v FROM ({self._session_rows(f)})) WHERE n > 0"
            )
        return self._rows(" UNION ALL ".join(parts))

    def open_sessions(self, f: Filter, since_ns: int, until_ns: int) -> int:
        rows = self._rows(
            f"SELECT count() FROM ({self._session_rows(f)}) WHERE last >= {int(since_ns)} AND last <= {int(until_ns)}"
        )
        return int(rows[0][0]) if rows else 0

    def limits(self, f: Filter) -> list[tuple[Any, ...]]:
        return []

    def error_groups(self, f: Filter) -> list[tuple[Any, ...]]:
        """The error counters' delta points by app, version, metric, error type, stack signature
        (``Attributes['cli.error.signature']``, '' where absent) and command: what query.py reads from r_error."""
        keys = (f"ServiceName, {_VERSION}, MetricName, Attributes['error.type'], Attributes[{_quote(SIGNATURE)}],"
                " Attributes['cli.command.name']")
        return self._rows(
            f"SELECT {keys}, sum(Value) FROM {self._table('otel_metrics_sum')} WHERE {self._names(ERROR_METRICS)}"
            f" AND AggregationTemporality = 1{self._where(f)} GROUP BY {keys} HAVING sum(Value) != 0"
        )

    def first_seen(self, service: str | None) -> list[tuple[Any, ...]]:
        """Each app version's first day with invocations, over all time (what app_days holds in SQLite)."""
        return self._rows(
            f"SELECT ServiceName, {_VERSION}, min({_DAY}) FROM {self._table('otel_metrics_sum')}"
            f" WHERE MetricName = {_quote(INVOCATIONS)} AND AggregationTemporality = 1"
            f"{self._where(Filter(service=service))} GROUP BY ServiceName, {_VERSION}"
        )

    def stored(self) -> dict[str, int]:
        counts = {}
        for key, table in (("spans", "otel_traces"), ("metric_points", "otel_metrics_sum"), ("logs", "otel_logs")):
            try:
                counts[key] = int(self._rows(f"SELECT count() FROM {self._table(table)}")[0][0])
            except Exception:  # a deployment may not create every table (e.g. no logs pipeline)
                counts[key] = 0
        for table in ("otel_metrics_histogram", "otel_metrics_exponential_histogram", "otel_metrics_gauge"):
            with contextlib.suppress(Exception):
                counts["metric_points"] += int(self._rows(f"SELECT count() FROM {self._table(table)}")[0][0])
        counts["resources"] = 0
        return counts
