"""The explicit entry-point wrapper: every exit of the program observed exactly, on every Python.

Two forms:

- the decorator, for a program whose code you own::

      @otel_expansion.wrap
      def main() -> int: ...

  Whatever leaves ``main`` (a return value that the console script's ``sys.exit(main())`` exits with, a
  ``SystemExit`` raised anywhere inside, by hand or by a library) is the exit status, exactly. The
  contract: ``main`` is the program's entry point (nothing above it catches its exit). Like any
  decorator, its one frame shows in the traceback of an exception that escapes ``main``.

- the console-script form, no code change: point the console script at ``otel_expansion.entry:main``
  and name the real entry point in the entry-point group ``otel_expansion.entry`` under the same script
  name, or run ``otel-expansion-run MODULE:FUNCTION [ARGS...]``::

      [project.scripts]
      mytool = "otel_expansion.entry:main"
      [project.entry-points."otel_expansion.entry"]
      mytool = "mypkg.cli:main"

  ``init()`` is called for the program (service name: ``OTEL_SERVICE_NAME``, else the script's name;
  version: the distribution's) the way ``opentelemetry-instrument`` does it: a later ``init()`` of the
  program itself takes over with its own options.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

GROUP = "otel_expansion.entry"
"""The entry-point group naming the real entry point of a console script set to ``otel_expansion.entry:main``."""

__all__ = ["GROUP", "main", "wrap"]


def wrap(fn: F) -> F:
    """Decorate the program's entry point: its exit (returned status or SystemExit) is recorded exactly."""

    def entry_point(*args: Any, **kwargs: Any) -> Any:
        from otel_expansion.collect import integrations

        try:
            result = fn(*args, **kwargs)
        except SystemExit as exc:
            integrations.entry_exit(exc)
            raise
        integrations.entry_exit(SystemExit(result))  # what ``sys.exit(main())`` exits with
        return result

    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:  # noqa: SIM105 -- functools/contextlib cost a CLI import time
            setattr(entry_point, attr, getattr(fn, attr))
        except AttributeError:
            pass
    entry_point.__dict__.update(getattr(fn, "__dict__", {}))
    entry_point.__wrapped__ = fn  # type: ignore[attr-defined]
    return entry_point  # type: ignore[return-value]


def _target(argv: list[str]) -> tuple[str, str, list[str], str | None] | None:
    """(``module:function``, the program's name, its arguments, its version) from ``argv``."""
    import os

    script = os.path.basename(argv[0]) if argv else ""
    if len(argv) > 1 and ":" in argv[1] and not argv[1].startswith("-"):  # otel-expansion-run MOD:FN ARGS
        target = argv[1]
        name = target.partition(":")[0].partition(".")[0]
        return target, name, argv[2:], None
    from importlib.metadata import entry_points

    for ep in entry_points(group=GROUP):
        if ep.name == script:
            dist = getattr(ep, "dist", None)
            return ep.value, script, argv[1:], getattr(dist, "version", None)
    return None


def _load(target: str) -> Callable[..., Any]:
    module_name, _, attrs = target.partition(":")
    import importlib

    obj: Any = importlib.import_module(module_name.strip())
    for attr in attrs.strip().split("."):
        if attr:
            obj = getattr(obj, attr)
    return obj  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> Any:
    """Console-script form: run the program's real entry point under the wrapper, its exit exact."""
    argv = list(sys.argv if argv is None else argv)
    found = _target(argv)
    if found is None:
        sys.stderr.write(f"{argv[0] if argv else 'otel-expansion-run'}: usage: otel-expansion-run "
                         "MODULE:FUNCTION [ARGS...] (or name this script in the entry-point group "
                         f"{GROUP!r})\n")
        return 2
    target, name, args, version = found
    sys.argv = [argv[0] if len(argv) < 2 or argv[1] != target else name, *args]
    try:
        import os

        from otel_expansion._runtime import _init

        _init(os.environ.get("OTEL_SERVICE_NAME") or name, version, {}, auto=True)
    except Exception as exc:  # telemetry never stops the program
        from otel_expansion.config import warn

        warn(f"telemetry error in init() ignored: {type(exc).__name__}: {exc}")
    return wrap(_load(target))()


if __name__ == "__main__":
    sys.exit(main())
