"""The report's "errors by stack signature" section: errors grouped by (app, error type, signature).

A signature is the privacy-safe stack the SDK attaches to its error counters (``cli.error.signature``:
``module:function`` frames, outermost first, joined by `` > ``; only the frames the collection level
allows). Errors sent without one (no frame allowed, or older releases) group by app and error type alone
and show as ``(no stack)``. Counts come from the error counters (``cli.command.errors``: failed commands;
``cli.exceptions.handled``: exceptions passed to record_exception), like every count of the report.

Versions of one app are ordered by semantic version when every version of the app parses as one (PEP 440
pre-releases, dev and post releases understood), otherwise all by the day each was first seen (all time,
whatever the filter: the order of releases is a property of the app), ties by name.

"New in this version", precisely: the app's newest version among the versions with invocations or errors
inside the filter is V; a group is new in V when it was seen in V, in no older version inside the filter,
and at least one older version of the app ran inside the filter (without one there is nothing to compare
with, so nothing is called new: with a version filter, or an app with one version in range). Every
filter (app, version, days) applies to every figure of the section; widen the range to compare with
older releases.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from otel_expansion.backend.query import Engine, Filter
from otel_expansion.sdk import signals

__all__ = ["LISTED", "NO_STACK", "error_groups", "render_error_groups", "version_key", "version_order"]

NO_STACK = "(no stack)"
"""How a group of errors sent without a signature is shown."""
UNKNOWN = "(unknown)"
_TOP_COMMANDS = 10
LISTED = 200
"""Groups the section lists (most frequent first; groups new in the newest version are always listed)."""
_VERSION = re.compile(
    r"^[vV]?(?P<release>\d+(?:\.\d+){0,3})"
    r"(?:[-_.]?(?P<phase>dev|a|alpha|b|beta|c|rc|pre|preview|post)[-_.]?(?P<n>\d*))?"
    r"(?:[-_.]?(?P<phase2>dev|post)[-_.]?(?P<n2>\d*))?"
    r"(?:\+[0-9A-Za-z.-]*)?$"
)
_PHASES = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "c": 3, "rc": 3, "pre": 3, "preview": 3, "post": 5}
_RELEASE = 4


def version_key(version: str) -> tuple[int, ...] | None:
    """A sortable key for a semantic (or PEP 440) version, None when it is not one.

    ``1.2`` == ``1.2.0``; ``1.0.0.dev1`` < ``1.0.0a1`` == ``1.0.0-alpha.1`` < ``1.0.0rc1`` < ``1.0.0`` <
    ``1.0.0.post1``; build metadata (``+...``) is ignored, as semantic versioning says.
    """
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    release = [int(part) for part in match["release"].split(".")]
    release += [0] * (4 - len(release))
    phase, number = _RELEASE, 0
    if match["phase"]:
        phase, number = _PHASES[match["phase"].lower()], int(match["n"] or 0)
    sub_phase, sub_number = _RELEASE, 0  # 1.0.0rc1.dev2 < 1.0.0rc1; 1.0.0.post1.dev1 < 1.0.0.post1
    if match["phase2"]:
        if match["phase2"] == "post" and phase != _RELEASE:
            return None
        sub_phase, sub_number = (0 if match["phase2"] == "dev" else 5), int(match["n2"] or 0)
    return (*release, phase, number, sub_phase, sub_number)


def version_order(versions: Iterable[str], first_day: dict[str, int]) -> dict[str, int]:
    """Rank of each version of one app (0 = oldest): by semantic version if every one parses, else by the day
    first seen (unknown days last), ties by name."""
    names = sorted(set(versions))
    keys = {v: version_key(v) for v in names}
    if all(k is not None for k in keys.values()):
        ordered = sorted(names, key=lambda v: (keys[v], v))
    else:
        never = max(first_day.values(), default=0) + 1
        ordered = sorted(names, key=lambda v: (first_day.get(v, never), v))
    return {v: i for i, v in enumerate(ordered)}


def _number(value: float) -> float | int:
    return int(value) if value == int(value) else float(f"{value:.12g}")


def _text(value: Any, empty: str = UNKNOWN) -> str:
    return empty if value in (None, "") else str(value)


def error_groups(engine: Engine, f: Filter, limit: int = LISTED) -> dict[str, Any]:
    """The section as JSON-ready data: ``groups`` (the ``limit`` most frequent, then every other group new in
    its app's newest version, most frequent first), ``not_listed`` (how many groups and errors the cut left
    out: at the distinct-values limit one app alone may hold a thousand signatures) and each app's
    ``newest_versions``."""
    # per (app, error type, signature): [failed, handled, {command: n}, {version: n}] (plain lists: thousands of rows)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    present: dict[str, set[str]] = defaultdict(set)
    handled_metric = signals.HANDLED
    for service, version, metric, error_type, signature, command, n in engine.error_groups(f):
        key = (service, error_type, signature)
        group = groups.get(key)
        if group is None:
            group = groups[key] = [0.0, 0.0, {}, {}]
        group[1 if metric == handled_metric else 0] += n
        if command:
            commands = group[2]
            commands[command] = commands.get(command, 0.0) + n
        versions = group[3]
        versions[version] = versions.get(version, 0.0) + n
        present[service].add(version)
    if not groups:
        return {"groups": [], "not_listed": {"groups": 0, "count": 0}, "newest_versions": []}
    for service, version, *_ in engine.invocations(f, ["service", "version"]):
        if service in present:
            present[service].add(version)
    first_day: dict[str, dict[str, int]] = defaultdict(dict)
    for s, v, first in engine.first_seen(f.service):  # all time, whatever the filter: the order of releases
        first_day[s][v] = int(first)
    order = {s: version_order(set(first_day[s]) | present[s], first_day[s]) for s in present}
    newest: dict[str, tuple[str, int]] = {}
    for service, versions in present.items():
        ranks = order[service]
        top = max(versions, key=lambda v: ranks[v])
        newest[service] = (top, sum(1 for v in versions if ranks[v] < ranks[top]))
    ranked = sorted(groups.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
    out: list[dict[str, Any]] = []
    left_out = [0, 0.0]  # groups and errors not listed
    for i, ((service, error_type, signature), (failed, handled, by_command, by_version)) in enumerate(ranked):
        ranks = order[service]
        seen = [v for v, n in by_version.items() if n]
        if not seen:
            continue
        top, older = newest[service]
        first = min(seen, key=ranks.__getitem__)
        new = first == top and older > 0
        if i >= limit and not new:
            left_out[0] += 1
            left_out[1] += failed + handled
            continue
        seen.sort(key=ranks.__getitem__)
        commands = sorted(by_command.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append({
            "service": _text(service),
            "error_type": _text(error_type),
            "signature": _text(signature, NO_STACK),
            "has_stack": signature != "",
            "count": _number(failed + handled),
            "failed": _number(failed),
            "handled": _number(handled),
            "commands_affected": len(commands),
            "commands": [{"command": c, "count": _number(n)} for c, n in commands[:_TOP_COMMANDS]],
            "versions": [{"version": _text(v), "count": _number(by_version[v])} for v in seen],
            "first_version": _text(first),
            "last_version": _text(seen[-1]),
            "new_in_version": _text(top) if new else None,
        })
    return {
        "groups": out,
        "not_listed": {"groups": left_out[0], "count": _number(left_out[1])},
        "newest_versions": [
            {"service": _text(s), "version": _text(v), "older_versions": older}
            for s, (v, older) in sorted(newest.items())
        ],
    }


def render_error_groups(section: dict[str, Any], table: Any, count: Any, shown: int = 15) -> list[str]:
    """The section as text lines (``table`` and ``count`` are the report's own helpers): one row per group,
    the signature whole in the last column (never cut: a terminal wraps it)."""
    groups = section["groups"]
    if not groups:
        return []
    apps = len({g["service"] for g in groups}) > 1
    newest = ", ".join(f"{n['service']} {n['version']}" for n in section["newest_versions"] if n["older_versions"])
    out = ["", "Errors by stack signature (failed commands + handled exceptions; NEW: first seen in the newest"
           " version" + (f": {newest})" if newest else ")")]
    rows = [
        ([g["service"]] if apps else []) + [
            g["error_type"], count(g["count"]), str(g["commands_affected"]), g["first_version"], g["last_version"],
            "NEW" if g["new_in_version"] else "", g["signature"],
        ]
        for g in groups[:shown]
    ]
    headers = (["app"] if apps else []) + ["error.type", "count", "commands", "first seen", "last seen", "new",
                                          "signature (outermost frame first)"]
    out += table(headers, rows, ("l" if apps else "") + "lrrlll" + "l")
    if len(groups) > shown:
        out.append(f"  ({shown} of {len(groups)} shown; --json for more)")
    rest = section["not_listed"]
    if rest["groups"]:
        out.append(f"  ({count(rest['groups'])} rarer groups with {count(rest['count'])} errors not listed)")
    return out
