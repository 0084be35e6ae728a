"""One ``opentelemetry_instrumentor`` per framework, so ``opentelemetry-instrument`` (and its
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS) drives our integrations like any other instrumentation."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]


class _FrameworkInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    framework = ""
    dependencies: tuple[str, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.dependencies

    def _instrument(self, **kwargs: Any) -> None:
        from otel_expansion import _runtime
        from otel_expansion.collect import integrations

        handle = _runtime.active()  # set by our configurator; none means another set-up owns this program
        if handle is not None and handle.enabled:
            integrations.activate(handle, self.framework)

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_expansion.collect import integrations

        integrations.deactivate(self.framework)


class ClickInstrumentor(_FrameworkInstrumentor):
    framework = "click"
    dependencies = ("click >= 8.0",)


class TyperInstrumentor(_FrameworkInstrumentor):
    framework = "typer"
    dependencies = ("typer >= 0.9",)


class ArgparseInstrumentor(_FrameworkInstrumentor):
    framework = "argparse"
    dependencies = ()


class OptparseInstrumentor(_FrameworkInstrumentor):
    framework = "optparse"
    dependencies = ()


class FireInstrumentor(_FrameworkInstrumentor):
    framework = "fire"
    dependencies = ("fire >= 0.5",)


class DocoptInstrumentor(_FrameworkInstrumentor):
    framework = "docopt"
    dependencies = ()  # docopt 0.6 and docopt-ng both install the module ``docopt``
