"""The last word on how the process exits: the status the shell sees, or honestly ``UNKNOWN``.

Frameworks do not always expose how a run ends (argparse never does; click may be wrapped by code that
catches its ``SystemExit`` and exits differently; ``sys.exit(main())`` decides after the command
returned; python-fire and pyflakes ``raise SystemExit`` themselves). What is read at shutdown:

- ``sys.last_value``: an exception other than ``SystemExit`` that escaped the program (the interpreter
  sets it before printing it) — exact on every Python;
- on 3.12+, ``sys.monitoring``'s ``PY_UNWIND`` event: a ``SystemExit`` that leaves the bottom frame of
  the main thread is the one the process exits with, whoever raised it; when none did and nothing
  escaped, the program completed normally — exact;
- on 3.10/3.11 (or when no monitoring tool id is free): the program's main frame, held from ``init()``
  on. A frame that returned (its last instruction is a return) completed normally: exit 0, exact. A
  frame left by an exception exits with the last ``sys.exit`` call (or ``FireExit``/``DocoptExit``,
  reported by their integrations through :func:`observe`) made from the main thread while that frame
  stood at the very instruction it was left at; otherwise the status is ``UNKNOWN`` (a hand-written
  ``raise SystemExit(n)``, pyflakes' ``raise SystemExit(warnings > 0)``), unless the program's entry
  point is wrapped (``otel_expansion.wrap``, exact everywhere: :func:`entry`). The observed exit must
  be the one that left: see :func:`_escaped`; the one blind spot left is a frame that swallows it and
  raises a new ``SystemExit`` by hand at the very instruction it was raised through (a loop).
- ``os.exec*`` (:func:`execs`): the new program decides the status: ``UNKNOWN``.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, FrameType
    from typing import Any

    from otel_expansion.collect.recorder import CommandRun, Recorder

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
"""``final()``'s status when the program was left by an exception nobody could see."""


def install() -> None:
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
            observe(exc, handling if handling is not None and not isinstance(handling, SystemExit) else None)
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
            observe(exc, handling if handling is not None and not isinstance(handling, SystemExit) else None)
            raise

    _originals["quitter"] = (cls, orig_call)
    _originals["codes"] += (__call__.__code__,)
    cls.__call__ = __call__  # type: ignore[method-assign]


def observe(status: BaseException, error: BaseException | None = None) -> None:
    """A ``SystemExit`` raised now, on its way out (``sys.exit``, a framework's own exit class)."""
    if _thread.get_ident() != _main[1]:  # another thread's sys.exit ends that thread, not the process
        return
    _seq[0] += 1
    frame = _main[0]
    _observed["status"] = status
    _observed["error"] = error
    _observed["seq"] = _seq[0]
    _observed["at"] = frame.f_lasti if frame is not None else None


def entry(status: BaseException) -> None:
    """The program's declared entry point (``otel_expansion.wrap``) ended with ``status``: the SystemExit
    that left it, or ``SystemExit(returned)`` that ``sys.exit(main())`` exits with. Exact by contract:
    nothing above the entry point handles it (a console script's ``sys.exit(main())``)."""
    _observed["entry"] = status


def execs() -> None:
    """The process is about to replace its image (``os.exec*``): its exit status is the new program's."""
    _observed["exec"] = True


def seq() -> int:
    """Sequence number of the latest observation (0 before any)."""
    return _seq[0]


def final() -> tuple[BaseException | None, BaseException | None, int]:
    """(what the process exits with, the error it was handling then, sequence number).

    The status is a ``SystemExit`` (``SystemExit(None)`` for a program that completed normally), the
    exception that escaped, ``UNKNOWN``, or None when nothing can be said (no observation installed)."""
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
    status = final()[0]
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


def uninstall() -> None:
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
    status, error, _ = final()
    if error is not None and not isinstance(error, SystemExit):
        recorder.note_error(error)
    if status is UNKNOWN:
        recorder.end(run, None, unknown=True)
    else:
        recorder.end(run, status)
