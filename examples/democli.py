"""A small click CLI instrumented with one line, used by the README demo and the integration tests."""

from __future__ import annotations

import time

import click

import otel_expansion

otel_expansion.init("democli", "1.0.0", opt_out_env="DEMOCLI_NO_TELEMETRY")


@click.group()
def cli() -> None:
    """Demo tool."""


@cli.command()
@click.argument("name")
@click.option("--shout", is_flag=True)
def hello(name: str, shout: bool) -> None:
    """Greet NAME."""
    otel_expansion.feature("greeting", shout=shout)
    msg = f"hello {name}"
    click.echo(msg.upper() if shout else msg)


@cli.group()
def remote() -> None:
    """Manage remotes."""


@remote.command("add")
@click.argument("url")
def remote_add(url: str) -> None:
    """Add a remote."""
    click.echo(f"added {url}")


@cli.command()
def fail() -> None:
    """Always fails."""
    raise RuntimeError("boom: could not reach alice@example.com")


@cli.command()
@click.option("--seconds", default=0.05, type=float)
@click.option("--ready-file", type=click.Path(), default=None, hidden=True)
def work(seconds: float, ready_file: str | None) -> None:
    """Sleep a little, to have a duration worth measuring."""
    if ready_file:  # tests wait for this file instead of guessing how long start-up takes
        open(ready_file, "w").close()
    time.sleep(seconds)
    click.echo("done")


@cli.command()
def interrupt() -> None:
    """Simulates Ctrl-C."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    cli()
