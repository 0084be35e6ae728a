"""A click CLI with no telemetry code at all: run it under `opentelemetry-instrument`."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    pass


@cli.command()
@click.argument("name")
def greet(name: str) -> None:
    click.echo(f"hi {name}")


if __name__ == "__main__":
    cli()
