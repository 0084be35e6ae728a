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
    set_command,
    shutdown,
)
from otel_expansion.config.levels import Level

_TYPE_CHECKING = False
if _TYPE_CHECKING:
    from otel_expansion._version import __version__
    from otel_expansion.collect.features import Feature
    from otel_expansion.collect.features import declare as declare_features
    from otel_expansion.controls import add_telemetry_commands
    from otel_expansion.entry import wrap


def __getattr__(name: str) -> object:
    """Loaded on first use: a CLI that never declares features, adds the commands or asks for the version
    never imports them (each module on a CLI's path costs it startup time)."""
    if name == "__version__":
        from otel_expansion._version import __version__

        return __version__
    if name == "add_telemetry_commands":
        from otel_expansion.controls import add_telemetry_commands

        return add_telemetry_commands
    if name == "wrap":
        from otel_expansion.entry import wrap

        return wrap
    if name in ("Feature", "declare_features"):
        from otel_expansion.collect import features

        return features.Feature if name == "Feature" else features.declare
    raise AttributeError(f"module 'otel_expansion' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "set_command",
    "shutdown",
    "wrap",
]
