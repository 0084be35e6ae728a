"""Observes how the process is about to exit: ``sys.exit`` calls and uncaught exceptions.

For runs whose end the framework does not expose (argparse, errors a framework formats itself before
calling ``sys.exit``), the status Python exits with is learned here. Calls pass straight through.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_originals: dict[str, Any] = {}
_observed: dict[str, Any] = {}


def install() -> None:
    if _originals:
        return
    _originals["exit"] = orig_exit = sys.exit
    _originals["excepthook"] = orig_hook = sys.excepthook

    def exit(status: Any = None) -> Any:
        if "status" not in _observed:
            _observed["status"] = SystemExit(status)
            handling = sys.exc_info()[1]  # e.g. the ClickException a framework is reporting
            if handling is not None and not isinstance(handling, SystemExit):
                _observed["error"] = handling
        return orig_exit(status)

    def excepthook(tp: type[BaseException], value: BaseException, tb: Any) -> Any:
        _observed.setdefault("status", value)
        _observed.setdefault("error", value)
        return orig_hook(tp, value, tb)

    sys.exit = exit
    sys.excepthook = excepthook


def observed() -> tuple[BaseException | None, BaseException | None]:
    """(what the process exits with, the error being handled when it chose to) — each may be None."""
    return _observed.get("status"), _observed.get("error")


def uninstall() -> None:
    if _originals:
        sys.exit = _originals.pop("exit")
        sys.excepthook = _originals.pop("excepthook")
    _observed.clear()
