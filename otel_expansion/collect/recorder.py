"""The featherweight in-process recorder shared by every integration and the manual API.

A finished command becomes a small plain dict, already minimised for the level and redacted, so nothing
that leaves this module (journal file or SDK pipeline) can carry more than the level allows. Recording
costs a few microseconds and imports nothing; the heavy work happens in the sender.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from otel_expansion.journal.record import Body, CommandEntry, ExceptionDetails, FeatureEntry, HandledException

from otel_expansion.collect import performance
from otel_expansion.config import levels
from otel_expansion.config.levels import Level
from otel_expansion.config.settings import Settings
from otel_expansion.privacy import names

MAX_COMMANDS = 2048  # buffered between flushes (a journal record stays well under 1 MiB); more are counted
MAX_FEATURES = 4096
MAX_STACK_FRAMES = 20


def error_type(exc: BaseException) -> str:
    """Fully qualified class name, per the ``error.type`` convention (builtins stay short)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


_USAGE_ERROR_MODULES = frozenset({"click.exceptions", "typer._click.exceptions", "argparse"})

_CONTROL = {c: "?" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                             *range(0x2066, 0x206A)]}


def _is_identifier_key(key: str) -> bool:
    """``user_id``, ``org.id``, ``id``: attribute keys whose values are hashed when a salt is set."""
    k = key.lower()
    return k == "id" or k.endswith(("_id", ".id", "-id"))


