"""Framework integrations, one module each, installed once and only when the framework is used.

A framework that is not imported yet is hooked on import (a tiny meta-path finder), so instrumenting
never imports click, typer, argparse, optparse, python-fire or docopt on the host's behalf. A program on
none of them is still recorded: ``finish_fallback`` names its one run after the program.

Every recorded run also watches how its process ends (the exit status, the second half of this module:
``observe_exit``, ``final_exit``, ``end_run``): kept here, not in a module of its own, because every
recorded run needs both halves and each module more costs a CLI's process ~0.3 M instructions.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from types import CodeType, FrameType, ModuleType, SimpleNamespace
    from typing import Any, Protocol

    from otel_expansion.collect import CommandRun, Recorder
    from otel_expansion.config import Settings

    class TelemetryHandle(Protocol):
        """What an integration uses of the handle ``init()`` returns (``_runtime.Telemetry``): its recorder.
        A Protocol, because the handle belongs to a later layer than the integrations."""

        @property
        def recorder(self) -> Recorder: ...

        settings: Settings
        started: tuple[int, int, float]  # init()'s wall ns, monotonic ns and CPU s: the fallback run's start
        command_name: tuple[str, str] | None  # set_command() before any run began: (name, origin)
        _closed: bool

        def shutdown(self) -> None: ...

    class Integration(Protocol):
        """What each integration module (click, typer, argparse) provides: hooks installed once, a run
        finished at exit when the framework has no end of its own, and a clean removal."""

        def install(self, telemetry: TelemetryHandle) -> None: ...

        def finish(self, telemetry: TelemetryHandle) -> None: ...

        def uninstall(self) -> None: ...

INTEGRATIONS: dict[str, str] = {
    "click": "otel_expansion.collect.integrations.click",
    "typer": "otel_expansion.collect.integrations.typer",
    "argparse": "otel_expansion.collect.integrations.argparse",
    "optparse": "otel_expansion.collect.integrations.optparse",
    "fire": "otel_expansion.collect.integrations.fire",
    "docopt": "otel_expansion.collect.integrations.docopt",
}

_installed: set[str] = set()
_telemetry: TelemetryHandle | None = None


def install_all(telemetry: TelemetryHandle) -> None:
    global _telemetry
    _telemetry = telemetry
    observe_exit()
    pending = []
    for framework in INTEGRATIONS:
        if framework in sys.modules:
            _install(framework)
        else:
            pending.append(framework)
    if pending and _watching() is None:
        sys.meta_path.insert(0, _watcher(pending, _install))


def _install(framework: str) -> None:
    if framework in _installed or _telemetry is None:
        return
    _installed.add(framework)
    try:
        _module(framework).install(_telemetry)
    except Exception as exc:
        from otel_expansion.config import warn

        warn(f"could not instrument {framework}: {type(exc).__name__}: {exc}")


def _module(framework: str) -> Integration:
    """The integration module of ``framework``, imported on first use."""
    name = INTEGRATIONS[framework]
    __import__(name)
    module: Integration = sys.modules[name]  # a module implementing the protocol
    return module


def activate(telemetry: TelemetryHandle, framework: str) -> None:
    """Instrument one framework now, or when it is first imported."""
    global _telemetry
    _telemetry = telemetry
    observe_exit()
    if framework in sys.modules:
        _install(framework)
        return
    watched = _watching()
    if watched is not None:
        watched.add(framework)
    else:
        sys.meta_path.insert(0, _watcher([framework], _install))


def program_name(service_name: str) -> tuple[str, str] | None:
    """(name, origin) of the program for a run no framework named: the console script's name as typed
    (``pipreqs``), else the service name given to ``init()`` (never a script's file name); None for
    ``python -c``, the REPL and code read from stdin: no program to name."""
    argv = sys.argv
    argv0 = argv[0] if argv and isinstance(argv[0], str) else ""
    if argv0 in ("", "-c", "-"):
        return None
    main = sys.modules.get("__main__")
    if getattr(main, "__spec__", None) is not None or argv0.endswith((".py", ".pyw", ".pyz", ".pyc")):
        return service_name, "declared"  # python -m pkg, python tool.py
    import os

    if os.path.isdir(argv0):  # python some_dir/ (a __main__.py inside)
        return service_name, "declared"
    from otel_expansion.collect import default_executable

    return default_executable(), "framework"


def finish_fallback(telemetry: TelemetryHandle) -> None:
    """Every run of a process that called ``init()`` is recorded: when no framework integration and no
    ``command()`` began a command, one invocation named after the program, from ``init()`` to exit,
    with the status the process exits with (or ``unknown``)."""
    recorder = telemetry.recorder
    if recorder._begun or recorder.active is not None or recorder.commands:
        return
    named = telemetry.command_name or program_name(telemetry.settings.service_name)
    if named is None:
        return
    run = recorder.begin(named[0], None, named[1])
    if run is None:
        return
    started = telemetry.started
    if started:
        run.start_ns, run.start_mono, run.start_cpu = started[0], started[1], (
            started[2] if run.start_cpu else 0.0)
    end_run(recorder, run)


_exec_originals: dict[str, Any] = {}
_exec_handle: list[Any] = [None]


def watch_exec(telemetry: TelemetryHandle) -> None:
    """Wrap ``os.execv`` and ``os.execve`` (once; every ``os.exec*`` function ends in one of them): the
    run of ``telemetry`` is finished and written to the journal before the process image is replaced."""
    import os

    _exec_handle[0] = telemetry
    if _exec_originals:
        return
    for name in ("execv", "execve"):
        original = getattr(os, name, None)
        if original is not None:
            _exec_originals[name] = original
            setattr(os, name, _before_exec(original))


def _before_exec(original: Callable[..., Any]) -> Callable[..., Any]:
    def exec_(*args: Any, **kwargs: Any) -> Any:
        try:
            handle = _exec_handle[0]
            if handle is not None and not handle._closed:
                execs()
                handle.shutdown()  # finish, journal, sender: local work of milliseconds
        except Exception:
            pass
        return original(*args, **kwargs)

    exec_.__name__ = exec_.__qualname__ = original.__name__
    exec_.__doc__ = original.__doc__
    return exec_


def after_shutdown() -> None:
    """Last step of our exit work: a program ending by Ctrl-C still dies by SIGINT (see the exit status, below)."""
    rearm_interrupt()


def _loaded(framework: str) -> Integration | None:
    """The integration module if it was imported (an installed integration always is)."""
    module: Integration | None = sys.modules.get(INTEGRATIONS[framework])
    return module


def deactivate(framework: str) -> None:
    module = _loaded(framework)
    if framework in _installed and module is not None:
        module.uninstall()
    _installed.discard(framework)


def finish_all(telemetry: TelemetryHandle) -> None:
    """End runs that only finish with the process (argparse, click usage errors)."""
    for framework in list(_installed):
        module = _loaded(framework)
        if module is not None:
            module.finish(telemetry)


def uninstall_all() -> None:
    """Remove every patch (tests and ``opentelemetry-instrument`` uninstrumentation)."""
    global _telemetry
    for framework in list(_installed):
        module = _loaded(framework)
        if module is not None:
            module.uninstall()
    _installed.clear()
    _telemetry = None
    unobserve_exit()
    sys.meta_path[:] = [f for f in sys.meta_path if type(getattr(f, _WATCHER, None)) is not set]
    if _exec_originals:
        import os

        for name, original in _exec_originals.items():
            setattr(os, name, original)
        _exec_originals.clear()
    _exec_handle[0] = None


_WATCHER = "otel_expansion_post_import"
"""The post-import watcher's attribute (:func:`_watcher`): the set of names it still waits for."""


def _watching() -> set[str] | None:
    """The names the post-import watcher on ``sys.meta_path`` still waits for; None when none is there."""
    for finder in sys.meta_path:
        names = getattr(finder, _WATCHER, None)
        if type(names) is set:
            return names
    return None


def _watcher(names: Sequence[str], callback: Callable[[str], None]) -> SimpleNamespace:
    """A meta path finder that runs ``callback`` right after a watched top-level module finishes importing.

    Duck-typed (``importlib.abc`` costs ~7 ms to import), and a namespace object holding a function rather
    than a class of its own: a class statement costs a CLI's process 10-25 us on a fresh interpreter
    (round 3, seventh session), and nearly every recorded run puts a watcher here (a framework it does not
    import yet). The loader wrapper is made only when a watched module is imported (:func:`_notifying`)."""
    watched = set(names)
    busy: set[str] = set()

    def find_spec(fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname not in watched or fullname in busy:
            return None
        busy.add(fullname)
        try:
            from importlib.util import find_spec as find

            spec = find(fullname)
        finally:
            busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _notifying(spec.loader, done, fullname)
        return spec

    def done(fullname: str) -> None:
        watched.discard(fullname)
        callback(fullname)

    return type(sys.implementation)(find_spec=find_spec, **{_WATCHER: watched})  # type: ignore[call-arg,return-value]


_loader_type: list[type[Loader]] = []


def _notifying(inner: Loader, done: Callable[[str], None], name: str) -> Loader:
    """``inner``, wrapped to call ``done(name)`` once the module has executed. The class is made on first use
    (a watched framework imported after ``init()``), not by every run that imports this module."""
    if not _loader_type:

        class _NotifyingLoader:
            def __init__(self, inner: Loader, done: Callable[[str], None], name: str) -> None:
                self.inner = inner
                self.done = done
                self.name = name

            def create_module(self, spec: ModuleSpec) -> ModuleType | None:
                return self.inner.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                self.inner.exec_module(module)
                self.done(self.name)

            def __getattr__(self, name: str) -> Any:
                """Everything else is the real loader's (``get_code``, ``get_source``: tracebacks, the
                privacy vocabulary's reading of the module's literals)."""
                if name == "inner":
                    raise AttributeError(name)
                return getattr(self.inner, name)

        _loader_type.append(_NotifyingLoader)  # type: ignore[arg-type]
    return _loader_type[0](inner, done, name)  # type: ignore[call-arg]


# -- the exit status: how the process ends ----------------------------------------------------------
# The last word on how the process exits: the status the shell sees, or honestly ``UNKNOWN``.
#
# Frameworks do not always expose how a run ends (argparse never does; click may be wrapped by code that
# catches its ``SystemExit`` and exits differently; ``sys.exit(main())`` decides after the command
# returned; python-fire and pyflakes ``raise SystemExit`` themselves). What is read at shutdown:
#
# - ``sys.last_value``: an exception other than ``SystemExit`` that escaped the program (the interpreter
#   sets it before printing it) — exact on every Python;
# - on 3.12+, ``sys.monitoring``'s ``PY_UNWIND`` event: a ``SystemExit`` that leaves the bottom frame of
#   the main thread is the one the process exits with, whoever raised it; when none did and nothing
#   escaped, the program completed normally — exact;
# - on 3.10/3.11 (or when no monitoring tool id is free): the program's main frame, held from ``init()``
#   on. A frame that returned (its last instruction is a return) completed normally: exit 0, exact. A
#   frame left by an exception exits with the last ``sys.exit`` call (or ``FireExit``/``DocoptExit``,
#   reported by their integrations through :func:`observe`) made from the main thread while that frame
#   stood at the very instruction it was left at; otherwise the status is ``UNKNOWN`` (a hand-written
#   ``raise SystemExit(n)``, pyflakes' ``raise SystemExit(warnings > 0)``), unless the program's entry
#   point is wrapped (``otel_expansion.wrap``, exact everywhere: :func:`entry`). The observed exit must
#   be the one that left: see :func:`_escaped`; the one blind spot left is a frame that swallows it and
#   raises a new ``SystemExit`` by hand at the very instruction it was raised through (a loop).
# - ``os.exec*`` (:func:`execs`): the new program decides the status: ``UNKNOWN``.

_originals: dict[str, Any] = {}
_observed: dict[str, Any] = {}
_seq = [0]  # a counter of observations, so a run can tell which exits came after it ended
LATEST = 1 << 62  # the sequence number of an exception that escaped: nothing comes after it
_main: list[Any] = [None, 0]  # [the program's main frame (or None), the main thread's id]
_monitor: list[int] = []  # the sys.monitoring tool id we hold (3.12+)
_MAIN_CODE_NAMES = ("_run_module_as_main", "_run_module_code")  # runpy's bottom frame under ``python -m``


class _Unknown(BaseException):
    """The process ended by an exception that could not be observed: no exit code is known."""


UNKNOWN: BaseException = _Unknown("exit status not observable")
"""``final_exit()``'s status when the program was left by an exception nobody could see."""


def observe_exit() -> None:
    """Start observing how the process ends (idempotent): wrap ``sys.exit`` (calls pass straight
    through), and watch ``SystemExit`` leaving the main frame (3.12+) or hold the main frame (older)."""
    if _originals:
        return
    _originals["exit"] = orig_exit = sys.exit
    _originals["last"] = getattr(sys, "last_value", None)
    threading = sys.modules.get("threading")
    _main[1] = threading.main_thread().ident if threading is not None else _thread.get_ident()
    _monitoring()
    _find_main_frame()

    def exit(status: Any = None) -> Any:
        try:
            return orig_exit(status)
        except SystemExit as exc:
            handling = exc.__context__  # e.g. the ClickException a framework is reporting
            observe_status(exc, handling if handling is not None and not isinstance(handling, SystemExit) else None)
            raise

    exit.__doc__ = orig_exit.__doc__
    _originals["codes"] = (exit.__code__,)
    sys.exit = exit
    _watch_quitter()


def _watch_quitter() -> None:
    """The builtins ``exit()`` and ``quit()`` (site's ``Quitter``, used by scripts and by CLIs such as
    pycln): observed like ``sys.exit``, through their class, calls passing straight through."""
    import builtins

    cls = type(getattr(builtins, "exit", None))
    orig_call = cls.__dict__.get("__call__") if cls.__module__ == "_sitebuiltins" else None
    if orig_call is None:
        return

    def __call__(self: Any, code: Any = None) -> Any:
        try:
            return orig_call(self, code)
        except SystemExit as exc:
            handling = exc.__context__
            observe_status(exc, handling if handling is not None and not isinstance(handling, SystemExit) else None)
            raise

    _originals["quitter"] = (cls, orig_call)
    _originals["codes"] += (__call__.__code__,)
    cls.__call__ = __call__  # type: ignore[method-assign]


def observe_status(status: BaseException, error: BaseException | None = None) -> None:
    """A ``SystemExit`` raised now, on its way out (``sys.exit``, a framework's own exit class)."""
    if _thread.get_ident() != _main[1]:  # another thread's sys.exit ends that thread, not the process
        return
    _seq[0] += 1
    frame = _main[0]
    _observed["status"] = status
    _observed["error"] = error
    _observed["seq"] = _seq[0]
    _observed["at"] = frame.f_lasti if frame is not None else None


def entry_exit(status: BaseException) -> None:
    """The program's declared entry point (``otel_expansion.wrap``) ended with ``status``: the SystemExit
    that left it, or ``SystemExit(returned)`` that ``sys.exit(main())`` exits with. Exact by contract:
    nothing above the entry point handles it (a console script's ``sys.exit(main())``)."""
    _observed["entry"] = status


def terminated_by(status: SystemExit) -> None:
    """A termination signal ends the process now (``init(record_termination=True)``): ``status``, its
    128 + signal, is the process's last word, whatever was observed before."""
    _observed["signal"] = status


def execs() -> None:
    """The process is about to replace its image (``os.exec*``): its exit status is the new program's."""
    _observed["exec"] = True


def exit_seq() -> int:
    """Sequence number of the latest observation (0 before any)."""
    return _seq[0]


def final_exit() -> tuple[BaseException | None, BaseException | None, int]:
    """(what the process exits with, the error it was handling then, sequence number).

    The status is a ``SystemExit`` (``SystemExit(None)`` for a program that completed normally), the
    exception that escaped, ``UNKNOWN``, or None when nothing can be said (no observation installed)."""
    signalled = _observed.get("signal")
    if signalled is not None:
        return signalled, None, LATEST
    escaped = getattr(sys, "last_value", None)
    if escaped is not None and escaped is not _originals.get("last") and not isinstance(escaped, SystemExit):
        return escaped, escaped, LATEST
    if _observed.get("exec") or _still_running():  # an exec'd program decides the status the shell
        return UNKNOWN, None, LATEST  # sees; an explicit shutdown() while the program runs cannot know it
    if not _originals:
        return _observed.get("status"), _observed.get("error"), int(_observed.get("seq", 0))
    if _monitor:  # 3.12+: every SystemExit leaving the main frame was seen
        unwound = _observed.get("unwound")
        if unwound is None:
            return SystemExit(None), None, LATEST
        error = _observed.get("error") if _observed.get("status") is unwound else None
        return unwound, error, LATEST
    frame = _main[0]
    if frame is None:  # no main frame to consult: the entry point's, the last sys.exit, else nothing
        if _observed.get("entry") is not None:
            return _observed["entry"], None, LATEST
        status = _observed.get("status")
        return (status, _observed.get("error"), int(_observed["seq"])) if status is not None else (UNKNOWN, None,
                                                                                                     LATEST)
    if _last_op(frame) in ("RETURN_VALUE", "RETURN_CONST"):
        return SystemExit(None), None, LATEST
    status = _observed.get("status")
    if status is not None and _escaped(status, frame):
        return status, _observed.get("error"), int(_observed["seq"])
    if _observed.get("entry") is not None:
        return _observed["entry"], None, LATEST
    return UNKNOWN, None, LATEST


def _still_running() -> bool:
    """The program's main frame is still on the main thread's stack: it has not ended (an explicit
    ``shutdown()`` before exit, from any thread)."""
    main = _main[0]
    if main is None:
        return False
    frame = sys._current_frames().get(_main[1])
    while frame is not None:
        if frame is main:
            return True
        frame = frame.f_back
    return False


def _escaped(exc: BaseException, main: FrameType) -> bool:
    """Whether the observed ``exc`` is the exception that left the main frame (3.10/3.11).

    An exception's ``__traceback__`` is brought up to date each time it enters a handler (``except``,
    ``with``, ``finally``): its outermost entry is the last frame that handled it. That frame let it go
    on only if it ended re-raising it (at the instruction it was raised through, or a RERAISE); a frame
    that swallowed it went on and ended elsewhere. Past that
    frame nothing handled it, so the main frame (which ended at the instruction it stood at when
    ``exc`` was raised, unless it is that last handler itself) was left by ``exc``."""
    tb = exc.__traceback__
    last = tb.tb_frame if tb is not None else None
    if last is None or last.f_code in _originals.get("codes", ()):  # handled by nobody but our own wrapper
        return _observed.get("at") == main.f_lasti
    if last.f_lasti != tb.tb_lasti and _last_op(last) != "RERAISE":  # type: ignore[union-attr]
        return False  # it went on after handling it: swallowed (3.11 restores the raising instruction's
        # position on RERAISE, 3.10 stops at the RERAISE itself)
    return last is main or _observed.get("at") == main.f_lasti


def _last_op(frame: FrameType) -> str:
    """The name of the last instruction a finished frame executed."""
    import opcode

    code = frame.f_code.co_code
    i = frame.f_lasti
    return opcode.opname[code[i]] if 0 <= i < len(code) else ""


def _is_main_frame(frame: FrameType) -> bool:
    return frame.f_back is None and (frame.f_globals.get("__name__") == "__main__"
                                     or frame.f_code.co_name in _MAIN_CODE_NAMES)


def _find_main_frame() -> None:
    """The bottom frame of the program, when init() runs inside it; otherwise (init() from
    ``opentelemetry-instrument``'s sitecustomize, before the program starts) the next bottom frame to
    start, caught by a profile function that removes itself at once."""
    if _thread.get_ident() != _main[1]:
        return
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    if _is_main_frame(frame):
        _main[0] = frame
        return
    if sys.getprofile() is not None:
        return

    def catch(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_back is None and _is_main_frame(frame):
            _main[0] = frame
            sys.setprofile(None)

    _originals["profile"] = catch
    sys.setprofile(catch)


def _monitoring() -> bool:
    """3.12+: watch ``SystemExit`` unwinding the main thread's bottom frame (PY_UNWIND: one cheap check
    per frame an exception leaves; nothing at all while no exception crosses a frame)."""
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return False
    for tool in (4, 3):
        if monitoring.get_tool(tool) is None:
            break
    else:
        return False
    try:
        monitoring.use_tool_id(tool, "otel-expansion")
    except ValueError:
        return False
    main_thread = _main[1]
    get_ident, getframe = _thread.get_ident, sys._getframe

    def unwind(code: CodeType, offset: int, exc: BaseException) -> None:
        if isinstance(exc, SystemExit) and get_ident() == main_thread and getframe(1).f_back is None:
            _observed["unwound"] = exc

    event = monitoring.events.PY_UNWIND
    monitoring.register_callback(tool, event, unwind)
    monitoring.set_events(tool, monitoring.get_events(tool) | event)
    _monitor.append(tool)
    return True


def interrupted() -> bool:
    """The program ends with a KeyboardInterrupt that escaped it: the process is about to die by SIGINT."""
    status = final_exit()[0]
    return isinstance(status, KeyboardInterrupt)


def rearm_interrupt() -> None:
    """Restore CPython's "die by SIGINT at exit" after our exit work may have cleared it.

    CPython remembers an escaped KeyboardInterrupt in a flag that every ``exec``/``eval`` of source text
    resets (``run_eval_code_obj``): a dataclass or a protobuf module first imported in an atexit handler
    is enough, and the process would exit 1 instead of dying by SIGINT. Evaluating source that raises
    KeyboardInterrupt sets the flag again, exactly as the interpreter does for the program's own.
    """
    if sys.implementation.name != "cpython" or not interrupted():
        return
    try:  # noqa: SIM105 -- no contextlib import on the exit path
        exec("raise KeyboardInterrupt")
    except KeyboardInterrupt:
        pass


def unobserve_exit() -> None:
    if _originals:
        sys.exit = _originals.pop("exit")
        if "quitter" in _originals:
            cls, orig_call = _originals["quitter"]
            cls.__call__ = orig_call
        if _originals.get("profile") is not None and sys.getprofile() is _originals["profile"]:
            sys.setprofile(None)
        _originals.clear()
    if _monitor:
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        tool = _monitor.pop()
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.PY_UNWIND, None)
        monitoring.free_tool_id(tool)
    _main[0] = None
    _observed.clear()


def end_run(recorder: Recorder, run: CommandRun) -> None:
    """End an integration's ``run`` with the process's last word: the status the shell sees (or
    ``unknown`` when nobody could observe it), noting the exception that ended it as its error."""
    status, error, _ = final_exit()
    if error is not None and not isinstance(error, SystemExit):
        recorder.note_error(error)
    if status is UNKNOWN:
        recorder.end(run, None, unknown=True)
    else:
        recorder.end(run, status)


def short_clusters(argv: list[str]) -> list[tuple[str, str]]:
    """Combined short options (``-vtVALUE``) as typed, each with the argument before it, held in memory
    until the integration's ``finish`` splits them by the parser's declarations (argparse, click); never
    stored. Not after ``--``."""
    out: list[tuple[str, str]] = []
    previous = ""
    for arg in argv[:1024]:
        if not isinstance(arg, str) or arg == "--":
            break
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg[1].isascii() and arg[1].isalpha():
            out.append((previous, arg))
        previous = arg
    return out[:64]


def declared_flags(argv: list[str], options: dict[str, bool | int | None],
                   abbreviations: bool = False) -> tuple[str, ...]:
    """The declared options in ``argv`` as click's and optparse's parsers read them, each named once, in
    order of first use. ``options``: each declared option, False when it takes no value, True (one) or
    the number of values it takes (``nargs``), None when it may take one. ``--name`` and ``--name=value``
    give ``--name`` (``abbreviations``: a unique prefix of a declared long option names it, as optparse
    reads ``--ho`` for ``--host``); a combined short option is split (``-vqtVALUE`` is -v, -q and -t with
    the value VALUE: letters that take no value one after another, up to one that takes a value, whose
    first value the rest is). Never a value, a positional argument, an undeclared option, or anything
    after ``--``. The arguments an option takes as its values are skipped whatever they look like
    (``--password -abc``, ``-vp -abc``, ``--pair -v -h``); so is the one after an undeclared option (it
    may be its value)."""
    out: list[str] = []
    skip = 0
    longs = [o for o in options if o.startswith("--")] if abbreviations else []
    for arg in argv[:1024]:
        if skip:
            skip -= 1
            continue
        if not isinstance(arg, str) or len(arg) < 2 or arg[0] != "-":
            continue
        if arg == "--":
            break
        if arg[1] == "-":
            name, eq, _ = arg.partition("=")
            if name not in options and longs:
                matches = [o for o in longs if o.startswith(name)]
                if len(matches) == 1:
                    name = matches[0]
            if name in options:
                out.append(name)
            skip = max(0, _values(options.get(name, True)) - (1 if eq else 0))
            continue
        if not (arg[1].isascii() and arg[1].isalpha()):
            continue  # "-5", "-.": a value or a positional (named by no declaration)
        for i, letter in enumerate(arg[1:]):
            name = "-" + letter
            if name not in options:
                skip = 1  # undeclared: the rest, or the next argument, may be its value
                break
            out.append(name)
            kind = options[name]
            if kind is not False:  # takes values: the rest of the cluster is the first, then the next ones
                skip = max(0, _values(kind) - (0 if i == len(arg) - 2 else 1))
                break
    return tuple(dict.fromkeys(out))


def _values(kind: bool | int | None) -> int:
    """How many arguments after it an option takes (None, an optional value: none that looks like an
    option; a declaration's other kinds as said)."""
    if kind is None or kind is False:
        return 0
    if kind is True:
        return 1
    return max(0, int(kind))
