"""typer: its commands run on click's ``Context``, so the click integration's hooks cover typer apps.

Installing this module just makes sure those hooks are in place when typer is imported first.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def install(telemetry: Any) -> None:
    from otel_expansion.collect.integrations import _install

    _install("click")


def finish(telemetry: Any) -> None:
    return None


def uninstall() -> None:
    return None
