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

Flags (at ``full``) are read as docopt reads them: two more hooks wrap its ``parse_long`` and
``parse_shorts``, which turn argv's tokens into the declared options. Each option they return that the
usage text declares is named as typed (a combined ``-vqtVALUE`` gives -v, -q and -t; an abbreviation
``--verb`` names ``--verbose``), and a token an option takes as its value is never a flag
(``--password -vqx``). They count once the parse succeeds; ``-h``, ``--help`` and ``--version`` also when
docopt exits on them.
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
        _state.pop("typed", None)  # the parse failed: what it read is not what the program was given
        try:
            error = UsageError()
            if _begin(recorder) is not None:
                recorder.note_error(error)
            integrations.observe_status(self, error)
        except Exception:
            pass

    result_cls.__init__ = result_init
    exit_cls.__init__ = exit_init
    readers = {name: fn for name in _READERS if callable(fn := getattr(docopt, name, None))}
    _originals[docopt] = dict(readers)
    _state["recorder"], _state["argv_error"] = recorder, exit_cls
    for name, fn in readers.items():
        setattr(docopt, name, _reading(fn, _READERS[name]))


_EXITS = ("-h", "--help", "--version")
"""Options docopt answers by printing and exiting (``extras``) before it builds a result."""
_READERS = {"parse_long": "long", "parse_shorts": "short"}
"""docopt's functions that read argv's options (each returns the options a token gave), and the attribute
that holds the name as typed: the long one (an abbreviation expanded) or the short letter."""


def _reading(parse: Any, form: str) -> Any:
    """``parse`` noting the declared options it reads from argv (in ``_state["typed"]``, counted at the
    parse's end). docopt reads its usage pattern with the same functions: argv's tokens are the ones whose
    errors are ``DocoptExit`` (the pattern's raise ``DocoptLanguageError``), as docopt itself tells them."""

    def hooked(tokens: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        argv = getattr(tokens, "error", None) is _state.get("argv_error")
        try:
            declared = {getattr(o, form, None) for o in options} if argv else set()  # before the call: it
        except Exception:  # adds undeclared options to ``options``
            declared = set()
        parsed = parse(tokens, options, *args, **kwargs)
        if declared:
            try:
                typed = _state.setdefault("typed", [])
                new = [n for o in parsed if (n := getattr(o, form, None)) and n in declared]
                typed.extend(new[:max(0, 256 - len(typed))])
                if any(n in _EXITS for n in new):  # docopt exits on it before any result: the run starts here
                    _begin(_state["recorder"])
            except Exception:
                pass
        return parsed

    return hooked


def _begin(recorder: Any) -> Any:
    run = _state.get("run")
    if run is None and recorder.active is None and not _state.get("done"):
        run = recorder.begin(default_executable(), origin="framework")
        if run is not None:
            _state["run"] = run
            _state["words"] = []
            _state["flags"] = []
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
    _state["flags"].extend(_state.pop("typed", ()))  # the options this parse read, now that it succeeded


def _is_command(key: str) -> bool:
    """A command word of the usage pattern: not an option (``--x``), not ``<arg>`` nor ``ARG``."""
    core = key.replace("-", "").replace("_", "").replace(".", "")
    return key[:1].isalpha() and core.isalnum() and core.isascii() and not key.isupper()


def finish(telemetry: Any) -> None:
    """End the docopt run with the status the process exits with; called at shutdown."""
    run = _state.pop("run", None)
    flags = _state.pop("flags", [])
    flags += [f for f in _state.pop("typed", ()) if f in _EXITS]  # docopt exited on it
    _state.pop("words", None)
    _state["done"] = True
    if run is None:
        return
    if run.args:  # at this level argument shapes are kept: the options docopt read, each named once
        run.args = tuple(dict.fromkeys(flags))
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
