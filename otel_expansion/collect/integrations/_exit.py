"""The last word on how the process exits: the status the shell sees, not the first ``sys.exit`` call.

Frameworks do not always expose how a run ends (argparse never does; click and typer may be wrapped by
code that catches their ``SystemExit`` and exits differently; ``sys.exit(main())`` decides after the
command returned). Two sources tell the truth, read at shutdown:

- ``sys.last_value``, which the interpreter sets for an exception that escapes the program (it is
  printed, then the process exits 1, or dies by SIGINT for KeyboardInterrupt) — whatever excepthook;
- otherwise the last call of ``sys.exit`` (wrapped here, calls pass straight through), installed by
  ``init()`` before the program's own ``sys.exit(main())`` looks the function up.

``raise SystemExit(n)`` written out by hand and caught-then-ignored exits are not observable from
Python; documented in the README.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_originals: dict[str, Any] = {}
_observed: dict[str, Any] = {}
_seq = [0]  # a counter of observations, so a run can tell which exits came after it ended
LATEST = 1 << 62  # the sequence number of an exception that escaped: nothing comes after it


def install() -> None:
    """Wrap ``sys.exit`` (idempotent); remembers an escaped exception left from before, to ignore it."""
    if _originals:
        return
    _originals["exit"] = orig_exit = sys.exit
    _originals["last"] = getattr(sys, "last_value", None)

    def exit(status: Any = None) -> Any:
        _seq[0] += 1
        _observed["status"] = SystemExit(status)
        _observed["seq"] = _seq[0]
        handling = sys.exc_info()[1]  # e.g. the ClickException a framework is reporting
        _observed["error"] = handling if handling is not None and not isinstance(handling, SystemExit) else None
        return orig_exit(status)

    exit.__doc__ = orig_exit.__doc__
    sys.exit = exit


def seq() -> int:
    """Sequence number of the latest observation (0 before any)."""
    return _seq[0]


def final() -> tuple[BaseException | None, BaseException | None, int]:
    """(what the process exits with, the error it was handling then, sequence number); None when unseen."""
    escaped = getattr(sys, "last_value", None)
    if escaped is not None and escaped is not _originals.get("last") and not isinstance(escaped, SystemExit):
        return escaped, escaped, LATEST
    return _observed.get("status"), _observed.get("error"), int(_observed.get("seq", 0))


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
        _originals.clear()
    _observed.clear()
