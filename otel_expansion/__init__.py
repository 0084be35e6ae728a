"""otel-expansion: privacy-respecting product telemetry for CLIs and applications, on OpenTelemetry.

Importing this package does no work and loads nothing: not one other module, of the package or of the
standard library (tests/test_import_cost.py pins it). Every public name is loaded on first use (module
``__getattr__``, then kept in this module's namespace, so later lookups cost a dict read), because a CLI
imports the package on every run and each module it loads costs that run startup time. ``init()`` loads
what a recorded run needs.
"""

# No ``from __future__ import annotations`` here: that statement imports the ``__future__`` module.

_TYPE_CHECKING = False
if _TYPE_CHECKING:
    from otel_expansion._runtime import (
        Telemetry,
        command,
        feature,
        init,
        record_exception,
        set_command,
        shutdown,
    )
    from otel_expansion._version import __version__
    from otel_expansion.collect.features import Feature
    from otel_expansion.collect.features import declare as declare_features
    from otel_expansion.config.levels import Level
    from otel_expansion.controls import add_telemetry_commands
    from otel_expansion.entry import wrap

# public name -> (module, attribute): the one table __getattr__ reads
_LAZY = {
    "init": ("otel_expansion._runtime", "init"),
    "command": ("otel_expansion._runtime", "command"),
    "feature": ("otel_expansion._runtime", "feature"),
    "record_exception": ("otel_expansion._runtime", "record_exception"),
    "set_command": ("otel_expansion._runtime", "set_command"),
    "shutdown": ("otel_expansion._runtime", "shutdown"),
    "Telemetry": ("otel_expansion._runtime", "Telemetry"),
    "Level": ("otel_expansion.config.levels", "Level"),
    "__version__": ("otel_expansion._version", "__version__"),
    "add_telemetry_commands": ("otel_expansion.controls", "add_telemetry_commands"),
    "wrap": ("otel_expansion.entry", "wrap"),
    "Feature": ("otel_expansion.collect.features", "Feature"),
    "declare_features": ("otel_expansion.collect.features", "declare"),
}


def __getattr__(name: str) -> object:
    """Load a public name on first use and keep it here: a CLI that never declares features, adds the
    commands or asks for the version never imports them, and ``otel_expansion.init`` costs one import."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'otel_expansion' has no attribute {name!r}")
    __import__(where[0])
    import sys

    value: object = getattr(sys.modules[where[0]], where[1])
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
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
