"""Errors grouped by (app, error type, stack signature): every figure against ground truth, on both engines.

The data is generated here (three apps, semantic and non-semantic versions, a backport, signatures that
appear in new versions only, errors without a signature, handled exceptions), sent as gzip OTLP/protobuf to
a real backend on 127.0.0.1 and loaded into chDB the way the collector's ClickHouse exporter writes it.
The expected section is computed from the generated events alone, with each app's release order written
out by hand, for every filter; the embedded report, the ClickHouse report and the JSON API must match it.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.error_groups import NO_STACK, error_groups, version_key, version_order
from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.limits import Limits
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import build_report, render_report
from otel_expansion.backend.rollup import DAY_NS, SIGNATURE
from otel_expansion.backend.server import serve
from otel_expansion.backend.store import SCHEMA_VERSION, Store, open_readonly

from .chdb_loader import ChdbDatabase
from .conftest import LiveServer, metrics_request, ns, span, sum_metric, traces_request

LONG = " > ".join(f"alpha.layer{i}.module_with_a_long_name:function_number_{i}" for i in range(8)) + " > …"
RELEASES = {  # app -> [(version, first day)] in release order (the truth the report must find)
    "alpha": [("0.9.0", 1), ("1.2.0", 3), ("1.10.0", 8), ("2.0.0rc1", 13), ("2.0.0", 17), ("2.0.1", 22)],
    "beta": [("nightly-2024a", 2), ("build-7", 9), ("rolling", 16)],
    "gamma": [("3.1", 4)],
}
# the order by semantic version: a backport (1.2.1) released after 2.0.0 is still older than it
RELEASES["alpha"].insert(2, ("1.2.1", 19))
FAULTS = {  # (app, version) -> [(error type, signature, command or None for a handled exception)]
    "alpha": {
        "0.9.0": [("ValueError", "", "sync"), ("KeyError", "", None)],  # a release from before signatures
        "*": [("ValueError", "alpha.cli:main > alpha.sync:run > alpha.sync:_parse", "sync"),
              ("ValueError", "alpha.cli:main > alpha.sync:run > alpha.sync:_parse", "push"),
              ("ConnectionError", LONG, "push"),
              ("KeyError", "alpha.cli:main > alpha.cache:get", None)],
        "2.0.0": [("TimeoutError", "alpha.cli:main > alpha.net:retry > alpha.net:wait", "pull")],
        "2.0.1": [("TimeoutError", "alpha.cli:main > alpha.net:retry > alpha.net:wait", "pull"),
                  ("OSError", "alpha.cli:main > alpha.fs:write", "init")],
    },
    "beta": {
        "*": [("RuntimeError", "beta.app:run > beta.jobs:schedule", "schedule")],
        "build-7": [("ZeroDivisionError", "beta.app:run > beta.stats:mean", "stats")],
        "rolling": [("ZeroDivisionError", "beta.app:run > beta.stats:mean", "stats"),
                    ("IndexError", "beta.app:run > beta.jobs:pick", "schedule"),
                    ("IndexError", "beta.app:run > beta.jobs:pick", None)],
    },
    "gamma": {"*": [("ValueError", "gamma:main", "go"), ("ValueError", "", "go")]},
}
COMMANDS = ("sync", "push", "pull", "init", "schedule", "stats", "go")
MONDAY = 6  # 2024-05-06 is a Monday: ranges across it read weekly rows and daily edges
FILTERS = [
    Filter(),
    Filter(service="alpha"),
    Filter(service="beta"),
    Filter(service="gamma"),
    Filter(service="alpha", version="2.0.0"),
    Filter(version="3.1"),
    Filter(since_day=ns(10) // DAY_NS),
    Filter(until_day=ns(12) // DAY_NS),
    Filter(since_day=ns(MONDAY - 2) // DAY_NS, until_day=ns(MONDAY + 15) // DAY_NS),
    Filter(service="alpha", since_day=ns(18) // DAY_NS),
    Filter(service="alpha", since_day=ns(20) // DAY_NS, until_day=ns(24) // DAY_NS),
    Filter(service="beta", since_day=ns(MONDAY + 7) // DAY_NS, until_day=ns(MONDAY + 13) // DAY_NS),
    Filter(service="nobody"),
]


@dataclass(frozen=True)
class Event:
    service: str
    version: str
    day: int  # day of May 2024
    command: str  # "" for a handled exception
    error_type: str  # "" for a successful run
    signature: str
    handled: bool
    n: int


def generate(seed: int = 23) -> tuple[list[Event], list[tuple[str, Any]]]:
    """Events (the truth) and the OTLP requests that carry them: one send per installation and active day."""
    rng = random.Random(seed)
    events: list[Event] = []
    requests: list[tuple[str, Any]] = []
    trace = 1000
    for service, releases in RELEASES.items():
        for version, first in releases:
            faults = FAULTS[service].get(version, FAULTS[service]["*"])
            if version in FAULTS[service] and version != "0.9.0":
                faults = FAULTS[service]["*"] + faults
            for installation in range(2):
                for day in range(first + installation, min(first + 12, 28) + 1, 2):
                    resource = {"service.name": service, "service.version": version,
                                "otel_expansion.installation.id": f"{service}-{version}-{installation}"}
                    sent: list[Event] = []
                    for command in COMMANDS[:4] if service == "alpha" else COMMANDS[4:]:
                        sent.append(Event(service, version, day, command, "", "", False, rng.randint(3, 30)))
                    for error_type, signature, command in rng.sample(faults, rng.randint(1, len(faults))):
                        sent.append(Event(service, version, day, command or "", error_type, signature, command is None,
                                          rng.randint(1, 6)))
                    events += sent
                    requests += _requests(resource, sent, ns(day, 9 + installation), trace)
                    trace += 100
    return events, requests


def _requests(resource: dict[str, Any], sent: list[Event], end: int, trace: int) -> list[tuple[str, Any]]:
    invocations, errors, handled, spans = [], [], [], []
    for i, e in enumerate(sent):
        sig = {SIGNATURE: e.signature} if e.signature else {}
        if e.handled:
            handled.append(({"error.type": e.error_type, "exception.handled": True, **sig}, e.n, end))
        elif e.error_type:
            failed = {"cli.command.name": e.command, "cli.command.outcome": "error", "error.type": e.error_type}
            invocations.append((failed, e.n, end))
            errors.append(({"cli.command.name": e.command, "error.type": e.error_type, **sig}, e.n, end))
            spans.append(span(e.command, {**failed, **sig}, end - 10**9, end - 10**8, trace, trace + i, error=True))
        else:
            invocations.append(({"cli.command.name": e.command, "cli.command.outcome": "success"}, e.n, end))
    metrics = [sum_metric("cli.command.invocations", invocations)]
    if errors:
        metrics.append(sum_metric("cli.command.errors", errors))
    if handled:
        metrics.append(sum_metric("cli.exceptions.handled", handled))
    out: list[tuple[str, Any]] = [("metrics", metrics_request((resource, metrics)))]
    if spans:
        out.append(("traces", traces_request((resource, spans))))
    return out


def expected(events: list[Event], f: Filter) -> dict[str, Any]:
    """The section computed from the events alone, with RELEASES as the version order."""
    def inside(e: Event) -> bool:
        day = ns(e.day) // DAY_NS
        return ((f.service is None or e.service == f.service) and (f.version is None or e.version == f.version)
                and (f.since_day is None or day >= f.since_day) and (f.until_day is None or day <= f.until_day))

    rank = {s: {v: i for i, (v, _) in enumerate(sorted(r, key=lambda vr: version_rank(s, vr[0])))}
            for s, r in RELEASES.items()}
    chosen = [e for e in events if inside(e)]
    ran: dict[str, set[str]] = defaultdict(set)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in chosen:
        ran[e.service].add(e.version)
        if not e.error_type:
            continue
        g = groups.setdefault((e.service, e.error_type, e.signature), {
            "failed": 0, "handled": 0, "commands": defaultdict(int), "versions": defaultdict(int)})
        g["handled" if e.handled else "failed"] += e.n
        if e.command:
            g["commands"][e.command] += e.n
        g["versions"][e.version] += e.n
    newest = {s: max(vs, key=lambda v: rank[s][v]) for s, vs in ran.items()}
    older = {s: sum(1 for v in vs if rank[s][v] < rank[s][newest[s]]) for s, vs in ran.items()}
    out = []
    for (service, error_type, signature), g in groups.items():
        versions = sorted(g["versions"], key=lambda v: rank[service][v])
        commands = sorted(g["commands"].items(), key=lambda kv: (-kv[1], kv[0]))
        out.append({
            "service": service, "error_type": error_type, "signature": signature or NO_STACK,
            "has_stack": bool(signature), "count": g["failed"] + g["handled"], "failed": g["failed"],
            "handled": g["handled"], "commands_affected": len(commands),
            "commands": [{"command": c, "count": n} for c, n in commands],
            "versions": [{"version": v, "count": g["versions"][v]} for v in versions],
            "first_version": versions[0], "last_version": versions[-1],
            "new_in_version": newest[service] if versions[0] == newest[service] and older[service] else None,
        })
    out.sort(key=lambda e: (-e["count"], e["service"], e["error_type"], e["signature"]))
    return {"groups": out, "not_listed": {"groups": 0, "count": 0}, "newest_versions": [] if not groups else [
        {"service": s, "version": newest[s], "older_versions": older[s]}
        for s in sorted(ran) if any(k[0] == s for k in groups)]}


def version_rank(service: str, version: str) -> tuple[int, ...]:
    """The hand-written truth: alpha by semantic version, beta and gamma by release day."""
    order = {"alpha": ["0.9.0", "1.2.0", "1.2.1", "1.10.0", "2.0.0rc1", "2.0.0", "2.0.1"],
             "beta": ["nightly-2024a", "build-7", "rolling"], "gamma": ["3.1"]}
    return (order[service].index(version),)


@dataclass
class Loaded:
    events: list[Event]
    server: LiveServer
    chdb: ChdbDatabase


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The generated data POSTed as gzip OTLP to a real backend on 127.0.0.1, and loaded into chDB."""
    events, requests = generate()
    db = tmp_path_factory.mktemp("errors") / "backend.sqlite"
    ports: list[int] = []
    bound, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, daemon=True, kwargs={
        "host": "127.0.0.1", "port": 0, "db_path": db, "ready": lambda p: (ports.append(p), bound.set()),
        "stop": stop, "retention_days": 0})
    thread.start()
    assert bound.wait(10)
    server = LiveServer(ports[0], db)
    chdb = ChdbDatabase()
    for signal, message in requests:
        assert server.post(signal, message, gzip_body=True).status == 200
        chdb.load(signal, message)
    yield Loaded(events, server, chdb)
    stop.set()
    thread.join(10)
    chdb.close()


