"""Every signal the library emits, declared once.

Instruments, the per-level metric views, the span attribute filter and TELEMETRY.md are all derived from
these declarations, so the documentation cannot drift from what is sent. Pure data: no OTel import.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_expansion.config import levels
from otel_expansion.config.levels import Level

SCOPE_NAME = "otel_expansion"

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 300.0)
MEMORY_BUCKETS = tuple(float(2**n) for n in range(23, 34))  # 8 MiB .. 8 GiB
SESSION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)
COUNT_BUCKETS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
OVERHEAD_BUCKETS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1)
BYTES_BUCKETS = tuple(float(2**n) for n in range(10, 27, 2))  # 1 KiB .. 64 MiB
BACKLOG_BUCKETS = (0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0)


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    level: Level
    description: str


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: str  # "counter" | "histogram"
    unit: str
    level: Level
    description: str
    attributes: tuple[str, ...]
    buckets: tuple[float, ...] = ()


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("cli.command.name", Level.BASIC,
                  "Command path without the program name, e.g. `remote add`; the program name for the root."),
        Attribute("cli.command.outcome", Level.BASIC, "`success` or `error`."),
        Attribute("error.type", Level.BASIC, "Exception class (qualified) or the exit code; only on failure."),
        Attribute("process.exit.code", Level.ENHANCED, "Exit status of the command."),
        Attribute("process.executable.name", Level.ENHANCED, "The CLI's program name."),
        Attribute("session.id", Level.ENHANCED, "Random id shared by runs less than 30 min apart."),
        Attribute("session.previous_id", Level.ENHANCED, "On a session's first command: the session before it."),
        Attribute("cli.command.cpu_time", Level.ENHANCED, "CPU seconds used by the command."),
        Attribute("cli.command.memory.peak", Level.ENHANCED, "Peak resident memory in bytes."),
        Attribute("cli.process.startup_time", Level.ENHANCED,
                  "Seconds from process start to the command's start (interpreter and imports); Linux."),
        Attribute("cli.command.args", Level.FULL,
                  "Flag names used that the command declares (never values, positionals or mistyped flags)."),
        Attribute("feature.name", Level.BASIC, "Name passed to `feature()`."),
        Attribute("activity.hour_of_week", Level.ENHANCED, "0-167, local time, Monday 00h = 0."),
        Attribute("exception.handled", Level.BASIC, "True for exceptions passed to `record_exception()`."),
        Attribute("reason", Level.BASIC, "Why telemetry was dropped (size, age, corrupt, journal_full, overflow: "
                  "commands past a full buffer, overflow_features and overflow_exceptions: what was recorded "
                  "during those commands or past its own bound, staging, undeclared: a feature the app's "
                  "registry does not declare, too_large, rejected, exporter_none) or why an export failed "
                  "(http_<status>, timeout, refused, connection, tls, dns, other)."),
        Attribute("outcome", Level.BASIC, "How an export request ended: success, retry, drop or too_large."),
    )
}

METRICS: tuple[Metric, ...] = (
    Metric("cli.command.invocations", "counter", "{invocation}", Level.BASIC, "Commands run.",
           ("cli.command.name", "cli.command.outcome", "error.type")),
    Metric("cli.command.duration", "histogram", "s", Level.BASIC, "Wall time of a command.",
           ("cli.command.name", "cli.command.outcome", "error.type"), DURATION_BUCKETS),
    Metric("cli.command.errors", "counter", "{error}", Level.BASIC, "Failed commands by error type.",
           ("cli.command.name", "error.type")),
    Metric("cli.exceptions.handled", "counter", "{exception}", Level.BASIC,
           "Exceptions the app reported with record_exception().", ("error.type", "exception.handled")),
    Metric("cli.feature.usage", "counter", "{use}", levels.FEATURES, "Calls to feature().", ("feature.name",)),
    Metric("cli.command.cpu_time", "histogram", "s", levels.PERFORMANCE, "CPU time of a command.",
           ("cli.command.name",), DURATION_BUCKETS),
    Metric("cli.command.memory.peak", "histogram", "By", levels.PERFORMANCE, "Peak memory of a command.",
           ("cli.command.name",), MEMORY_BUCKETS),
    Metric("cli.process.startup_time", "histogram", "s", levels.PERFORMANCE,
           "Process start to the command's start: interpreter start-up and imports (Linux, 10 ms resolution).",
           ("cli.command.name",), DURATION_BUCKETS),
    Metric("cli.session.duration", "histogram", "s", levels.SESSIONS, "Length of an ended session.", (),
           SESSION_BUCKETS),
    Metric("cli.session.commands", "histogram", "{command}", levels.SESSIONS, "Commands in an ended session.",
           (), COUNT_BUCKETS),
    Metric("cli.session.heartbeats", "counter", "{heartbeat}", levels.SESSIONS,
           "Periodic liveness of long-running programs.", ()),
    Metric("cli.activity", "counter", "{invocation}", levels.ACTIVITY, "Commands by hour of the week.",
           ("activity.hour_of_week",)),
    Metric("otel_expansion.spool.dropped", "counter", "{item}", Level.BASIC,
           "Telemetry dropped locally (self-health).", ("reason",)),
    Metric("otel_expansion.service.spilled", "counter", "{command}", Level.BASIC,
           "Commands a long-running program's export thread handed to the journal, for a sender to replay, "
           "because the program was busy or a sender was writing (delayed, not dropped; self-health).", ()),
    Metric("otel_expansion.spans.sampled_out", "counter", "{span}", Level.BASIC,
           "Spans of a long-running program's commands left out of the sample when they could not all be kept "
           "(the kept spans carry the sampling threshold in their tracestate, ot=th; self-health).", ()),
    Metric("otel_expansion.export.attempts", "counter", "{request}", Level.BASIC, "Export requests sent.", ()),
    Metric("otel_expansion.export.failures", "counter", "{request}", Level.BASIC, "Export requests failed.",
           ("reason",)),
    Metric("otel_expansion.export.duration", "histogram", "s", Level.BASIC,
           "Latency of one export request, by outcome (self-health).", ("outcome",), DURATION_BUCKETS),
    Metric("otel_expansion.record.duration", "histogram", "s", Level.BASIC,
           "Time the library itself spent recording one command (its begin and end hooks).", (), OVERHEAD_BUCKETS),
    Metric("otel_expansion.exit.duration", "histogram", "s", Level.BASIC,
           "Time a CLI's exit path spent on telemetry, up to the journal write (self-health).", (), OVERHEAD_BUCKETS),
    Metric("otel_expansion.sender.duration", "histogram", "s", Level.BASIC,
           "Wall time of one sender round (self-health).", (), DURATION_BUCKETS),
    Metric("otel_expansion.sender.cpu_time", "histogram", "s", Level.BASIC,
           "CPU time of one sender round (self-health).", (), DURATION_BUCKETS),
    Metric("otel_expansion.spool.size", "histogram", "By", Level.BASIC,
           "Spool file size on disk, sampled once per sender round (self-health).", (), BYTES_BUCKETS),
    Metric("otel_expansion.journal.backlog", "histogram", "{record}", Level.BASIC,
           "Run records waiting in the journal when a sender round starts (self-health).", (), BACKLOG_BUCKETS),
)

METRICS_BY_NAME = {m.name: m for m in METRICS}

SPAN_ATTRIBUTES = (
    "cli.command.name",
    "cli.command.outcome",
    "process.executable.name",
    "process.exit.code",
    "error.type",
    "session.id",
    "session.previous_id",
    "cli.command.cpu_time",
    "cli.command.memory.peak",
    "cli.process.startup_time",
    "cli.command.args",
)

RESOURCE_ATTRIBUTES: tuple[tuple[str, Level, str], ...] = (
    ("service.name", Level.BASIC, "The app's name."),
    ("service.version", Level.BASIC, "The app's version, when given."),
    ("telemetry.sdk.*", Level.BASIC, "OpenTelemetry SDK name, language, version."),
    ("telemetry.distro.name", Level.BASIC, "`otel-expansion`."),
    ("telemetry.distro.version", Level.BASIC, "This library's version."),
    ("otel_expansion.installation.id", Level.BASIC, "Random id per installation; `otel-expansion reset-id`."),
    ("os.type", Level.BASIC, "linux, darwin, windows..."),
    ("os.version", Level.BASIC, "Kernel release."),
    ("host.arch", Level.BASIC, "amd64, arm64..."),
    ("process.runtime.name", Level.BASIC, "cpython, pypy..."),
    ("process.runtime.version", Level.BASIC, "Python version."),
    ("ci.detected", Level.BASIC, "Whether a CI environment was detected."),
    ("ci.provider", Level.BASIC, "github_actions, gitlab, ... when in CI."),
    ("container.detected", Level.BASIC, "Whether the run was inside a container."),
    ("otel_expansion.batch.id", Level.BASIC, "Added on the wire only: the export batch's id, so receivers can drop "
     "duplicates after an ambiguous failure (also sent as header X-Otel-Expansion-Batch-Id)."),
)

SPAN_LEVEL = levels.SPANS


def allowed_attributes(level: Level, names: tuple[str, ...]) -> tuple[str, ...]:
    """The subset of ``names`` the level may carry (unknown names are never allowed)."""
    return tuple(n for n in names if n in ATTRIBUTES and ATTRIBUTES[n].level <= level)
