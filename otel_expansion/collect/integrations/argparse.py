"""argparse: the run starts at the first top-level ``parse_known_args`` and ends at process exit.

argparse has no run boundary of its own, so the exit status is observed where Python produces it:
``sys.exit`` (argparse's own errors call it too) and uncaught exceptions via ``sys.excepthook``. A
program that exits with ``raise SystemExit(n)`` at top level is recorded with exit code 0: documented.
"""

from __future__ import annotations

import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
    _originals["exit"] = orig_exit = sys.exit
    _originals["excepthook"] = orig_hook = sys.excepthook

    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        depth = _state.get("depth", 0)
        if depth == 0 and "run" not in _state and recorder.active is None:
            run = recorder.begin(default_executable())
            if run is not None:
                _state["run"] = run
                _state["path"] = []
                recorder.set_args(list(args) if args is not None else sys.argv[1:])
        _state["depth"] = depth + 1
        try:
            return orig_parse(self, args, namespace)
        finally:
            _state["depth"] = depth

    def sub_call(self: Any, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> Any:
        if "run" in _state and values:
            _state["path"].append(str(values[0]))
        return orig_sub(self, parser, namespace, values, option_string)

    def exit(status: Any = None) -> Any:
        _state.setdefault("exit", SystemExit(status))
        return orig_exit(status)

    def excepthook(tp: type[BaseException], value: BaseException, tb: Any) -> Any:
        _state.setdefault("exit", value)
        return orig_hook(tp, value, tb)

    parser_cls.parse_known_args = parse_known_args  # type: ignore[assignment]
    sub_cls.__call__ = sub_call  # type: ignore[method-assign]
    sys.exit = exit
    sys.excepthook = excepthook


def finish(telemetry: Any) -> None:
    """End the argparse run with the exit status observed; called at shutdown."""
    run = _state.pop("run", None)
    if run is None:
        return
    path = _state.pop("path", [])
    if path:
        run.name = " ".join(path)
    exc = _state.pop("exit", None)
    telemetry.recorder.end(run, exc)


def uninstall() -> None:
    import argparse

    if not _originals:
        return
    argparse.ArgumentParser.parse_known_args = _originals["parse_known_args"]  # type: ignore[method-assign]
    argparse._SubParsersAction.__call__ = _originals["sub_call"]  # type: ignore[method-assign]
    sys.exit = _originals["exit"]
    sys.excepthook = _originals["excepthook"]
    _originals.clear()
    _state.clear()
