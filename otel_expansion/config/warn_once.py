"""The one warn-once of the package: a configuration or runtime problem is said once per process.

Visible, never fatal, never repeated. A CLI's own process says it on stderr (no ``logging`` import on its
path); code that runs where logging is the channel (the detached sender, whose log is its stderr file)
names a logger instead. Inside a host program the message names the program first (its user never chose
otel-expansion and may not know it is there) and the library second, so it can still be looked up:
``mycli telemetry (otel-expansion): warning: ...``; the package's own CLI says ``otel-expansion: warning:``.
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
        # the host's name, set by init() through settings.speak_for; read without importing settings,
        # which imports this module (a process that never loaded settings has no host to name)
        host = getattr(sys.modules.get("otel_expansion.config"), "HOST", None)
        who = f"{host[0]} telemetry (otel-expansion)" if host else "otel-expansion"
        if logger is None:
            sys.stderr.write(f"{who}: warning: {message}\n")
        else:
            import logging

            logging.getLogger(logger).warning("%s: warning: %s", who, message)  # unconfigured logging too
    except Exception:  # a closed stderr must not break the host
        pass


def forget() -> None:
    """Allow every message again (tests; a new configuration in a long-lived process)."""
    _said.clear()
