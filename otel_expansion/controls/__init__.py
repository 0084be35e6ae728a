"""``add_telemetry_commands(cli)``: the end user's telemetry controls inside the host program.

Why a package of its own: like ``cli/`` it is a leaf that drives the whole stack (consent, journal,
spool, sender), so no library layer may import it; unlike ``cli/`` it runs inside the host's process, so
registering it must cost nothing. This module only recognises the framework and adds one ``telemetry``
entry that passes its arguments through; the commands themselves (``commands.py``) load when the user
runs one.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    C = TypeVar("C")

SUBCOMMANDS = ("status", "enable", "disable", "level", "show", "flush", "reset-id", "debug", "docs")
HELP = "See and control the anonymous usage telemetry this program collects."


def add_telemetry_commands(cli: C, *, name: str = "telemetry", prog: str | None = None,
                           service: str | None = None) -> C:
    """Add ``<prog> telemetry status|enable|disable|level|show|flush|reset-id|debug|docs`` to ``cli``.

    ``cli`` is a click group, a typer app with subcommands, or an argparse parser with subparsers.
    ``prog`` is the program's name as users type it (default: from ``sys.argv[0]`` or the parser);
    ``service`` is only needed when ``otel_expansion.init()`` is not called. Returns ``cli``. Never
    raises: an unsupported object gets one warning and the host program runs unchanged.
    """
    try:
        _add(cli, name, prog, service)
    except KeyboardInterrupt:  # at the first-run question: the user stops the program, as anywhere else
        raise KeyboardInterrupt("at the telemetry question; no answer stored") from None
    except Exception as exc:
        from otel_expansion.config.warn_once import warn

        warn(f"add_telemetry_commands(): {exc}; no `{name}` command added")
    return cli


def _is(obj: Any, module_prefix: str, class_name: str) -> bool:
    return any(c.__name__ == class_name and c.__module__.startswith(module_prefix) for c in type(obj).__mro__)


def _add(cli: Any, name: str, prog: str | None, service: str | None) -> None:
    if _is(cli, "argparse", "ArgumentParser"):
        from otel_expansion.controls import _argparse

        program = prog or cli.prog
        _argparse.add(cli, name, program, service, HELP)
    elif _is(cli, "typer", "Typer"):
        from otel_expansion.controls import _click

        program = prog or _program()
        _click.add_typer(cli, name, program, service, HELP)
    elif hasattr(cli, "add_command") and hasattr(cli, "commands"):  # click.Group (or typer's vendored click)
        from otel_expansion.controls import _click

        program = prog or _program()
        _click.add_click(cli, name, program, service, HELP)
    else:
        raise TypeError(f"{type(cli).__name__} is not a click group, typer app or argparse parser")
    _settle_notice(program, name)


def _program() -> str:
    from otel_expansion.collect import default_executable

    return default_executable()


def _settle_notice(program: str, name: str) -> None:
    """Show the deferred first-run notice now, naming these commands (not when they are being run)."""
    if name in sys.argv[1:]:
        return  # the user is looking at or changing telemetry right now; the command settles it
    from otel_expansion.privacy import consent

    consent.settle(program, in_time=True)


__all__ = ["SUBCOMMANDS", "add_telemetry_commands"]