def _is_exit(exc: BaseException) -> bool:
    """SystemExit, or a framework's deliberate exit (click/typer ``Exit``): an exit code, not an error."""
    return isinstance(exc, SystemExit) or (type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"))


def exit_code_of(exc: BaseException | None) -> int:
    """The exit status the shell sees when ``exc`` escapes the program: ``sys.exit(-1)`` is 255,
    ``SystemExit(True)`` 1, a message 1, and a KeyboardInterrupt kills the process by SIGINT (130)."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF if -(1 << 63) <= code < (1 << 63) else 0xFF  # what exit(2) keeps; overflow is -1
        return 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


class CommandRun:
    """One command invocation in progress."""

    __slots__ = (
        "args",
        "cost_ns",
        "error",
        "executable",
        "name",
        "origin",
        "outcome",
        "start_cpu",
        "start_mono",
        "start_ns",
        "startup",
    )

    def __init__(self, name: str, executable: str, origin: str = "framework") -> None:
        self.cost_ns = 0  # the library's own time spent in begin(), for self-health
        self.name = name
        # "declared" (by the framework's own tables), "literal" (command("x") written in the app's code),
        # "app" (a name computed at run time), "framework" (not resolved: shape decides)
        self.origin = origin
        self.executable = executable
        self.start_ns = time.time_ns()
        self.start_mono = time.perf_counter_ns()
        self.start_cpu = performance.cpu_seconds()
        self.error: BaseException | None = None
        self.args: tuple[str, ...] = ()
        self.startup = False  # the process's first command: its start-up time is recorded with it
        self.outcome: CommandEntry | None = None  # its record once ended, until drained


class Recorder:
    """Collects commands, features and exceptions of this process, filtered and redacted at the source."""

    def __init__(self, settings: Settings, on_command: Callable[[Recorder], None] | None = None,
                 max_commands: int = MAX_COMMANDS) -> None:
        self.max_commands = max_commands
        self.settings = settings
        self.level = settings.level
        self.commands: list[CommandEntry] = []
        self.features: list[FeatureEntry] = []
        self.exceptions: list[HandledException] = []
        self.overflow = 0
        self.undeclared = 0  # features and attributes the app's registry does not declare (dropped)
        self.active: CommandRun | None = None
        self._on_command = on_command
        self._redactor: Any = None
        self._plain: Callable[[str], bool] | None = None
        self.declared_commands: frozenset[str] | None = None  # init(commands=...): membership beats shape
        self.declared_features: frozenset[str] | None = None  # init(features=...)
        self.resource_keys: tuple[str, ...] = ()  # init(resource_keys=...): ambient resource allow-list
        self._lock = _thread.allocate_lock()  # drain() may run on a service's export thread
        self._begun = 0

    # -- privacy helpers -------------------------------------------------------------------------------
    @property
    def redactor(self) -> Any:
        if self._redactor is None:
            from otel_expansion.privacy.redaction import Redactor

            s = self.settings
            self._redactor = Redactor(s.redact_patterns, s.redact_allow, s.hash_salt)
        return self._redactor

    def clean(self, text: str) -> str:
        """Redacted ``text``; the full redactor (~3 ms to build) loads only for text that may hold PII."""
        text = str(text)
        if not text.isprintable():  # control, escape and bidi-override characters never get stored
            text = text.translate(_CONTROL)
        if self._plain is None:
            from otel_expansion.privacy import patterns

            names = patterns.user_names()
            custom = bool(self.settings.redact_patterns)
            self._plain = (lambda t: False) if custom else (lambda t: patterns.is_plain(t, names))
        return text if self._plain(text) else str(self.redactor.redact(text))

    def declare(self, commands: object = None, features: object = None, resource_keys: object = None) -> None:
        """The app's own names: run-time names outside these lists become placeholders."""
        self.declared_commands = names.declared(commands)  # type: ignore[arg-type]
        self.declared_features = names.declared(features)  # type: ignore[arg-type]
        self.resource_keys = tuple(names.declared(resource_keys) or ())  # type: ignore[arg-type]

    def command_name(self, run: CommandRun) -> str:
        """The name a run is recorded under: declared by the program, or written in its code and
        identifier-shaped, or a placeholder. A name computed at run time (``command(f"sync-{user}")``)
        counts only when the app declared it in ``init(commands=...)``."""
        origin = run.origin
        if origin == "declared":
            return self.clean(run.name)
        if origin == "framework":
            return names.name(run.name)
        if self.declared_commands is not None:
            return names.name(run.name, self.declared_commands)
        return names.name(run.name) if origin == "literal" else names.INVALID

    # -- commands --------------------------------------------------------------------------------------
    def begin(self, name: str, executable: str | None = None, origin: str = "framework") -> CommandRun | None:
        """Start a command; None when one is already running (nested runs belong to the outer one)."""
        if self.active is not None or self.level <= Level.OFF:
            return None
        t0 = time.perf_counter_ns()
        run = CommandRun(name, executable or default_executable(), origin)
        run.startup = self._begun == 0
        self._begun += 1
        self.active = run
        run.cost_ns = time.perf_counter_ns() - t0
        return run

    def end(self, run: CommandRun | None, exc: BaseException | None = None, exit_code: int | None = None) -> None:
        """Finish ``run``; the exit code defaults to what ``exc`` would make Python exit with."""
        if run is None or run is not self.active:
            return
        self.active = None
        t0 = time.perf_counter_ns()
        end_ns = run.start_ns + (t0 - run.start_mono)
        err = run.error if run.error is not None and (exc is None or isinstance(exc, SystemExit)) else exc
        code = exit_code_of(exc) if exit_code is None else exit_code
        if len(self.commands) >= self.max_commands:
            self.overflow += 1
            return
        cmd: CommandEntry = {
            "name": self.command_name(run),
            "exe": _name(run.executable),
            "start": run.start_ns,
            "end": end_ns,
            "exit": code,
        }
        self._outcome(cmd, code, err)
        if self.level >= levels.PERFORMANCE:
            cmd["cpu"] = max(0.0, performance.cpu_seconds() - run.start_cpu)
            cmd["mem"] = performance.peak_rss_bytes()
            if run.startup:
                startup = performance.startup_seconds(run.start_mono)
                if startup is not None:
                    cmd["startup"] = startup
        if self.level >= levels.ARGUMENT_SHAPES and run.args:
            cmd["args"] = run.args
        run.outcome = cmd
        cmd["rec"] = run.cost_ns + (time.perf_counter_ns() - t0)  # our own cost, reported as self-health
        with self._lock:
            self.commands.append(cmd)
        if self._on_command is not None:
            self._on_command(self)

    def _outcome(self, cmd: CommandEntry, code: int, err: BaseException | None) -> None:
        """Exit code, error type (the exception's class, else the exit code) and, at ``full``, details."""
        cmd["exit"] = code
        cmd.pop("error", None)
        cmd.pop("exception", None)
        if code == 0:
            return
        real = err is not None and not _is_exit(err)
        cmd["error"] = error_type(err) if real and err is not None else str(code)
        if real and err is not None and self.level >= levels.EXCEPTION_DETAILS:
            cmd["exception"] = self._exception_details(err)

    def settle(self, run: CommandRun, code: int, err: BaseException | None = None) -> bool:
        """The process ends with ``code``: make that the outcome of ``run``, the command it ran.

        For a process that ran one command (a CLI), the status the shell sees is the last word, even when
        the program caught its framework's exit and exited differently. ``err`` replaces the recorded
        error only when given. False when the run's record was already handed on (drained).
        """
        with self._lock:
            cmd = run.outcome
            if cmd is None or not any(c is cmd for c in self.commands):
                return False
            if cmd.get("exit") == code and (err is None or code == 0):
                return True
            if err is None and code != 0 and not str(cmd.get("error", "0")).isdigit():
                cmd["exit"] = code  # the exception that made it fail stays its error type
                return True
            self._outcome(cmd, code, err)
            return True

    def note_error(self, exc: BaseException) -> None:
        """Remember the exception a framework is about to turn into an exit code."""
        if self.active is not None and not _is_exit(exc):
            self.active.error = exc

    def set_args(self, argv: list[str] | tuple[str, ...]) -> None:
        """Argument shapes (flag names only) for the active command, at ``full`` level."""
        if self.active is not None and self.level >= levels.ARGUMENT_SHAPES:
            try:
                self.active.args = tuple(self.redactor.argv_shape(list(argv)))
            except Exception:
                self.active.args = ()

    # -- features and exceptions -----------------------------------------------------------------------
    def feature(self, name: str, attributes: Mapping[str, object] | None = None) -> None:
        if self.level < levels.FEATURES:
            return
        declarations = _declared_features()
        registry = declarations if self.level < Level.FULL else None
        if registry is not None:  # declared features only, and only their declared attributes
            spec = registry.get(name)
            if spec is None or (attributes and any(not spec.accepts(k, v) for k, v in attributes.items())):
                with self._lock:
                    self.undeclared += 1 if spec is None else sum(
                        1 for k, v in (attributes or {}).items() if not spec.accepts(k, v))
            if spec is None or spec.level > self.level:
                return
        if len(self.features) >= self.max_commands * 2:
            self.overflow += 1
            return
        if declarations is not None and declarations.get(name) is not None:  # declared in the registry
            fname = names.name(name)
        elif self.declared_features is not None:
            fname = names.name(name, self.declared_features)
        else:
            from otel_expansion.privacy.provenance import literal_in_caller

            fname = names.name(name) if literal_in_caller(name, sys._getframe(1)) else names.INVALID
        item: FeatureEntry = {"name": fname, "t": time.time_ns()}
        if attributes and self.level >= levels.FEATURE_ATTRIBUTES:
            item["attrs"] = self._feature_attributes(attributes)
        with self._lock:
            self.features.append(item)

    def exception(self, exc: BaseException) -> None:
        """A handled exception the app wants counted (type always; details at ``full``)."""
        if self.level <= Level.OFF or len(self.exceptions) >= self.max_commands * 2:
            return
        item: HandledException = {"type": error_type(exc), "t": time.time_ns()}
        if self.active is not None:
            item["command"] = self.command_name(self.active)
        if self.level >= levels.EXCEPTION_DETAILS:
            details = self._exception_details(exc)
            item["message"], item["stack"] = details["message"], details["stack"]
        with self._lock:
            self.exceptions.append(item)

    def _feature_attributes(self, attributes: Mapping[str, object]) -> dict[str, Any]:
        """Attribute values at ``full``: only the caller's own text (string constants of its code) is
        kept; whatever was computed or typed becomes a typed placeholder. Keys must be identifiers."""
        from otel_expansion.privacy import provenance

        r = self.redactor
        consts = provenance.caller_constants(sys._getframe(1))
        label = provenance.kind_of(r.redact)

        def own(v: object) -> Any:
            t = type(v)
            if t is bool or t is float:
                return v
            if t is int:
                return r.value(v)
            if t is str:
                return r.redact(provenance.own_text(v, consts, label))  # type: ignore[arg-type]
            if t in (list, tuple, set, frozenset):
                items: Iterable[object] = v  # type: ignore[assignment]
                return tuple(own(x) for i, x in enumerate(items) if i < 32)
            return r.redact(provenance.own_text(str(r.value(v)), consts, label))

        attrs: dict[str, Any] = {}
        for key, value in list(attributes.items())[:16]:
            k = names.attribute_key(key)
            if k is None or value is None:
                continue
            if self.settings.hash_salt and _is_identifier_key(k):  # identifiers become stable pseudonyms
                attrs[k] = r.identifier(str(value))
            else:
                attrs[k] = r.attributes({k: own(value)}).get(k, "<redacted>")
        return attrs

    def _exception_details(self, exc: BaseException) -> ExceptionDetails:
        """Frames named by module (never by directory) and the message's provably own text."""
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            module = frame.f_globals.get("__name__")
            module = module if type(module) is str else "?"
            frames.append(f"{module}:{tb.tb_lineno} in {frame.f_code.co_name}")
            tb = tb.tb_next
        frames = frames[-MAX_STACK_FRAMES:]
        r = self.redactor
        if type(exc).__module__ in _USAGE_ERROR_MODULES:  # usage errors quote what the user typed
            message = "<usage error message withheld>"
        else:
            from otel_expansion.privacy import provenance

            try:
                text = str(exc)
                message = provenance.own_text(text[:4096], provenance.exception_constants(exc),
                                              provenance.kind_of(r.redact))
            except Exception:
                message = "<unprintable>"
        return {"message": r.redact(message), "stack": "\n".join(r.redact(f) for f in frames)}

    # -- draining --------------------------------------------------------------------------------------
    def drain(self) -> Body | None:
        """Take everything recorded so far as one record body, or None when there is nothing."""
        with self._lock:
            if not (self.commands or self.features or self.exceptions or self.overflow or self.undeclared):
                return None
            body: Body = {
                "commands": self.commands,
                "features": self.features,
                "exceptions": self.exceptions,
            }
            if self.overflow:
                body["overflow"] = self.overflow
            if self.undeclared:
                body["undeclared"], self.undeclared = self.undeclared, 0
            self.commands, self.features, self.exceptions, self.overflow = [], [], [], 0
        return body


def _name(text: str) -> str:
    return names.name(text)


def _declared_features() -> Any:
    """The app's feature registry (collect/features.py), if it declared one; that module loads only then."""
    module = sys.modules.get("otel_expansion.collect.features")
    return None if module is None else module.registry()



def default_executable() -> str:
    """The CLI's own name as the user typed it (``python -m pkg`` reports ``pkg``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if argv0 in ("", "-c", "-m"):
        return "python"
    base = os.path.basename(argv0)
    if base == "__main__.py":
        return os.path.basename(os.path.dirname(argv0)) or "python"
    return base[:-3] if base.endswith(".py") else base
