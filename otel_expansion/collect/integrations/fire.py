"""python-fire: the run starts when ``fire.Fire`` starts and ends at process exit.

No wrapper around ``Fire`` (it would add a frame to every traceback a failing command prints): three
small hooks beside fire's own code. ``parser.SeparateFlagArgs`` (Fire's first step, before its
internal argparse parser runs) starts the run; ``FireTrace.__init__`` hands over the trace of the
components Fire walks; ``FireExit.__init__`` reports fire's own exits (usage error 2, help 0) to the
exit observer, since fire raises them itself rather than calling ``sys.exit``.

The command is the chain of members the user's words reached (``calc sub deep``): names of the program's
code (members of its classes and modules, keys of a dict written as literals where ``Fire`` is called)
are kept; any other dict key or a list index the words picked is ``<dynamic>``. The exit status is
the process's last word (see ``integrations.final_exit``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from otel_expansion.collect import default_executable, integrations

_originals: dict[Any, dict[str, Any]] = {}
_state: dict[str, Any] = {}
_ACCESSED = "Accessed property"


def install(telemetry: Any) -> None:
    import fire.core
    import fire.parser
    import fire.trace

    if _originals:
        return
    integrations.observe_exit()
    recorder = telemetry.recorder
    parser_mod, trace_cls, exit_cls = fire.parser, fire.trace.FireTrace, fire.core.FireExit
    _originals[parser_mod] = {"SeparateFlagArgs": parser_mod.SeparateFlagArgs}
    _originals[trace_cls] = {"__init__": trace_cls.__init__}
    _originals[exit_cls] = {"__init__": exit_cls.__init__}
    orig_separate, orig_trace, orig_exit = parser_mod.SeparateFlagArgs, trace_cls.__init__, exit_cls.__init__

    def SeparateFlagArgs(args: Any) -> Any:
        if "run" not in _state and recorder.active is None:
            try:
                run = recorder.begin(default_executable(), origin="framework")
                if run is not None:
                    _state["run"] = run
                    _state["caller"] = _caller_of_fire()
                    recorder.set_args(list(args) if isinstance(args, (list, tuple)) else [])
            except Exception:
                pass
        return orig_separate(args)

    def trace_init(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_trace(self, *args, **kwargs)
        if "run" in _state and "trace" not in _state:
            _state["trace"] = self

    def exit_init(self: Any, code: Any, component_trace: Any, *args: Any, **kwargs: Any) -> None:
        orig_exit(self, code, component_trace, *args, **kwargs)
        try:
            error = _trace_error(component_trace)
            if error is not None and _state.get("run") is not None:
                recorder.note_error(error)
            integrations.observe_status(self, error)
        except Exception:
            pass

    parser_mod.SeparateFlagArgs = SeparateFlagArgs
    trace_cls.__init__ = trace_init
    exit_cls.__init__ = exit_init


def _caller_of_fire() -> Any:
    """The frame that called ``fire.Fire`` (its string constants: the keys of a dict it passed)."""
    import sys

    frame: Any = sys._getframe(2)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(("fire.", "otel_expansion.")):
        frame = frame.f_back
    return frame


def _trace_error(trace: Any) -> BaseException | None:
    """The FireError of a trace that ended in a usage error (fire exits 2 with it)."""
    try:
        if trace is not None and trace.HasError():
            error = trace.elements[-1]._error
            return error if isinstance(error, BaseException) else None
    except Exception:
        return None
    return None


def command_words(trace: Any, caller: Any = None) -> tuple[list[str], bool]:
    """The members the user's words reached, and whether all are names of the program's code: members
    of its modules and classes, or keys of a dict written as string literals in the code that called
    ``Fire`` (``fire.Fire({"add": add})``)."""
    from otel_expansion.privacy.provenance import literal_in_caller
    from otel_expansion.privacy.vocabulary import DYNAMIC

    words: list[str] = []
    declared = True
    parent: Any = None
    for element in getattr(trace, "elements", ()):
        target = getattr(element, "_target", None)
        if getattr(element, "_action", None) == _ACCESSED:
            member = isinstance(target, str) and target.isidentifier() and (
                _declares(parent, target) or (isinstance(parent, dict) and caller is not None
                                              and literal_in_caller(target, caller)))
            words.append(target if member else DYNAMIC)  # type: ignore[arg-type]  # member implies str
            declared = declared and member
        parent = getattr(element, "component", None)
    return words, declared


def _declares(owner: Any, name: str) -> bool:
    """``name`` is defined in the code of ``owner``: a module's function or class, a member of a class (of
    an instance's class). Looked up statically, never by ``getattr`` (a property would run the program's
    code again); a dict key, a list index or an attribute an object set on itself may hold data."""
    import types

    try:
        if isinstance(owner, types.ModuleType):
            return name in vars(owner)
        if isinstance(owner, (dict, list, tuple)):
            return False
        classes = owner.__mro__ if isinstance(owner, type) else type(owner).__mro__
        return any(name in vars(cls) for cls in classes if cls is not object)
    except Exception:
        return False


def finish(telemetry: Any) -> None:
    """End the fire run with the status the process exits with; called at shutdown."""
    run = _state.pop("run", None)
    trace = _state.pop("trace", None)
    caller = _state.pop("caller", None)
    if run is None:
        return
    words, declared = command_words(trace, caller)
    if words:
        run.name = " ".join(words)
        run.origin = "declared" if declared else "framework"
    if run.args:  # only flags fire itself understands: others are the program's values
        run.args = tuple(a for a in run.args if a in ("--", "-h", "--help", "--interactive", "-i", "--trace", "-t",
                                                      "--verbose", "-v", "--separator", "--completion"))
    integrations.end_run(telemetry.recorder, run)


def uninstall() -> None:
    for owner, attrs in _originals.items():
        for name, fn in attrs.items():
            setattr(owner, name, fn)
    _originals.clear()
    _state.clear()
