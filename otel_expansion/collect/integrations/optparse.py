"""optparse: the run starts at the first ``OptionParser.parse_args`` and ends at process exit.

optparse has no subcommands and no run boundary: as for argparse, the run ends at shutdown with the
status the process exits with (see ``integrations.final_exit``). Programs that dispatch by hand to a second parser whose
``prog`` is ``"tool check"`` are named by the words that ``prog`` adds to the first one's. Hooks sit
beside optparse's code (``_get_args``, the first step of ``parse_args``, returns at once), so no frame of
ours is on the stack while the program's callbacks run. A usage error (``error()``, exit 2) is recorded
with error type ``optparse.OptParseError``; its message (it quotes what the user typed) is never kept.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from otel_expansion.collect import default_executable, integrations

_originals: dict[str, Any] = {}
_state: dict[str, Any] = {}


def install(telemetry: Any) -> None:
    import optparse

    if _originals:
        return
    integrations.observe_exit()
    recorder = telemetry.recorder
    cls = optparse.OptionParser
    _originals["_get_args"] = orig_get_args = cls._get_args
    _originals["error"] = orig_error = cls.error

    def _get_args(self: Any, args: Any) -> Any:
        try:  # noqa: SIM105 -- no contextlib import on the CLI path
            _parse_starts(recorder, self, args)
        except Exception:
            pass
        return orig_get_args(self, args)

    def error(self: Any, msg: str) -> Any:
        if "run" in _state:
            recorder.note_error(optparse.OptParseError(msg))
        return orig_error(self, msg)

    cls._get_args = _get_args  # type: ignore[method-assign]
    cls.error = error  # type: ignore[method-assign]


def _parse_starts(recorder: Any, parser: Any, args: Any) -> None:
    """First parse: start the run. A later one whose ``prog`` extends the first: the subcommand."""
    run = _state.get("run")
    prog = str(parser.get_prog_name() or "")
    if run is None:
        if "root_prog" in _state or recorder.active is not None:
            return
        run = recorder.begin(default_executable(), origin="framework")
        if run is not None:
            _state.update(run=run, path=[], parsers=[parser], root_prog=prog)
            argv = list(args) if args is not None else sys.argv[1:]
            recorder.set_args(argv)
            if run.args:  # argument shapes are kept at this level: read by the declarations at the end
                _state["argv"] = argv  # (in memory only, never stored)
        return
    _state["parsers"].append(parser)
    root = _state["root_prog"]
    if root and prog.startswith(root + " ") and not _state["path"]:
        words = prog[len(root):].split()
        if words:  # a prog built at run time (f"tool {cmd}"): each word must be in the vocabulary
            from otel_expansion.privacy.vocabulary import command_word

            frame = _program_frame()
            _state["path"] = [command_word(w, recorder.declared_commands, frame) for w in words]
            run.name, run.origin = " ".join(_state["path"]), "declared"


def _program_frame() -> Any:
    """The program's frame that made the parser parse (its code holds the words it may name)."""
    frame: Any = sys._getframe(2)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(("optparse", "otel_expansion.")):
        frame = frame.f_back
    return frame


def finish(telemetry: Any) -> None:
    """End the optparse run with the status the process exits with; called at shutdown."""
    run = _state.pop("run", None)
    if run is None:
        return
    path = _state.pop("path", [])
    parsers = _state.pop("parsers", [])
    if path:  # each word passed the vocabulary when its parser parsed
        run.name, run.origin = " ".join(path), "declared"
    argv = _state.pop("argv", [])
    if run.args:  # only options a parser on the way declares: a mistyped flag may be someone's value
        options: dict[str, bool | int | None] = {}
        try:
            for p in parsers:
                for table in (getattr(p, "_long_opt", {}), getattr(p, "_short_opt", {})):
                    for name, option in table.items():
                        takes = option.takes_value()
                        options.setdefault(name, (option.nargs or 1) if takes else False)
        except Exception:
            options = {}
        run.args = integrations.declared_flags(argv, options, abbreviations=True)  # optparse reads --ho
    integrations.end_run(telemetry.recorder, run)


def uninstall() -> None:
    import optparse

    if not _originals:
        return
    optparse.OptionParser._get_args = _originals["_get_args"]  # type: ignore[method-assign]
    optparse.OptionParser.error = _originals["error"]  # type: ignore[method-assign]
    _originals.clear()
    _state.clear()
