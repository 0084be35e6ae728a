"""An opt-in (ask) click CLI: nothing is collected until the user agrees."""

from __future__ import annotations

import click

import otel_expansion

otel_expansion.init("optin", "1.0", consent="ask")


@click.command()
def main() -> None:
    click.echo("working")


if __name__ == "__main__":
    main()
