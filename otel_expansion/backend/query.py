"""The report's queries on the embedded store: each reads the rollups kept at ingest, never raw rows.

The report (report.py) asks an engine a fixed set of questions; this module answers them from SQLite,
clickhouse.py answers the same questions from the collector's ClickHouse tables, with the same columns
and value spellings, so one report builder serves both and tests can compare them. Time filters work in
whole UTC days (the rollups' grain): ``since`` rounds down to its day, ``until`` includes its day.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from otel_expansion.backend.rollup import (
    ALL,
    BUCKET_SLOTS,
    DAY_NS,
    ERROR_METRICS,
    INVOCATIONS,
    decode_exponential,
    expand,
)
from otel_expansion.backend.store import stored_counts
from otel_expansion.otlp.exponential import Accumulator, Buckets

__all__ = ["GROUPS", "Buckets", "Engine", "Filter", "SQLiteEngine"]

GROUPS = ("day", "week", "service", "version", "command", "outcome", "error_type", "label", "metric")
"""Dimensions a query may group by; a week is Monday-based: (days since 1970-01-01 + 3) // 7."""


@dataclass(frozen=True, slots=True)
class Filter:
    """Which data a report covers: one app and/or version, and a range of UTC days (inclusive)."""

    service: str | None = None
    version: str | None = None
    since_day: int | None = None
    until_day: int | None = None

    @staticmethod
    def from_ns(
        service: str | None = None, version: str | None = None, since_ns: int | None = None, until_ns: int | None = None
    ) -> Filter:
        return Filter(
            service or None,
            version or None,
            None if since_ns is None else since_ns // DAY_NS,
            None if until_ns is None else until_ns // DAY_NS,
        )


