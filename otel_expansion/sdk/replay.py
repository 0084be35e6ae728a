"""Replay of journal records through the SDK: one pipeline per (resource, level), staged until commit.

The replayer knows records and the SDK, nothing of files or the spool: the orchestrator reads records,
hands them here, and commits what ``take()`` returns together with their ids in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from otel_expansion.config import Level, Settings
from otel_expansion.otlp.model import Attrs, AttrValue, MetricPoint, SpanRecord, attrs_of
from otel_expansion.sdk.pipeline import Pipeline
from otel_expansion.sdk.staging import Staging

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
        """Replay ``records`` and return the staged rows; a record that cannot be replayed is logged, skipped."""
        lo: int | None = None
        hi: int | None = None
        for record in records:
            try:
                level = int(record.get("level", 0))
                if self.ceiling is not None:
                    level = min(level, int(self.ceiling))
                if level <= 0:
                    continue
                self.pipeline(dict(record.get("resource") or {}), level).ingest(record)
                for cmd in record.get("commands") or ():
                    lo = cmd["start"] if lo is None else min(lo, cmd["start"])
                    hi = cmd["end"] if hi is None else max(hi, cmd["end"])
            except Exception as exc:
                log.warning("journal record could not be replayed (%s); dropped", exc)
        for p in self.pipelines.values():
            p.collect(lo, hi)
        return self.staging.take()
