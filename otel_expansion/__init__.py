"""otel-expansion: privacy-respecting product telemetry for CLIs and applications, on OpenTelemetry.

Importing this package does no work and loads nothing heavy: a CLI pays for telemetry only in
microseconds per command and one small file write at exit.
"""

from __future__ import annotations

from otel_expansion._runtime import (
    Telemetry,
    command,
    feature,
    init,
    record_exception,
    shutdown,
)
from otel_expansion._version import __version__
from otel_expansion.config.levels import Level

__all__ = [
    "Level",
    "Telemetry",
    "__version__",
    "command",
    "feature",
    "init",
    "record_exception",
    "shutdown",
]