class Engine(Protocol):
    """The questions the report asks; every answer is a list of plain tuples."""

    def apps(self, f: Filter) -> list[tuple[Any, ...]]: ...  # service, version, invocations, errors, first, last

    def catalog(self) -> list[tuple[Any, ...]]: ...  # service, version: everything stored, unfiltered

    def invocations(self, f: Filter, group: Sequence[str]) -> list[tuple[Any, ...]]: ...  # *group, runs, errors

    def metric_sum(self, f: Filter, metrics: Sequence[str], group: Sequence[str]) -> list[tuple[Any, ...]]: ...

    # ``command``: only that command's points (one command's distribution reads its rows alone)
    def buckets(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]: ...

    def histogram_stats(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]: ...

    def exponential(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]:
        ...  # *group, Buckets (base-2 exponential, merged per group)

    def metric_totals(self, f: Filter, prefix: str) -> list[tuple[Any, ...]]: ...  # metric, kind, value

    def environment(self, f: Filter) -> list[tuple[Any, ...]]: ...  # key, value, invocations

    def active(self, f: Filter, period: str) -> list[tuple[Any, ...]]: ...  # period number, installations

    def installations(self, f: Filter) -> int: ...

    def sessions(self, f: Filter) -> list[tuple[Any, ...]]: ...  # kind, lo, hi, n

    def session_stats(self, f: Filter, quantiles: Sequence[float]) -> list[tuple[Any, ...]]:
        ...  # kind ("length_s" | "commands"), count, min, max, *exact nearest-rank quantiles

    def open_sessions(self, f: Filter, since_ns: int, until_ns: int) -> int: ...

    def limits(self, f: Filter) -> list[tuple[Any, ...]]: ...  # what, n

    def error_groups(self, f: Filter) -> list[tuple[Any, ...]]:
        ...  # service, version, metric, error type, signature, command, count (error counters, non-zero)

    def first_seen(self, service: str | None) -> list[tuple[Any, ...]]:
        ...  # service, version, first day with invocations: all time, one app or all

    def stored(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def _where(f: Filter, *, day: str = "day", apps: bool = True) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if f.since_day is not None:
        clauses.append(f"{day} >= ?")
        params.append(f.since_day)
    if f.until_day is not None:
        clauses.append(f"{day} <= ?")
        params.append(f.until_day)
    if apps and f.service is not None:
        clauses.append("service = ?")
        params.append(f.service)
    if apps and f.version is not None:
        clauses.append("version = ?")
        params.append(f.version)
    return (" AND " + " AND ".join(clauses)) if clauses else "", params


def _whole_weeks(f: Filter) -> tuple[int | None, int | None]:
    """The first and last week wholly inside the filter's days (None: unbounded)."""
    first = None if f.since_day is None else (f.since_day + 9) // 7
    last = None if f.until_day is None else (f.until_day - 3) // 7
    return first, last


def _open_days(first: int | None, last: int | None, open_day: int | None) -> tuple[int, int | None] | None:
    """The days of the whole weeks ``first``..``last`` not in their weekly rows yet (from ``open_day`` on: the
    store adds a day to its week once the day is over), or None when there are none."""
    if open_day is None:
        return None
    low = open_day if first is None else max(open_day, 7 * first - 3)
    high = None if last is None else 7 * last + 3
    return None if high is not None and low > high else (low, high)


def _tiered(f: Filter, group: Sequence[str], open_day: int | None = None) -> tuple[str, list[Any]]:
    """Rows of the two-tier rollups covering the filter's days exactly once.

    Grouped by day or week: daily rows. Otherwise: weekly rows (grain 7) for the weeks wholly inside the
    range, daily rows (grain 1) for the days at its edges and for the open days (from ``open_day`` on, not
    added to their weeks yet). Week w covers days 7w-3 .. 7w+3.
    """
    if "day" in group or "week" in group:
        daily, daily_params = _where(f)
        return " AND grain = 1" + daily, daily_params
    apps, app_params = _where(Filter(f.service, f.version))
    first, last = _whole_weeks(f)
    if first is not None and last is not None and first > last:  # no whole week: days only
        where, day_only = _where(Filter(since_day=f.since_day, until_day=f.until_day), apps=False)
        return " AND grain = 1" + where + apps, day_only + app_params
    weeks: list[str] = ["grain = 7"]
    days, day_params = _where(Filter(since_day=f.since_day, until_day=f.until_day), apps=False)
    params: list[Any] = []
    if first is not None:
        weeks.append("day >= ?")
        params.append(first)
    if last is not None:
        weeks.append("day <= ?")
        params.append(last)
    edges = []
    if first is not None:
        edges.append("day < ?")
        day_params.append(7 * first - 3)
    if last is not None:
        edges.append("day > ?")
        day_params.append(7 * last + 3)
    opened = _open_days(first, last, open_day)
    if opened is not None:
        edges.append("day >= ?" if opened[1] is None else "(day >= ? AND day <= ?)")
        day_params += [d for d in opened if d is not None]
    if edges:
        clause = f"(({' AND '.join(weeks)}) OR (grain = 1{days} AND ({' OR '.join(edges)})))"
        return f" AND {clause}{apps}", params + day_params + app_params
    return f" AND {' AND '.join(weeks)}{apps}", params + app_params


def _tiers(f: Filter, group: Sequence[str], open_day: int | None = None) -> list[tuple[str, list[Any]]]:
    """The rows :func:`_tiered` covers, as up to four separate ranges (whole weeks, the days before the
    first whole week, the days after the last, the open days of the whole weeks): each an equality on grain
    and a range on day, which an index on (..., grain, day) answers as a range, where the OR of
    :func:`_tiered` makes SQLite read every row of the metric."""
    if "day" in group or "week" in group:
        return [_tiered(f, group)]
    apps, app_params = _where(Filter(f.service, f.version))
    first, last = _whole_weeks(f)
    if first is not None and last is not None and first > last:  # no whole week: days only
        where, day_only = _where(Filter(since_day=f.since_day, until_day=f.until_day), apps=False)
        return [(" AND grain = 1" + where + apps, day_only + app_params)]
    weeks, week_params = " AND grain = 7", []
    if first is not None:
        weeks += " AND day >= ?"
        week_params.append(first)
    if last is not None:
        weeks += " AND day <= ?"
        week_params.append(last)
    parts = [(weeks + apps, week_params + app_params)]
    if first is not None:
        parts.append((" AND grain = 1 AND day >= ? AND day < ?" + apps, [f.since_day, 7 * first - 3, *app_params]))
    if last is not None:
        until = "" if f.until_day is None else " AND day <= ?"
        parts.append((f" AND grain = 1 AND day > ?{until}" + apps,
                      [7 * last + 3, *([] if f.until_day is None else [f.until_day]), *app_params]))
    opened = _open_days(first, last, open_day)
    if opened is not None:
        low, high = opened
        parts.append((" AND grain = 1 AND day >= ?" + ("" if high is None else " AND day <= ?") + apps,
                      [low, *([] if high is None else [high]), *app_params]))
    return parts


def _only(where: str, params: list[Any], command: str | None) -> tuple[str, list[Any]]:
    """The clause and parameters, narrowed to one command when one is given."""
    return (where, params) if command is None else (f"{where} AND command = ?", [*params, command])


def _cols(group: Sequence[str]) -> list[str]:
    out = []
    for name in group:
        if name not in GROUPS:
            raise ValueError(f"unknown group {name!r}")
        out.append("(day + 3) / 7" if name == "week" else name)
    return out


def _in(metrics: Sequence[str]) -> tuple[str, list[Any]]:
    return "metric IN (" + ", ".join("?" * len(metrics)) + ")", list(metrics)


_COMBINE: dict[str, Callable[[Any, Any], Any]] = {"SUM": operator.add, "MIN": min, "MAX": max}


_M = TypeVar("_M", bound=Callable[..., Any])


def _consistent(method: _M) -> _M:
    """Run an SQLiteEngine method inside :meth:`SQLiteEngine._snapshot`."""

    @functools.wraps(method)
    def wrapper(self: SQLiteEngine, *args: Any, **kwargs: Any) -> Any:
        with self._snapshot():
            return method(self, *args, **kwargs)

    return cast(_M, wrapper)


class SQLiteEngine:
    """Answers from the embedded store's rollup tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._open_day: int | None = None

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction around a question that reads the weekly tier: the first open day (see
        Store._close_days) and the rows it decides about must come from the same snapshot, or a day added to
        its week in between would be read twice (from its week's row and its own)."""
        conn = self._conn
        begin = not conn.in_transaction  # else: inside the caller's (or an enclosing question's) transaction
        if begin:
            conn.execute("BEGIN")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'weekly_from_day'").fetchone()
            self._open_day = None if row is None else int(row[0])
            yield
        finally:
            if begin:
                conn.execute("COMMIT")

    def _tiered(self, f: Filter, group: Sequence[str]) -> tuple[str, list[Any]]:
        return _tiered(f, group, self._open_day)

    def _tiers(self, f: Filter, group: Sequence[str]) -> list[tuple[str, list[Any]]]:
        return _tiers(f, group, self._open_day)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params)]

    def _grouped(self, select: str, table: str, where: str, params: list[Any], group: Sequence[str]) -> list[Any]:
        cols = _cols(group)
        head = ", ".join(cols) + ", " if cols else ""
        tail = " GROUP BY " + ", ".join(cols) if cols else ""
        return self._rows(f"SELECT {head}{select} FROM {table} WHERE {where}{tail}", params)

    @_consistent
    def _tier_grouped(self, aggregates: Sequence[tuple[str, str]], table: str, where: str, params: list[Any],
                      f: Filter, group: Sequence[str], command: str | None = None) -> list[tuple[Any, ...]]:
        """``_grouped`` over the rollup rows covering ``f``, one statement per tier range (see :func:`_tiers`),
        the tiers' SUM/MIN/MAX combined here per group (a no-group question still answers one row)."""
        select = ", ".join(f"{fn}({col})" for fn, col in aggregates)
        width = len(group)
        out: dict[tuple[Any, ...], list[Any]] = {}
        for tier, tier_params in self._tiers(f, group):
            clause, clause_params = _only(tier, tier_params, command)
            for row in self._grouped(select, table, f"{where}{clause}", [*params, *clause_params], group):
                key, values = tuple(row[:width]), row[width:]
                have = out.get(key)
                if have is None:
                    out[key] = list(values)
                    continue
                for i, ((fn, _), value) in enumerate(zip(aggregates, values, strict=True)):
                    if value is not None:
                        have[i] = value if have[i] is None else _COMBINE[fn](have[i], value)
        return [(*key, *values) for key, values in out.items()]

    def apps(self, f: Filter) -> list[tuple[Any, ...]]:
        """Apps and versions inside the filter (app, version and days): runs from the tiered rollup, first
        and last day from app_days over all time, else from the daily rows of the range only."""
        counts = {(r[0], r[1]): r[2:] for r in self.invocations(f, ["service", "version"])}
        if f.since_day is None and f.until_day is None:
            apps, params = _where(f)
            days = self._rows(f"SELECT service, version, first_day, last_day FROM app_days WHERE 1 = 1{apps}", params)
        else:
            where, params = _where(f)
            days = self._rows(
                f"SELECT service, version, MIN(day), MAX(day) FROM r_metric WHERE metric = ? AND grain = 1{where}"
                " GROUP BY service, version",
                [INVOCATIONS, *params],
            )
        return [(s, v, *counts[(s, v)], first, last) for s, v, first, last in days if (s, v) in counts]

    def catalog(self) -> list[tuple[Any, ...]]:
        """Every app and version ever stored, whatever the filter (for pickers and typo checks)."""
        return self._rows("SELECT service, version FROM app_days ORDER BY service, version", [])

    def invocations(self, f: Filter, group: Sequence[str]) -> list[tuple[Any, ...]]:
        """(*group, invocations, errors); outcome and error_type are not groups of the invocation rollup."""
        return self._tier_grouped((("SUM", "value"), ("SUM", "errors")), "r_metric", "metric = ?", [INVOCATIONS],
                                  f, group)

    def metric_sum(self, f: Filter, metrics: Sequence[str], group: Sequence[str]) -> list[tuple[Any, ...]]:
        names, names_params = _in(metrics)
        return self._tier_grouped((("SUM", "value"),), "r_metric", names, names_params, f, group)

    @_consistent
    def buckets(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]:
        """(*group, lower, upper, count) per non-empty bucket, summed per layout in SQL."""
        where, params = _only(*self._tiered(f, group), command)
        names, names_params = _in(metrics)
        return self._bucket_rows(names, [*names_params, *params], where, group)

    def _bucket_rows(self, names: str, params: list[Any], where: str, group: Sequence[str]) -> list[Any]:
        keys = ", ".join([*_cols(group), "bounds"])
        sums = ", ".join(f"SUM(c{i})" for i in range(BUCKET_SLOTS))
        out = []
        width = len(group)
        sql = f"SELECT {keys}, {sums} FROM r_bucket WHERE {names}{where} GROUP BY {keys}"
        for row in self._conn.execute(sql, params):
            for lower, upper, n in expand(json.loads(row[width]), row[width + 1 :]):
                out.append((*row[:width], lower, upper, n))
        return out

    @_consistent
    def exponential(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]:
        """(*group, Buckets): the exponential rollup's rows merged per group (exactly, at the coarsest scale).

        Each tier's range is its own statement (see :func:`_tiers`); the merge is exact in any order."""
        merged: dict[tuple[Any, ...], Accumulator] = {}
        for where, params in self._tiers(f, group):
            self._exponential_rows(f, metrics, group, command, where, params, merged)
        return [(*key, acc.result()) for key, acc in merged.items()]

    def _exponential_rows(self, f: Filter, metrics: Sequence[str], group: Sequence[str], command: str | None,
                          where: str, params: list[Any], merged: dict[tuple[Any, ...], Accumulator]) -> None:
        names, names_params = _in(metrics)
        cols = _cols(group)
        head = ", ".join(cols) + ", " if cols else ""
        width = len(cols)
        if "command" not in group:  # the app version's all-commands rows
            rows_of = " AND command = ? AND service != ?"
        elif f.service is None and f.version is None and "service" not in group and "version" not in group:
            rows_of = " AND service = ? AND command != ?"  # the command's all-apps rows
        else:
            rows_of = " AND service != ? AND command != ?"
        params = [*params, ALL, ALL]
        if command is not None:  # that command's rows: over all apps when no app is asked for, else exact ones
            whole = f.service is None and f.version is None and "service" not in group and "version" not in group
            rows_of = " AND command = ? AND service = ?" if whole else " AND command = ? AND service != ?"
            params = [*params[:-2], command, ALL]
        sql = f"SELECT {head}buckets FROM r_exp WHERE {names}{where}{rows_of}"
        for row in self._conn.execute(sql, [*names_params, *params]):
            key = tuple(row[:width])
            acc = merged.get(key)
            if acc is None:
                acc = merged[key] = Accumulator()
            acc.add(decode_exponential(row[width]))

    def histogram_stats(
        self, f: Filter, metrics: Sequence[str], group: Sequence[str], *, command: str | None = None
    ) -> list[tuple[Any, ...]]:
        names, names_params = _in(metrics)
        return self._tier_grouped((("SUM", "count"), ("SUM", "sum"), ("MIN", "min"), ("MAX", "max")), "r_metric",
                                  names, names_params, f, group, command)

    @_consistent
    def metric_totals(self, f: Filter, prefix: str) -> list[tuple[Any, ...]]:
        where, params = self._tiered(f, ["metric"])
        # a range on the primary key's first column (LIKE with ESCAPE cannot use it: a full scan per report)
        above = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        rows = self._rows(
            "SELECT metric, kind, CASE kind WHEN 'histogram' THEN SUM(count) ELSE SUM(value) END FROM r_metric"
            f" WHERE metric >= ? AND metric < ? AND kind != 'gauge'{where} GROUP BY metric, kind",
            [prefix, above, *params],
        )
        rows += self._rows(  # SQLite: the bare column comes from the row holding MAX(last_ns)
            "SELECT metric, kind, value FROM (SELECT metric, kind, value, MAX(last_ns) FROM r_metric"
            f" WHERE metric >= ? AND metric < ? AND kind = 'gauge'{where} GROUP BY metric)",
            [prefix, above, *params],
        )
        return rows

    @_consistent
    def environment(self, f: Filter) -> list[tuple[Any, ...]]:
        where, params = self._tiered(f, ["key"])
        return self._rows(
            f"SELECT key, value, SUM(invocations) FROM r_env WHERE 1 = 1{where} GROUP BY key, value", params
        )

    def _version(self, f: Filter) -> tuple[str, list[Any]]:
        sql = " AND version = ?"
        params: list[Any] = [f.version if f.version is not None else "*"]
        if f.service is not None:
            sql += " AND service = ?"
            params.append(f.service)
        return sql, params

    def active(self, f: Filter, period: str) -> list[tuple[Any, ...]]:
        """Distinct installations per day or per (Monday-based) week; weeks overlapping the range count whole."""
        kind = "d" if period == "day" else "w"
        apps, params = self._version(f)
        bounds = ""
        if f.since_day is not None:
            bounds += " AND period >= ?"
            params.append(f.since_day if kind == "d" else (f.since_day + 3) // 7)
        if f.until_day is not None:
            bounds += " AND period <= ?"
            params.append(f.until_day if kind == "d" else (f.until_day + 3) // 7)
        return self._rows(
            f"SELECT period, SUM(n) FROM active_count WHERE kind = ?{apps}{bounds} GROUP BY period", [kind, *params]
        )

    def installations(self, f: Filter) -> int:
        apps, params = self._version(f)
        if f.since_day is None and f.until_day is None:
            sql = f"SELECT COUNT(DISTINCT installation_id) FROM installations WHERE 1 = 1{apps}"
        else:
            where, days = _where(Filter(since_day=f.since_day, until_day=f.until_day), day="period", apps=False)
            sql = f"SELECT COUNT(DISTINCT installation_id) FROM active WHERE kind = 'd'{apps}{where}"
            params += days
        return int(self._conn.execute(sql, params).fetchone()[0] or 0)

    def sessions(self, f: Filter) -> list[tuple[Any, ...]]:
        where, params = _where(f)
        return self._rows(
            f"SELECT kind, lo, hi, SUM(n) FROM r_session WHERE kind IN ('commands', 'length_s'){where}"
            " GROUP BY kind, lo, hi HAVING SUM(n) > 0",
            params,
        )

    def session_stats(self, f: Filter, quantiles: Sequence[float]) -> list[tuple[Any, ...]]:
        """Exact per-session values: the rollup finds the bucket holding each rank, the sessions table (by
        the index on the same expression) the value inside it; commands are kept exactly in the rollup."""
        where, params = _where(f)
        counts: dict[str, list[tuple[float, float, int]]] = {"length_s": [], "commands": []}
        for kind, lo, hi, n in self.sessions(f):
            if kind in counts:
                counts[kind].append((float(lo), float(hi), int(n)))
        out = []
        for kind, buckets in counts.items():
            buckets.sort()
            total = sum(n for _, _, n in buckets)
            if total <= 0:
                continue
            ranks = [1, total, *(max(1, math.ceil(q * total - 1e-9)) for q in quantiles)]
            values = []
            for rank in ranks:
                seen = 0
                for lo, hi, n in buckets:
                    if seen + n >= rank:
                        values.append(lo if lo == hi else self._session_value(kind, lo, hi, rank - seen, where, params))
                        break
                    seen += n
            out.append((kind, total, *values))
        return out

    def _session_value(self, kind: str, lo: float, hi: float, k: int, where: str, params: list[Any]) -> float:
        """The k-th smallest session value in (lo, hi] under the filter (an index range, not a table scan)."""
        expr = "(last_ns - first_ns) / 1e9" if kind == "length_s" else "commands"
        row = self._conn.execute(
            f"SELECT {expr} FROM sessions WHERE {expr} > ? AND {expr} <= ?{where} ORDER BY {expr} LIMIT 1 OFFSET ?",
            [lo, hi, *params, k - 1],
        ).fetchone()
        return float(row[0]) if row is not None else hi

    def open_sessions(self, f: Filter, since_ns: int, until_ns: int) -> int:
        """Sessions with a command in [since_ns, until_ns]: a clock ahead of ours does not make one open."""
        where, params = _where(f)
        row = self._conn.execute(
            f"SELECT COUNT(*) FROM sessions WHERE last_ns >= ? AND last_ns <= ?{where}", [since_ns, until_ns, *params]
        )
        return int(row.fetchone()[0])

    def limits(self, f: Filter) -> list[tuple[Any, ...]]:
        if f.service is None:
            return self._rows("SELECT what, SUM(n) FROM limits GROUP BY what", [])
        return self._rows("SELECT what, SUM(n) FROM limits WHERE service IN (?, '') GROUP BY what", [f.service])

    @_consistent
    def error_groups(self, f: Filter) -> list[tuple[Any, ...]]:
        """Error counters by app, version, metric, error type, stack signature and command, over the filter
        (the error rollup's weekly rows for whole weeks, daily rows at the edges, as every section)."""
        names, names_params = _in(ERROR_METRICS)
        cols = "service, version, metric, error_type, signature, command"
        if f.since_day is None and f.until_day is None:  # all time: the all-time tier holds one row per key
            where, params = _where(f)
            sql = f"SELECT {cols}, n FROM r_error WHERE {names} AND grain = 0 AND day = 0{where} AND n != 0"
        else:
            where, params = self._tiered(f, [])
            sql = (f"SELECT {cols}, SUM(n) FROM r_error WHERE {names}{where}"
                   " GROUP BY metric, service, version, command, error_type, signature HAVING SUM(n) != 0")
        return self._conn.execute(sql, [*names_params, *params]).fetchall()  # tuples already: thousands of rows

    def first_seen(self, service: str | None) -> list[tuple[Any, ...]]:
        """Each app version's first day, over all time (app_days: one row per app version)."""
        if service is None:
            return self._rows("SELECT service, version, first_day FROM app_days", [])
        return self._rows("SELECT service, version, first_day FROM app_days WHERE service = ?", [service])

    def stored(self) -> dict[str, int]:
        return stored_counts(self._conn)
