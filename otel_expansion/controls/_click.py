"""click and typer: one ``telemetry`` command that passes its arguments to the shared implementation.

Passing arguments through (rather than one click command per subcommand) keeps registration to a
single object and makes every framework behave, parse and print exactly alike.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_SETTINGS = {"ignore_unknown_options": True, "allow_extra_args": True, "allow_interspersed_args": False}


def _run(args: list[str], program: str, name: str, service: str | None) -> int:
    from otel_expansion.controls.commands import run

    return run(args, prog=f"{program} {name}", service=service)


def add_click(group: Any, name: str, program: str, service: str | None, help: str) -> None:
    import sys

    # click itself, or the copy typer vendors (typer._click): the package that defines the group's base class
    base = next((c for c in type(group).__mro__ if c.__name__ == "Group"), type(group))
    click = sys.modules[base.__module__.rpartition(".")[0] or base.__module__]
    if not hasattr(group, "add_command") or not hasattr(click, "Command"):
        raise TypeError(f"{type(group).__name__} is not a click group")

    def telemetry(args: tuple[str, ...]) -> None:
        click.get_current_context().exit(_run(list(args), program, name, service))

    command = click.Command(
        name, callback=telemetry, help=help, add_help_option=False, context_settings=dict(_SETTINGS),
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
    )
    group.add_command(command, name)


def add_typer(app: Any, name: str, program: str, service: str | None, help: str) -> None:
    import typer

    if len(getattr(app, "registered_commands", ())) <= 1 and not getattr(app, "registered_groups", ()):
        raise TypeError("a typer app with a single command has no subcommands to add `telemetry` beside")

    def telemetry(ctx: typer.Context) -> None:
        raise typer.Exit(_run(list(ctx.args), program, name, service))

    telemetry.__annotations__ = {"ctx": typer.Context, "return": None}  # typer reads real types
    app.command(name, help=help, add_help_option=False, context_settings=dict(_SETTINGS))(telemetry)
