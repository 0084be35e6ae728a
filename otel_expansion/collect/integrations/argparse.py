"""argparse: the run starts at the first top-level ``parse_known_args`` and ends at process exit.

argparse has no run boundary of its own, so the exit status is observed where Python produces it
(see ``_exit``): ``sys.exit`` (argparse's own errors call it too) and uncaught exceptions. A program
that ends with a bare ``raise SystemExit(n)`` at top level is recorded with exit code 0: documented.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from otel_expansion.collect.integrations import _exit
from otel_expansion.collect.recorder import default_executable

_originals: dict[str, Any] = {}
_state: dict[str, Any] = {}


def install(telemetry: Any) -> None:
    import argparse

    if _originals:
        return
    recorder = telemetry.recorder
    parser_cls = argparse.ArgumentParser
    sub_cls = argparse._SubParsersAction
    _originals["parse_known_args"] = orig_parse = parser_cls.parse_known_args
    _originals["sub_call"] = orig_sub = sub_cls.__call__
    _exit.install()

    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        depth = _state.get("depth", 0)
        if depth == 0 and "run" not in _state and recorder.active is None:
            run = recorder.begin(default_executable(), origin="framework")
            if run is not None:
                _state["run"] = run
                _state["path"] = []
                _state["parsers"] = [self]
                recorder.set_args(list(args) if args is not None else sys.argv[1:])
        _state["depth"] = depth + 1
        try:
            return orig_parse(self, args, namespace)
        finally:
            _state["depth"] = depth

    def sub_call(self: Any, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> Any:
        if "run" in _state and values:
            from otel_expansion.privacy.names import UNDECLARED

            name = str(values[0])
            _state["path"].append(name if name in self._name_parser_map else UNDECLARED)
            if name in self._name_parser_map:
                _state["parsers"].append(self._name_parser_map[name])
        return orig_sub(self, parser, namespace, values, option_string)

    _originals["error"] = orig_error = parser_cls.error

    def error(self: Any, message: str) -> Any:
        if "run" in _state:
            telemetry.recorder.note_error(argparse.ArgumentError(None, message))
        return orig_error(self, message)

    parser_cls.parse_known_args = parse_known_args  # type: ignore[assignment]
    sub_cls.__call__ = sub_call  # type: ignore[method-assign]
    parser_cls.error = error  # type: ignore[method-assign]


def finish(telemetry: Any) -> None:
    """End the argparse run with the exit status observed; called at shutdown."""
    run = _state.pop("run", None)
    if run is None:
        return
    path = _state.pop("path", [])
    parsers = _state.pop("parsers", [])
    if path:
        from otel_expansion.privacy.names import UNDECLARED

        run.name = " ".join(path)
        run.origin = "framework" if UNDECLARED in path else "declared"
    if run.args:  # only flags a parser on the way declares: a mistyped flag may be someone's value
        declared = {"-h", "--help"}
        for parser in parsers:
            declared.update(getattr(parser, "_option_string_actions", {}))
        run.args = tuple(a for a in run.args if a in declared)
    status, error = _exit.observed()
    if error is not None:
        telemetry.recorder.note_error(error)
    telemetry.recorder.end(run, status)


def uninstall() -> None:
    import argparse

    if not _originals:
        return
    argparse.ArgumentParser.parse_known_args = _originals["parse_known_args"]  # type: ignore[method-assign]
    argparse._SubParsersAction.__call__ = _originals["sub_call"]  # type: ignore[method-assign]
    argparse.ArgumentParser.error = _originals["error"]  # type: ignore[method-assign]
    _exit.uninstall()
    _originals.clear()
    _state.clear()
