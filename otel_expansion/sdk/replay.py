"""Replay of journal records through the SDK: one pipeline per (resource, level), staged until commit.

The replayer knows records and the SDK, nothing of files or the spool: the orchestrator reads records,
hands them here, and commits what ``take()`` returns together with their ids in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, cast

from otel_expansion.config import Level, Settings
from otel_expansion.otlp.model import Attrs, AttrValue, MetricPoint, SpanRecord, attrs_of
from otel_expansion.sdk.pipeline import Pipeline
from otel_expansion.sdk.staging import Staging

DAY_NS = 86_400 * 10**9
"""One UTC day (as ``spool.merge.DAY_NS``; the sdk layer does not import the spool)."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_expansion.journal.record import Record
    from otel_expansion.privacy.redaction import Redactor

log = logging.getLogger("otel_expansion.sdk")


class Replayer:
    """Turns recorded runs into spans and aggregated metric points with their original timestamps."""

    def __init__(self, settings: Settings, redactor: Redactor | None = None, staging: Staging | None = None,
                 ceiling: int | None = None) -> None:
        """``redactor`` and ``staging``: a service's own (its export thread replays what it spilled through
        the pipeline it already has, seeded into ``pipelines``). ``ceiling``: the most the user allows now
        (``consent.level_ceiling``): a record made at a higher level is replayed at this one, its level
        filter and views dropping what this level does not allow (the counts stay)."""
        self.ceiling = ceiling
        if redactor is None:
            from otel_expansion.privacy.redaction import Redactor

            redactor = Redactor(settings.redact_patterns, settings.redact_allow, settings.hash_salt)
        self.redactor = redactor
        self.staging = Staging() if staging is None else staging
        self.pipelines: dict[tuple[Attrs, int], Pipeline] = {}

    def pipeline(self, resource: Mapping[str, AttrValue], level: int) -> Pipeline:
        key = (attrs_of(resource), level)
        if key not in self.pipelines:
            self.pipelines[key] = Pipeline(resource, Level(level), self.redactor, self.staging)
        return self.pipelines[key]

    def replay(self, records: Iterable[Record]) -> tuple[list[MetricPoint], list[SpanRecord]]:
        """Replay ``records`` and return the staged rows; a record that cannot be replayed is logged, skipped.

        One collection per UTC day of the commands (the day each ended), stamped with that day's commands'
        time range: a series gives one delta point per day, never one spanning days (runs recorded offline
        on three days and sent at once count on their three days). A record whose commands ran on several
        days is replayed as one part per day (:func:`by_day`)."""
        days: dict[int | None, list[tuple[Record, int]]] = {}
        for record in records:
            try:
                level = int(record.get("level", 0))
                if self.ceiling is not None:
                    level = min(level, int(self.ceiling))
                if level <= 0:
                    continue
                for day, part in by_day(record):
                    days.setdefault(day, []).append((part, level))
            except Exception as exc:
                log.warning("journal record could not be replayed (%s); dropped", exc)
        for day in sorted(days, key=lambda d: -1 if d is None else d):
            lo: int | None = None
            hi: int | None = None
            for part, level in days[day]:
                try:
                    self.pipeline(dict(part.get("resource") or {}), level).ingest(part)
                    for cmd in part.get("commands") or ():
                        lo = cmd["start"] if lo is None else min(lo, cmd["start"])
                        hi = cmd["end"] if hi is None else max(hi, cmd["end"])
                except Exception as exc:
                    log.warning("journal record could not be replayed (%s); dropped", exc)
            if day is not None and lo is not None:
                lo = max(lo, day * DAY_NS)  # a command that began the day before counts on the day it ended
            for p in self.pipelines.values():
                p.collect(lo, hi)
        return self.staging.take()


_TIMED = ("features", "exceptions")
"""Parts of a record that carry their own time (``t``): each goes with the day it happened."""
_ONCE = ("usage", "sessions_ended", "exit_ns", "heartbeats")
"""Parts of a record without a time of their own: counted once, on the record's last day."""


def by_day(record: Record) -> list[tuple[int | None, Record]]:
    """``record`` as (UTC day, part) pairs: its commands by the day each ended, its features and handled
    exceptions by their own time, the rest (usage aggregate, ended sessions, exit cost, heartbeats) on the
    day of its last command. A record of one day (nearly all) is returned whole; one without commands as
    (None, record): collected with the SDK's own time, as before."""
    body: Mapping[str, Any] = record
    commands = body.get("commands") or ()
    if not commands:
        return [(None, record)]
    first = int(commands[0]["end"]) // DAY_NS
    lo, hi = first * DAY_NS, (first + 1) * DAY_NS  # (bounds compared, not divided: ~0.2 us an item)
    try:
        if all(lo <= c["end"] < hi for c in commands) and all(
                lo <= x.get("t", 0) < hi for key in _TIMED for x in body.get(key) or ()):
            return [(first, record)]
    except TypeError:  # a value that is not a number: the general path below decides item by item
        pass
    parts: dict[int, dict[str, Any]] = {}
    base = {k: v for k, v in body.items() if k not in ("commands", *_TIMED, *_ONCE, "session_previous")}

    def part(day: int) -> dict[str, Any]:
        got = parts.get(day)
        if got is None:
            got = parts[day] = dict(base, commands=[], **{k: [] for k in _TIMED})
        return got

    for cmd in commands:
        part(int(cmd["end"]) // DAY_NS)["commands"].append(cmd)
    last = max(parts)
    for key in _TIMED:
        for item in body.get(key) or ():
            try:
                day = int(item.get("t", 0)) // DAY_NS
            except (TypeError, ValueError):  # no usable time: with the record's last day
                day = last
            part(day if day in parts else last)[key].append(item)
    for key in _ONCE:
        if key in body:
            parts[last][key] = body[key]
    if body.get("session_previous") is not None:  # only the session's first command carries it
        parts[int(commands[0]["end"]) // DAY_NS]["session_previous"] = body["session_previous"]
    return [(day, cast("Record", parts[day])) for day in sorted(parts)]