def comparable(section: dict[str, Any]) -> dict[str, Any]:
    """Every figure; ``commands`` lists the top ten, so the truth is cut the same way."""
    return {**section, "groups": [{**g, "commands": g["commands"][:10]} for g in section["groups"]]}


@pytest.mark.parametrize("report_filter", FILTERS, ids=repr)
def test_every_figure_matches_the_truth_on_both_engines(loaded: Loaded, report_filter: Filter) -> None:
    truth = comparable(expected(loaded.events, report_filter))
    if report_filter.service != "nobody":
        assert truth["groups"], "the filter selects errors"
    sqlite = SQLiteEngine(open_readonly(loaded.server.db_path))
    try:
        embedded = error_groups(sqlite, report_filter)
    finally:
        sqlite.close()
    fleet = error_groups(loaded.chdb.engine(), report_filter)
    assert embedded == truth
    assert fleet == truth


def test_the_data_covers_what_the_section_must_get_right(loaded: Loaded) -> None:
    """The unfiltered section holds the cases the definitions are about (so the comparisons above test them)."""
    groups = expected(loaded.events, Filter())["groups"]
    by = {(g["service"], g["error_type"], g["signature"]): g for g in groups}
    assert by[("alpha", "ValueError", NO_STACK)]["versions"] == [  # only the release from before signatures
        {"version": "0.9.0", "count": by[("alpha", "ValueError", NO_STACK)]["count"]}]
    timeout = by[("alpha", "TimeoutError", "alpha.cli:main > alpha.net:retry > alpha.net:wait")]
    assert (timeout["first_version"], timeout["last_version"], timeout["new_in_version"]) == ("2.0.0", "2.0.1", None)
    assert by[("alpha", "OSError", "alpha.cli:main > alpha.fs:write")]["new_in_version"] == "2.0.1"
    assert by[("beta", "IndexError", "beta.app:run > beta.jobs:pick")]["new_in_version"] == "rolling"
    assert by[("beta", "IndexError", "beta.app:run > beta.jobs:pick")]["handled"] > 0
    assert by[("beta", "IndexError", "beta.app:run > beta.jobs:pick")]["failed"] > 0
    assert by[("alpha", "ValueError", "alpha.cli:main > alpha.sync:run > alpha.sync:_parse")]["commands_affected"] == 2
    assert by[("alpha", "ConnectionError", LONG)]["last_version"] == "2.0.1"  # by semver, not by release day
    assert all(g["new_in_version"] is None for g in groups if g["service"] == "gamma")  # one version: no baseline
    only_new = expected(loaded.events, Filter(service="alpha", version="2.0.1"))["groups"]
    assert only_new and all(g["new_in_version"] is None for g in only_new)


