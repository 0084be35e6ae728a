"""otel-expansion: privacy-respecting product telemetry for CLIs and applications, on OpenTelemetry.

Importing this package does no work and loads nothing heavy: a CLI pays for telemetry only in
microseconds per command and one small file write at exit.
"""

from __future__ import annotations

__version__ = "0.1.0"

from otel_expansion._runtime import (
    Telemetry,
    command,
    feature,
    init,
    record_exception,
    shutdown,
)
from otel_expansion.collect.features import Feature
from otel_expansion.collect.features import declare as declare_features
from otel_expansion.config.levels import Level
from otel_expansion.controls import add_telemetry_commands

__all__ = [
    "Feature",
    "Level",
    "Telemetry",
    "__version__",
    "add_telemetry_commands",
    "command",
    "declare_features",
    "feature",
    "init",
    "record_exception",
    "shutdown",
]
