"""typer: its commands run on a click ``Context``, so the click integration's hooks cover typer apps.

Recent typer releases vendor click as ``typer._click``; the same hooks are installed on that copy.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:

    from otel_expansion.collect.integrations import TelemetryHandle


def install(telemetry: TelemetryHandle) -> None:
    import typer

    from otel_expansion.collect.integrations import click as click_integration

    vendored = getattr(typer, "_click", None)
    if vendored is not None and hasattr(vendored, "Context"):
        click_integration.hook(vendored, telemetry)
    else:
        from otel_expansion.collect.integrations import _install

        _install("click")


def finish(telemetry: TelemetryHandle) -> None:
    from otel_expansion.collect.integrations import click as click_integration

    click_integration.finish(telemetry)


def uninstall() -> None:
    return None
