"""``opentelemetry-instrument`` entry points: our distro and configurator.

Under ``opentelemetry-instrument python mycli.py`` the SDK is loaded anyway, so telemetry runs in
service mode: our providers become the global ones (so other instrumentations' spans pass the same
level filter and redaction), data goes to the local spool, and the network is left to the sender.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator


class ExpansionDistro(BaseDistro):  # type: ignore[misc]
    """Makes sure the stock OTLP exporters stay out of the way: we export through our own sender."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")


class ExpansionConfigurator(_BaseConfigurator):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        from otel_expansion._runtime import init
        from otel_expansion.collect.recorder import default_executable

        service = os.environ.get("OTEL_SERVICE_NAME") or default_executable()
        init(service, mode="service", instrument=False, install_global=True)
