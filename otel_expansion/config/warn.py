"""The one warn-once of the package: a configuration or runtime problem is said once per process.

Visible, never fatal, never repeated. A CLI's own process says it on stderr (no ``logging`` import on its
path); code that runs where logging is the channel (the detached sender, whose log is its stderr file)
names a logger instead.
"""

from __future__ import annotations

import sys

_said: set[str] = set()


def warn(message: str, *, logger: str | None = None) -> None:
    """Say ``message`` once: on stderr, or through ``logger`` when one is named."""
    if message in _said:
        return
    _said.add(message)
    try:
        if logger is None:
            sys.stderr.write(f"otel-expansion: warning: {message}\n")
        else:
            import logging

            logging.getLogger(logger).warning("otel-expansion: warning: %s", message)  # unconfigured logging too
    except Exception:  # a closed stderr must not break the host
        pass


def forget() -> None:
    """Allow every message again (tests; a new configuration in a long-lived process)."""
    _said.clear()
