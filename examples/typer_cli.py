"""A typer CLI instrumented with one line."""

from __future__ import annotations

from pathlib import Path

import typer

import otel_expansion

otel_expansion.init("typercli", "2.1.0")
otel_expansion.declare_features(str(Path(__file__).with_name("typercli-features.toml")))  # a registry file

app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
users = typer.Typer()
app.add_typer(users, name="users")


@users.command("list")
def list_users(limit: int = 10) -> None:
    otel_expansion.feature("users.list")
    print(f"{limit} users")


@app.command()
def sync(dry_run: bool = False) -> None:
    if not dry_run:
        raise typer.Exit(code=3)
    print("dry run")


@app.command()
def crash() -> None:
    raise ValueError("unexpected state")


otel_expansion.add_telemetry_commands(app)  # typercli telemetry status|enable|disable|...

if __name__ == "__main__":
    app()
