"""Each framework integration is a module implementing the Integration protocol (install, finish, uninstall)."""

from __future__ import annotations

import importlib
import inspect

import pytest

from otel_expansion.collect.integrations import INTEGRATIONS


@pytest.mark.parametrize("framework", sorted(INTEGRATIONS))
def test_integration_module_implements_the_protocol(framework: str) -> None:
    """install(telemetry), finish(telemetry) and uninstall() exist with those parameters."""
    module = importlib.import_module(INTEGRATIONS[framework])
    shapes = {name: list(inspect.signature(getattr(module, name)).parameters) for name in
              ("install", "finish", "uninstall")}
    assert shapes == {"install": ["telemetry"], "finish": ["telemetry"], "uninstall": []}