def test_a_cut_list_keeps_every_new_group_and_counts_the_rest(loaded: Loaded) -> None:
    """With room for three groups: the three most frequent, then every new one; the rest counted, not lost."""
    truth = comparable(expected(loaded.events, Filter()))["groups"]
    listed = truth[:3] + [g for g in truth[3:] if g["new_in_version"]]
    assert len(listed) > 3
    rest = truth[3:]
    sqlite = SQLiteEngine(open_readonly(loaded.server.db_path))
    try:
        for engine in (sqlite, loaded.chdb.engine()):
            section = error_groups(engine, Filter(), limit=3)
            assert section["groups"] == listed
            assert section["not_listed"] == {"groups": len(rest) - len(listed) + 3,
                                             "count": sum(g["count"] for g in rest if not g["new_in_version"])}
    finally:
        sqlite.close()


def test_api_serves_the_section_under_every_filter(loaded: Loaded) -> None:
    """/api/report carries the same section, with the filter taken from the query string."""
    for query, f in (("", Filter()), ("?service=beta", Filter(service="beta")),
                     ("?service=alpha&version=1.10.0", Filter(service="alpha", version="1.10.0")),
                     ("?since=2024-05-10&until=2024-05-20", Filter(since_day=ns(10) // DAY_NS,
                                                                      until_day=ns(20) // DAY_NS))):
        response = loaded.server.request("GET", "/api/report" + query)
        assert response.status == 200
        assert json.loads(response.body)["error_groups"] == comparable(expected(loaded.events, f)), query


def test_text_report_shows_whole_signatures_and_new(loaded: Loaded) -> None:
    """`otel-expansion report` prints each signature whole (the 8-frame one too) and marks what is new."""
    text = render_report(build_report(loaded.server.db_path, service="alpha"))
    section = text.split("Errors by stack signature")[1].split("\n\n")[0]
    assert LONG in section
    assert "alpha 2.0.1" in section.splitlines()[0]
    line = next(x for x in section.splitlines() if "alpha.fs:write" in x)
    assert "OSError" in line and " NEW " in line and "2.0.1" in line
    assert NO_STACK in section


# ------------------------------------------------------------------------------------------ versions


@pytest.mark.parametrize("older, newer", [
    ("1.2.0", "1.10.0"), ("1.9", "1.10"), ("1.0.0.dev1", "1.0.0a1"), ("1.0.0a1", "1.0.0b2"), ("1.0.0b2", "1.0.0rc1"),
    ("1.0.0rc1", "1.0.0"), ("1.0.0-alpha.1", "1.0.0-rc.1"), ("1.0.0", "1.0.0.post1"), ("v2.0.0", "v10.0.0"),
    ("1.0.0rc1.dev2", "1.0.0rc1"), ("0.9.9", "1.0.0+build.5"),
])
def test_semantic_versions_compare_by_precedence(older: str, newer: str) -> None:
    a, b = version_key(older), version_key(newer)
    assert a is not None and b is not None and a < b


def test_equal_and_unparseable_versions() -> None:
    assert version_key("1.2") == version_key("1.2.0") == version_key("1.2.0+local")
    assert version_key("1.0.0-alpha") == version_key("1.0.0a0")
    for text in ("nightly", "build-7", "", "1.0.0-foo", "main@abc123", "(other)"):
        assert version_key(text) is None, text


def test_version_order_falls_back_to_first_seen_when_any_version_is_not_semantic() -> None:
    assert version_order(["1.10.0", "1.2.0"], {"1.10.0": 1, "1.2.0": 5}) == {"1.2.0": 0, "1.10.0": 1}
    days = {"1.10.0": 1, "1.2.0": 5, "nightly": 3}
    assert version_order(days, days) == {"1.10.0": 0, "nightly": 1, "1.2.0": 2}
    assert version_order(["b", "a", "c"], {"b": 2}) == {"b": 0, "a": 1, "c": 2}  # never seen: last, by name


# ------------------------------------------------------------------------------------- store, limits


def test_schema_three_store_is_upgraded_and_keeps_its_error_counts(tmp_path: Path) -> None:
    """A store from before signatures (schema 3: no error rollup) opens with its errors grouped by type as
    "(no stack)", counts unchanged; errors sent afterwards with signatures group beside them."""
    db = tmp_path / "round3.sqlite"
    events, requests = generate()
    metrics = [r for r in requests if r[0] == "metrics"]
    old = metrics[:40]
    with Store(db) as store:
        for signal, message in old:
            store.write(signal, flatten(signal, message))
    before = build_report(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE r_error")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    upgraded = build_report(db)
    assert open_readonly(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    for section in set(before) - {"generated_ns", "error_groups"}:
        assert upgraded[section] == before[section], section
    groups = upgraded["error_groups"]["groups"]
    assert groups and all(g["signature"] == NO_STACK and not g["has_stack"] for g in groups)
    by_type: dict[tuple[str, str], int] = defaultdict(int)
    for g in before["error_groups"]["groups"]:
        by_type[(g["service"], g["error_type"])] += g["count"]
    assert {(g["service"], g["error_type"]): g["count"] for g in groups} == by_type
    assert sum(g["failed"] for g in groups) == before["errors"]["unhandled"]
    assert sum(g["handled"] for g in groups) == before["errors"]["handled"]
    with Store(db) as store:  # new data, with signatures, after the upgrade
        for signal, message in metrics[len(old):]:
            store.write(signal, flatten(signal, message))
    after = build_report(db)["error_groups"]["groups"]
    assert any(g["has_stack"] for g in after)
    assert sum(g["count"] for g in after) == sum(e.n for e in events if e.error_type)


def test_signatures_obey_the_ingest_limits(tmp_path: Path) -> None:
    """A signature longer than signature_chars is cut (counted), past distinct_values it is (other) (counted):
    no error is dropped, every count still adds up."""
    db = tmp_path / "limits.sqlite"
    resource = {"service.name": "lim", "service.version": "1.0.0"}
    points = [({"cli.command.name": "go", "error.type": "E", SIGNATURE: f"lim:f{i}"}, 1, ns(1)) for i in range(5)]
    points.append(({"cli.command.name": "go", "error.type": "E", SIGNATURE: "lim:" + "x" * 5000}, 1, ns(1)))
    request = metrics_request((resource, [sum_metric("cli.command.errors", points)]))
    with Store(db, Limits(distinct_values=4, signature_chars=64)) as store:
        store.write("metrics", flatten("metrics", request))
    report = build_report(db)
    signatures = {g["signature"]: g["count"] for g in report["error_groups"]["groups"]}
    assert sum(signatures.values()) == 6
    assert signatures["(other)"] == 2  # the fifth ordinary one and the cut long one: the dimension is full
    assert [s for s in signatures if s.startswith("lim:f")] == [f"lim:f{i}" for i in range(4)]
    limits = {x["what"]: x["count"] for x in report["limits"]}
    assert limits["truncated error signature"] == 1
    assert any(k.startswith("over 4 distinct") for k in limits)
