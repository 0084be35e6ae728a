"""A program that hands every corpus value to telemetry through every door it has (run by test_corpus_leaks).

    python leak_app.py FRAMEWORK MODE      FRAMEWORK: click | typer | argparse | argparse-usage | manual

The values come from the JSON file in $LEAK_VALUES at run time, so none of them is a string constant of
this code (which would make it the program's own text). Each value goes in as a positional, an option
value, an undeclared flag, a dynamic command or plugin name, a dynamic feature name, feature attributes,
a handled exception, an uncaught exception's message and its chained cause; usage errors echo it. Many
invocations run in one process (click/typer through ``main(standalone_mode=False)``), to keep CPU low.
With $LEAK_AUTO set the app does not call init(): opentelemetry-instrument's configurator did.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

VALUES: list[str] = json.load(open(os.environ["LEAK_VALUES"], encoding="utf-8"))  # noqa: SIM115
FRAMEWORK, MODE = sys.argv[1], sys.argv[2]

import otel_expansion

if not os.environ.get("LEAK_AUTO"):
    otel_expansion.init("leakapp", os.environ.get("LEAK_VERSION"), mode=MODE)


def work(name: str, target: str) -> None:
    """What a command does with user data: features, a handled error, then a chained failure."""
    otel_expansion.feature("sync.started", who=name, target=target, note=f"syncing {target} for {name}",
                           items=[name, target], count=3, ok=True)
    otel_expansion.feature(name)  # a name built at run time
    try:
        raise ValueError(f"no account {name!r} at {target}")
    except ValueError as exc:
        otel_expansion.record_exception(exc)
    try:
        raise KeyError(name)
    except KeyError as cause:
        raise RuntimeError(f"sync of {target} failed for {name}: retry later") from cause


def finish_run() -> None:
    """What process exit does for a run a usage error left open (the loop keeps one process)."""
    from otel_expansion import _runtime
    from otel_expansion.collect import integrations

    if _runtime._handle is not None:
        integrations.finish_all(_runtime._handle)


def flush_every(i: int, n: int = 150) -> None:
    """Persist every ``n`` values, as a long-running program's flushes would (bounded journal records)."""
    from otel_expansion import _runtime

    if i % n == n - 1 and _runtime._handle is not None:
        _runtime._handle.flush()


def invoke(main: object, args: list[str]) -> None:
    sys.argv = ["leakapp", *args]
    with contextlib.suppress(BaseException):
        main(args, prog_name="leakapp", standalone_mode=False)  # type: ignore[operator]
    finish_run()


def run_click() -> None:
    import click

    class PluginGroup(click.Group):
        """git/kubectl style: an unknown command name runs a plugin of that name."""

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            found = super().get_command(ctx, cmd_name)
            if found is not None:
                return found

            @click.command(name=cmd_name)
            @click.argument("rest", nargs=-1)
            def plugin(rest: tuple[str, ...]) -> None:
                raise RuntimeError(f"plugin {cmd_name} failed on {' '.join(rest)}")

            return plugin

    @click.group(cls=PluginGroup)
    @click.option("--verbose", is_flag=True)
    def cli(verbose: bool) -> None:
        pass

    @cli.command()
    @click.option("--name", default="")
    @click.argument("target")
    def sync(name: str, target: str) -> None:
        work(name, target)

    for i, v in enumerate(VALUES):
        flush_every(i)
        invoke(cli.main, ["--verbose", "sync", "--name", v, v])
        invoke(cli.main, ["sync", f"--{v}", "x"])  # an undeclared flag: usage error that echoes it
        if not v.startswith("-"):
            invoke(cli.main, [v, v])  # a plugin name: the typed positional becomes a command


def run_typer() -> None:
    import typer

    app = typer.Typer(add_completion=False)

    @app.command()
    def sync(target: str, name: str = "") -> None:
        work(name, target)

    @app.command()
    def status() -> None:
        pass

    main = typer.main.get_command(app).main
    for i, v in enumerate(VALUES):
        flush_every(i)
        invoke(main, ["sync", "--name", v, v])
        invoke(main, ["sync", f"--{v}", "x"])
        if not v.startswith("-"):
            invoke(main, [v, "x"])  # not a command: usage error that echoes it


def run_argparse(usage_error: bool) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="leakapp")
    parser.add_argument("--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd")
    p = sub.add_parser("sync")
    p.add_argument("--name", action="append", default=[])
    p.add_argument("targets", nargs="*")
    if usage_error:  # an invalid sub-command: argparse prints it and exits 2
        sys.argv = ["leakapp", VALUES[0], "--name", VALUES[1]]
        parser.parse_args(sys.argv[1:])
        return
    argv = ["--verbose", "sync", *VALUES, *(x for v in VALUES for x in ("--name", v)), *(f"--{v}" for v in VALUES)]
    sys.argv = ["leakapp", *argv]
    parser.parse_known_args(argv)
    for i, v in enumerate(VALUES):
        flush_every(i, 500)
        with contextlib.suppress(RuntimeError):
            work(v, v)
    try:
        raise KeyError(VALUES[0])
    except KeyError as cause:
        raise RuntimeError(f"sync failed for {', '.join(VALUES[:40])}") from cause


def run_manual() -> None:
    for i, v in enumerate(VALUES):
        flush_every(i)
        with contextlib.suppress(RuntimeError), otel_expansion.command(v):  # a name built at run time
            work(v, v)
        with contextlib.suppress(RuntimeError), otel_expansion.command("deploy"):
            work(v, "prod")


if FRAMEWORK == "click":
    run_click()
elif FRAMEWORK == "typer":
    run_typer()
elif FRAMEWORK.startswith("argparse"):
    run_argparse(FRAMEWORK == "argparse-usage")
else:
    run_manual()
