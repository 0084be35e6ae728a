"""Every signal the library emits, declared once.

Instruments, the per-level metric views, the span attribute filter and TELEMETRY.md are all derived from
these declarations, so the documentation cannot drift from what is sent. Pure data: no OTel import.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_expansion import config as levels
from otel_expansion.config import Level

SCOPE_NAME = "otel_expansion"

# Metric names, declared once: the pipeline, the export self-health, the workers and the backend name
# metrics by these constants, never by literal strings.
INVOCATIONS = "cli.command.invocations"
DURATION = "cli.command.duration"
ERRORS = "cli.command.errors"
HANDLED = "cli.exceptions.handled"
FEATURE_USAGE = "cli.feature.usage"
CPU_TIME = "cli.command.cpu_time"
MEMORY_PEAK = "cli.command.memory.peak"
STARTUP_TIME = "cli.process.startup_time"
SESSION_DURATION = "cli.session.duration"
SESSION_COMMANDS = "cli.session.commands"
HEARTBEATS = "cli.session.heartbeats"
ACTIVITY = "cli.activity"
SPOOL_DROPPED = "otel_expansion.spool.dropped"
SERVICE_SPILLED = "otel_expansion.service.spilled"
SPANS_SAMPLED_OUT = "otel_expansion.spans.sampled_out"
EXPORT_ATTEMPTS = "otel_expansion.export.attempts"
EXPORT_FAILURES = "otel_expansion.export.failures"
EXPORT_DURATION = "otel_expansion.export.duration"
RECORD_DURATION = "otel_expansion.record.duration"
EXIT_DURATION = "otel_expansion.exit.duration"
SENDER_DURATION = "otel_expansion.sender.duration"
SENDER_CPU_TIME = "otel_expansion.sender.cpu_time"
SPOOL_SIZE = "otel_expansion.spool.size"
JOURNAL_BACKLOG = "otel_expansion.journal.backlog"

EXPONENTIAL = ()
"""``buckets`` of a duration histogram: base-2 exponential buckets (bounded relative error from microseconds to
minutes, see otel_expansion.otlp.exponential) instead of explicit bounds; the views decide, nothing else."""
MEMORY_BUCKETS = tuple(float(2**n) for n in range(23, 34))  # 8 MiB .. 8 GiB
COUNT_BUCKETS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
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
    buckets: tuple[float, ...] = ()  # explicit bounds; EXPONENTIAL (empty) for base-2 exponential buckets

    @property
    def exponential(self) -> bool:
        """Whether the views aggregate this histogram into base-2 exponential buckets."""
        return self.kind == "histogram" and not self.buckets


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("cli.command.name", Level.BASIC,
                  "Command path without the program name, e.g. `remote add`; the program name for the root."),
        Attribute("cli.command.outcome", Level.BASIC,
                  "`success`, `error`, or `unknown` (left by an exit that could not be observed: no exit code)."),
        Attribute("error.type", Level.BASIC, "Exception class (qualified) or the exit code; only on failure."),
        Attribute("cli.error.signature", Level.BASIC,
                  "Where a failure happened: the traceback's frames the level allows, outermost first, each "
                  "`module:function`, joined by ` > ` (basic: the program's own frames; enhanced and full: also "
                  "installed third-party modules, and the standard library as a bare module name); at most 8 "
                  "frames; never lines, paths or values. Only on failed commands and handled exceptions, "
                  "absent when no frame is allowed."),
        Attribute("process.exit.code", Level.ENHANCED, "Exit status of the command."),
        Attribute("process.executable.name", Level.ENHANCED, "The CLI's program name."),
        Attribute("session.id", Level.ENHANCED, "Random id shared by runs less than 30 min apart."),
        Attribute("session.previous_id", Level.ENHANCED, "On a session's first command: the session before it."),
        Attribute("cli.command.cpu_time", Level.ENHANCED, "CPU seconds used by the command."),
        Attribute("cli.command.memory.peak", Level.ENHANCED, "Peak resident memory in bytes."),
        Attribute("cli.process.startup_time", Level.ENHANCED,
                  "Seconds from process start to the command's start (interpreter and imports); Linux."),
        Attribute("cli.command.args", Level.FULL,
                  "Flag names used that the command declares, each once (never values, positionals or mistyped "
                  "flags); combined short flags (`-vq`) are split as the app's parser reads them by its "
                  "declarations (argparse, click, typer, optparse, docopt); on no known parser they give their "
                  "first letter."),
        Attribute("feature.name", Level.BASIC, "Name passed to `feature()`."),
        Attribute("activity.hour_of_week", Level.ENHANCED, "0-167, local time, Monday 00h = 0."),
        Attribute("exception.handled", Level.BASIC, "True for exceptions passed to `record_exception()`."),
        Attribute("reason", Level.BASIC, "Why telemetry was dropped (size, age, corrupt, journal_full, overflow: "
                  "commands past a full buffer, overflow_features and overflow_exceptions: what was recorded "
                  "during those commands or past its own bound, staging, undeclared: a feature or "
                  "attribute the app's registry does not declare, or a name sent as "
                  "`<dynamic>`, too_large, rejected, exporter_none) or why an export failed "
                  "(http_<status>, timeout, refused, connection, tls, dns, other)."),
        Attribute("outcome", Level.BASIC, "How an export request ended: success, retry, drop or too_large."),
    )
}

METRICS: tuple[Metric, ...] = (
    Metric(INVOCATIONS, "counter", "{invocation}", Level.BASIC, "Commands run.",
           ("cli.command.name", "cli.command.outcome", "error.type")),
    Metric(DURATION, "histogram", "s", Level.BASIC, "Wall time of a command.",
           ("cli.command.name", "cli.command.outcome", "error.type"), EXPONENTIAL),
    Metric(ERRORS, "counter", "{error}", Level.BASIC, "Failed commands by error type and stack signature.",
           ("cli.command.name", "error.type", "cli.error.signature")),
    Metric(HANDLED, "counter", "{exception}", Level.BASIC,
           "Exceptions the app reported with record_exception().",
           ("error.type", "exception.handled", "cli.error.signature")),
    Metric(FEATURE_USAGE, "counter", "{use}", levels.FEATURES, "Calls to feature().", ("feature.name",)),
    Metric(CPU_TIME, "histogram", "s", levels.PERFORMANCE, "CPU time of a command.",
           ("cli.command.name",), EXPONENTIAL),
    Metric(MEMORY_PEAK, "histogram", "By", levels.PERFORMANCE, "Peak memory of a command.",
           ("cli.command.name",), MEMORY_BUCKETS),
    Metric(STARTUP_TIME, "histogram", "s", levels.PERFORMANCE,
           "Process start to the command's start: interpreter start-up and imports (Linux, 10 ms resolution).",
           ("cli.command.name",), EXPONENTIAL),
    Metric(SESSION_DURATION, "histogram", "s", levels.SESSIONS, "Length of an ended session.", (),
           EXPONENTIAL),
    Metric(SESSION_COMMANDS, "histogram", "{command}", levels.SESSIONS, "Commands in an ended session.",
           (), COUNT_BUCKETS),
    Metric(HEARTBEATS, "counter", "{heartbeat}", levels.SESSIONS,
           "Periodic liveness of long-running programs.", ()),
    Metric(ACTIVITY, "counter", "{invocation}", levels.ACTIVITY, "Commands by hour of the week.",
           ("activity.hour_of_week",)),
    Metric(SPOOL_DROPPED, "counter", "{item}", Level.BASIC,
           "Telemetry dropped locally (self-health).", ("reason",)),
    Metric(SERVICE_SPILLED, "counter", "{command}", Level.BASIC,
           "Commands a long-running program's export thread handed to the journal, for a sender to replay, "
           "because the program was busy or a sender was writing (delayed, not dropped; self-health).", ()),
    Metric(SPANS_SAMPLED_OUT, "counter", "{span}", Level.BASIC,
           "Spans of a long-running program's commands left out of the sample when they could not all be kept "
           "(the kept spans carry the sampling threshold in their tracestate, ot=th; self-health).", ()),
    Metric(EXPORT_ATTEMPTS, "counter", "{request}", Level.BASIC, "Export requests sent.", ()),
    Metric(EXPORT_FAILURES, "counter", "{request}", Level.BASIC, "Export requests failed.",
           ("reason",)),
    Metric(EXPORT_DURATION, "histogram", "s", Level.BASIC,
           "Latency of one export request, by outcome (self-health).", ("outcome",), EXPONENTIAL),
    Metric(RECORD_DURATION, "histogram", "s", Level.BASIC,
           "Time the library itself spent recording one command (its begin and end hooks).", (), EXPONENTIAL),
    Metric(EXIT_DURATION, "histogram", "s", Level.BASIC,
           "Time a CLI's exit path spent on telemetry, up to the journal write (self-health).", (), EXPONENTIAL),
    Metric(SENDER_DURATION, "histogram", "s", Level.BASIC,
           "Wall time of one sender round (self-health).", (), EXPONENTIAL),
    Metric(SENDER_CPU_TIME, "histogram", "s", Level.BASIC,
           "CPU time of one sender round (self-health).", (), EXPONENTIAL),
    Metric(SPOOL_SIZE, "histogram", "By", Level.BASIC,
           "Spool file size on disk, sampled once per sender round (self-health).", (), BYTES_BUCKETS),
    Metric(JOURNAL_BACKLOG, "histogram", "{record}", Level.BASIC,
           "Run records waiting in the journal when a sender round starts (self-health).", (), BACKLOG_BUCKETS),
)

METRICS_BY_NAME = {m.name: m for m in METRICS}

SPAN_ATTRIBUTES = (
    "cli.command.name",
    "cli.command.outcome",
    "process.executable.name",
    "process.exit.code",
    "error.type",
    "cli.error.signature",
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
