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
    from collections.abc import Callable, Mapping
    from typing import Any

    from otel_expansion.journal.record import Body, CommandEntry, ExceptionDetails, FeatureEntry, HandledException

from otel_expansion.collect import performance
from otel_expansion.config import levels
from otel_expansion.config.levels import Level
from otel_expansion.config.settings import Settings

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
    """The exit status Python itself would produce for ``exc`` escaping to the top level."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF if code >= 0 else code
        return 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


class CommandRun:
    """One command invocation in progress."""

    __slots__ = ("args", "error", "executable", "name", "start_cpu", "start_mono", "start_ns")

    def __init__(self, name: str, executable: str) -> None:
        self.name = name
        self.executable = executable
        self.start_ns = time.time_ns()
        self.start_mono = time.perf_counter_ns()
        self.start_cpu = performance.cpu_seconds()
        self.error: BaseException | None = None
        self.args: tuple[str, ...] = ()


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
        self.active: CommandRun | None = None
        self._on_command = on_command
        self._redactor: Any = None
        self._plain: Callable[[str], bool] | None = None
        self._lock = _thread.allocate_lock()  # drain() may run on a service's export thread

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

    # -- commands --------------------------------------------------------------------------------------
    def begin(self, name: str, executable: str | None = None) -> CommandRun | None:
        """Start a command; None when one is already running (nested runs belong to the outer one)."""
        if self.active is not None or self.level <= Level.OFF:
            return None
        run = CommandRun(name, executable or default_executable())
        self.active = run
        return run

    def end(self, run: CommandRun | None, exc: BaseException | None = None, exit_code: int | None = None) -> None:
        """Finish ``run``; the exit code defaults to what ``exc`` would make Python exit with."""
        if run is None or run is not self.active:
            return
        self.active = None
        end_ns = run.start_ns + (time.perf_counter_ns() - run.start_mono)
        err = run.error if run.error is not None and (exc is None or isinstance(exc, SystemExit)) else exc
        code = exit_code_of(exc) if exit_code is None else exit_code
        if code == 0 and isinstance(err, SystemExit):
            err = None
        if len(self.commands) >= self.max_commands:
            self.overflow += 1
            return
        cmd: CommandEntry = {
            "name": self.clean(run.name) or "(root)",
            "exe": self.clean(run.executable),
            "start": run.start_ns,
            "end": end_ns,
            "exit": code,
        }
        if code != 0:
            cmd["error"] = error_type(err) if err is not None and not isinstance(err, SystemExit) else str(code)
        if self.level >= levels.PERFORMANCE:
            cmd["cpu"] = max(0.0, performance.cpu_seconds() - run.start_cpu)
            cmd["mem"] = performance.peak_rss_bytes()
        if self.level >= levels.ARGUMENT_SHAPES and run.args:
            cmd["args"] = run.args
        if self.level >= levels.EXCEPTION_DETAILS and err is not None and code != 0 and not isinstance(err, SystemExit):
            cmd["exception"] = self._exception_details(err)
        with self._lock:
            self.commands.append(cmd)
        if self._on_command is not None:
            self._on_command(self)

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
        if len(self.features) >= self.max_commands * 2:
            self.overflow += 1
            return
        item: FeatureEntry = {"name": self.clean(name), "t": time.time_ns()}
        if attributes and self.level >= levels.FEATURE_ATTRIBUTES:
            r = self.redactor
            attrs = r.attributes(attributes, max_count=16)
            if self.settings.hash_salt:  # identifiers become stable pseudonyms (salted HMAC)
                for key in attrs:
                    if _is_identifier_key(key) and key in attributes:
                        attrs[key] = r.identifier(str(attributes[key]))
            item["attrs"] = attrs
        with self._lock:
            self.features.append(item)

    def exception(self, exc: BaseException) -> None:
        """A handled exception the app wants counted (type always; details at ``full``)."""
        if self.level <= Level.OFF or len(self.exceptions) >= self.max_commands * 2:
            return
        item: HandledException = {"type": error_type(exc), "t": time.time_ns()}
        if self.active is not None:
            item["command"] = self.clean(self.active.name)
        if self.level >= levels.EXCEPTION_DETAILS:
            details = self._exception_details(exc)
            item["message"], item["stack"] = details["message"], details["stack"]
        with self._lock:
            self.exceptions.append(item)

    def _exception_details(self, exc: BaseException) -> ExceptionDetails:
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            frames.append(f"{_short_path(code.co_filename)}:{tb.tb_lineno} in {code.co_name}")
            tb = tb.tb_next
        frames = frames[-MAX_STACK_FRAMES:]
        r = self.redactor
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable>"
        if type(exc).__module__ in _USAGE_ERROR_MODULES:  # usage errors quote what the user typed
            message = "<usage error message withheld>"
        return {"message": r.redact(message), "stack": "\n".join(r.redact(f) for f in frames)}

    # -- draining --------------------------------------------------------------------------------------
    def drain(self) -> Body | None:
        """Take everything recorded so far as one record body, or None when there is nothing."""
        with self._lock:
            if not (self.commands or self.features or self.exceptions or self.overflow):
                return None
            body: Body = {
                "commands": self.commands,
                "features": self.features,
                "exceptions": self.exceptions,
            }
            if self.overflow:
                body["overflow"] = self.overflow
            self.commands, self.features, self.exceptions, self.overflow = [], [], [], 0
        return body


def _short_path(filename: str) -> str:
    """``click/core.py`` for ``/home/x/venv/lib/.../click/core.py``: enough to read, nothing local."""
    parts = filename.replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-2:])


def default_executable() -> str:
    """The CLI's own name as the user typed it (``python -m pkg`` reports ``pkg``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if argv0 in ("", "-c", "-m"):
        return "python"
    base = os.path.basename(argv0)
    if base == "__main__.py":
        return os.path.basename(os.path.dirname(argv0)) or "python"
    return base[:-3] if base.endswith(".py") else base
