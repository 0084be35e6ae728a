"""``opentelemetry-instrument`` entry points: our distro and configurator.

Under ``opentelemetry-instrument python mycli.py`` the SDK is loaded anyway, so telemetry runs in
service mode: our providers become the global ones (so other instrumentations' spans pass the same
level filter and redaction), data goes to the local spool, and the network is left to the sender.

Installing a library must not take over every program in the environment: when another distro or
configurator is installed too and ``OTEL_PYTHON_DISTRO``/``OTEL_PYTHON_CONFIGURATOR`` do not name ours,
we hand over to it and stay out of the way.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

NAME = "otel_expansion"


def _other(group: str, variable: str) -> Any | None:
    """The entry point of another installed distro/configurator we should defer to, if any."""
    chosen = os.environ.get(variable)
    if chosen == NAME:
        return None
    from importlib.metadata import entry_points

    others = [ep for ep in entry_points(group=group) if ep.name != NAME]
    if chosen:
        others = [ep for ep in others if ep.name == chosen]
    return others[0] if others else None


class ExpansionDistro(BaseDistro):  # type: ignore[misc]
    """Ours when it is the only distro or chosen by name; otherwise a pass-through to the other one."""

    def __init__(self) -> None:
        other = _other("opentelemetry_distro", "OTEL_PYTHON_DISTRO")
        self._delegate = other.load()() if other is not None else None

    def _configure(self, **kwargs: Any) -> None:
        if self._delegate is not None:
            self._delegate.configure(**kwargs)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if self._delegate is not None:
            self._delegate.load_instrumentor(entry_point, **kwargs)
        else:
            super().load_instrumentor(entry_point, **kwargs)


class ExpansionConfigurator(_BaseConfigurator):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        other = _other("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR")
        if other is not None:  # the environment has its own OpenTelemetry set-up: run that instead
            other.load()().configure(**kwargs)
            return
        from otel_expansion._runtime import _init
        from otel_expansion.collect.recorder import default_executable

        service = os.environ.get("OTEL_SERVICE_NAME") or default_executable()
        _init(service, None, {"mode": "service", "instrument": False}, auto=True, install_global=True)
