"""docopt (0.6.2, as pipreqs pins it) and docopt-ng: the run starts when ``docopt()`` has parsed and ends
at process exit.

No wrapper around ``docopt()``: two hooks beside its code. The dict it returns (``Dict`` in docopt,
``ParsedOptions`` in docopt-ng) is built once per successful parse: its command words set to true
name the run (``remote add``); words the usage text declares are the program's own, literal names.
``DocoptExit.__init__`` sees a usage error (exit 1 with the usage text): recorded with error type
``docopt.DocoptExit``, and reported to the exit observer since docopt raises it rather than calling
``sys.exit``. ``--help`` and ``--version`` exit through ``sys.exit`` before any dict is built: the
program's run without a command. A program that dispatches to a second ``docopt()`` (git-style
``<command> [<args>...]``) is named by the words of the second when the first had none.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from otel_expansion.collect import default_executable, integrations

_originals: dict[Any, dict[str, Any]] = {}
_state: dict[str, Any] = {}


class UsageError(Exception):
    """Stands for a ``DocoptExit`` in the record: reported as ``docopt.DocoptExit``
    (``privacy.vocabulary.stand_in``: a SystemExit itself would be recorded as its exit code only); the
    message is never kept."""


def install(telemetry: Any) -> None:
    import docopt

    if _originals:
        return
    integrations.observe_exit()
    recorder = telemetry.recorder
    result_cls = getattr(docopt, "ParsedOptions", None) or docopt.Dict
    exit_cls = docopt.DocoptExit
    from otel_expansion.privacy.vocabulary import stand_in

    stand_in(UsageError, exit_cls)
    _originals[result_cls] = {"__init__": result_cls.__dict__.get("__init__")}
    _originals[exit_cls] = {"__init__": exit_cls.__dict__.get("__init__")}
    base_init = dict.__init__
    orig_exit = exit_cls.__init__

    def result_init(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        try:  # noqa: SIM105 -- no contextlib import on the CLI path
            _parsed(recorder, self)
        except Exception:
            pass

    def exit_init(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_exit(self, *args, **kwargs)
        try:
            error = UsageError()
            if _begin(recorder) is not None:
                recorder.note_error(error)
            integrations.observe_status(self, error)
        except Exception:
            pass

    result_cls.__init__ = result_init
    exit_cls.__init__ = exit_init


def _begin(recorder: Any) -> Any:
    run = _state.get("run")
    if run is None and recorder.active is None and not _state.get("done"):
        run = recorder.begin(default_executable(), origin="framework")
        if run is not None:
            _state["run"] = run
            _state["words"] = []
            _state["flags"] = set()
            import sys

            recorder.set_args(sys.argv[1:])
    return run


def _parsed(recorder: Any, result: dict[Any, Any]) -> None:
    """A successful parse: its true command words name the run (unless an earlier parse named it)."""
    run = _begin(recorder)
    if run is None:
        return
    words = [k for k, v in result.items() if isinstance(k, str) and v and _is_command(k)]
    if words and not _state["words"]:
        _state["words"] = words
        run.name = " ".join(words)
        run.origin = "declared"  # words of the program's own usage text
    _state["flags"].update(k for k in result if isinstance(k, str) and k.startswith("-"))


def _is_command(key: str) -> bool:
    """A command word of the usage pattern: not an option (``--x``), not ``<arg>`` nor ``ARG``."""
    core = key.replace("-", "").replace("_", "").replace(".", "")
    return key[:1].isalpha() and core.isalnum() and core.isascii() and not key.isupper()


def finish(telemetry: Any) -> None:
    """End the docopt run with the status the process exits with; called at shutdown."""
    run = _state.pop("run", None)
    flags = _state.pop("flags", set())
    _state.pop("words", None)
    _state["done"] = True
    if run is None:
        return
    if run.args:  # only options the usage text declares: a mistyped flag may be someone's value
        run.args = tuple(a for a in run.args if a in flags or a in ("-h", "--help", "--version"))
    integrations.end_run(telemetry.recorder, run)


def uninstall() -> None:
    for owner, attrs in _originals.items():
        for name, fn in attrs.items():
            if fn is None:
                try:  # noqa: SIM105
                    delattr(owner, name)
                except AttributeError:
                    pass
            else:
                setattr(owner, name, fn)
    _originals.clear()
    _state.clear()
