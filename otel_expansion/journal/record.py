"""The journal record: the one format two processes share (a CLI's exit path writes, the sender reads).

Declared as TypedDicts for the type checker only (``typing`` is not imported at run time). ``VERSION``
(the package ``otel_expansion.journal`` holds it, with :func:`directory_for` and :func:`version_of`:
what a CLI's exit path needs to write a record, so that path does not load this module) is written into
every record and checked on read (:func:`check`).

Versions across releases (upgrades and downgrades lose nothing):

- Adding a field is compatible: readers ignore fields they do not know, the version stays.
- A field that changes meaning bumps ``VERSION`` and adds an upgrade to :data:`UPGRADES` (records of every
  older version are read by upgrading them step by step), and version N > 1 records are written to their own
  directory, ``journal-vN`` (:func:`directory_for`), never to ``journal``: releases up to 0.2 read
  ``journal`` only and count a record of another version there as corrupt (deleting it), so a newer record
  must never be where they look. A record of a newer version met anyway is left in place (NewerRecord)
  until a release that reads it comes: it is neither deleted nor counted.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Literal, TypedDict

    DropCount = Literal["overflow", "overflow_features", "overflow_exceptions", "undeclared", "usage_values",
                        "replay", "staging"]

    from otel_expansion._types import AttrValue

    class _CommandRequired(TypedDict):
        name: str
        exe: str
        start: int  # epoch ns
        end: int  # epoch ns

    class CommandEntry(_CommandRequired, total=False):
        """One finished command, already minimised for its level and redacted."""

        exit: int  # the status the process ends with, as the shell sees it; absent when unknown
        outcome: str  # "unknown" (no exit code: the process was left by an exception nobody could see)

        error: str  # error.type, only when exit != 0 (or the outcome is unknown and an error was seen)
        sig: str  # cli.error.signature of that error (privacy.vocabulary.signature), when a frame is allowed
        cpu: float  # seconds
        mem: int | None  # peak RSS bytes (None where the platform cannot tell)
        startup: float  # seconds from process start to the command's start (a process's first command)
        args: Sequence[str]  # argument shape (flag names), full level
        exception: ExceptionDetails
        rec: int  # self-health: ns the library itself spent recording this command
        th: int  # a service's span sample: kept with probability 2**-th (tracestate ot=th), a sampled span

    class ExceptionDetails(TypedDict):
        message: str
        stack: str

    class _FeatureRequired(TypedDict):
        name: str
        t: int

    class FeatureEntry(_FeatureRequired, total=False):
        attrs: Mapping[str, AttrValue]

    class _HandledRequired(TypedDict):
        type: str
        t: int

    class HandledException(_HandledRequired, total=False):
        command: str
        sig: str  # cli.error.signature of the handled exception
        message: str
        stack: str

    class EndedSessionEntry(TypedDict):
        id: str
        duration: float  # seconds
        commands: int

    class Body(TypedDict, total=False):
        """What the recorder drains: the runs of one process since the last drain."""

        commands: list[CommandEntry]
        features: list[FeatureEntry]
        exceptions: list[HandledException]
        overflow: int  # commands not kept because the recorder's buffer was full (dropped.overflow)
        overflow_features: int  # features not kept: the buffer was full, or their command was not kept
        overflow_exceptions: int  # handled exceptions not kept: the buffer was full
        spilled: int  # a service's export thread was behind and journaled these commands (service.spilled)
        undeclared: int  # features/attributes dropped because the app's registry does not declare them
        usage_values: int  # a service's raw histogram values past its usage aggregate's bound
        sampled_out: int  # a service's commands whose spans were not in the sample (counted, not lost)
        metered: int  # 1: a service's body, its commands' metrics are in a ``usage`` aggregate
        usage: Mapping[str, object]  # a service's usage aggregate (collect.usage.Usage.take)

    class SessionPart(TypedDict, total=False):
        session: str
        session_previous: str
        sessions_ended: list[EndedSessionEntry]
        heartbeats: int

    class Record(Body, SessionPart, total=False):
        """A journal record: a body plus its version, level and (redacted) resource."""

        v: int
        level: int
        resource: Mapping[str, AttrValue]
        exit_ns: int  # self-health: ns the CLI's exit path spent up to the journal write


from otel_expansion.journal import VERSION, directory_for, version_of

__all__ = ["DROP_COUNTS", "SAMPLED_OUT", "UPGRADES", "VERSION", "NewerRecord", "UnsupportedRecord", "check",
           "counters_of", "directory_for", "version_of"]

DROP_COUNTS: tuple[DropCount, ...] = ("overflow", "overflow_features", "overflow_exceptions", "undeclared",
                                      "usage_values", "replay", "staging")
"""Body keys that count what the recorder did not keep; stored as the spool counter ``dropped.<key>``."""
SAMPLED_OUT = "sampled_out"
"""Body key: a service's commands whose spans were not in the sample (spool counter ``spans.sampled_out``)."""

if TYPE_CHECKING:
    from collections.abc import Callable

UPGRADES: dict[int, Callable[[dict[str, object]], dict[str, object]]] = {}
"""``UPGRADES[n]`` turns a version-n record into a version n+1 one; every version below VERSION has one."""


def _same(record: dict[str, object]) -> dict[str, object]:
    return record  # a version-1 record means the same in version 2: every command has its exit code


UPGRADES[1] = _same


def counters_of(body: Mapping[str, object]) -> dict[str, int]:
    """The spool counters a body's tallies add to (``dropped.<key>``, ``spans.sampled_out``)."""
    out = {f"dropped.{key}": int(body[key] or 0) for key in DROP_COUNTS if body.get(key)}  # type: ignore[call-overload]
    if body.get(SAMPLED_OUT):
        out["spans.sampled_out"] = int(body[SAMPLED_OUT] or 0)  # type: ignore[call-overload]
    return out


class UnsupportedRecord(ValueError):
    """A record of a version this package does not read."""


class NewerRecord(UnsupportedRecord):
    """A record of a newer version than this release reads: left in place for a newer release."""


def check(record: Mapping[str, object]) -> Record:
    """``record`` at the version this package writes, upgraded from an older one if need be; NewerRecord
    for a newer version (leave it), UnsupportedRecord for anything else."""
    version = record.get("v")
    if type(version) is not int or version < 1:
        raise UnsupportedRecord(f"journal record version {version!r} (this package reads 1 to {VERSION})")
    if version > VERSION:
        raise NewerRecord(f"journal record version {version} is newer than this release reads ({VERSION})")
    upgraded = dict(record)
    while version < VERSION:
        upgrade = UPGRADES.get(version)
        if upgrade is None:
            raise UnsupportedRecord(f"no upgrade from journal record version {version}")
        upgraded = upgrade(upgraded)
        version += 1
        upgraded["v"] = version
    return upgraded  # type: ignore[return-value]
