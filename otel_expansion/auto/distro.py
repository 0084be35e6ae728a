"""``opentelemetry-instrument`` entry points: our distro and configurator.

Under ``opentelemetry-instrument python mycli.py`` the SDK is loaded anyway, so telemetry runs in
service mode: our providers become the global ones (so other instrumentations' spans pass the same
level filter and redaction), data goes to the local spool, and the network is left to the sender.

Installing a library must not take over every program in the environment: when another distro or
configurator is installed too and ``OTEL_PYTHON_DISTRO``/``OTEL_PYTHON_CONFIGURATOR`` do not name ours,
we hand over to it and stay out of the way.

When ours is the distro in use, the program's output must stay exactly its own: our configurator is the
one that runs (the stock ``configurator`` would export to localhost:4317 and print its failures), and
the loader's "Configuration of ... not loaded" warnings about the configurators we stand in for are
dropped instead of reaching the program's stderr.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from otel_expansion.sdk.otel_internals import base_configurator

NAME = "otel_expansion"
_LOADER_LOGGER = "opentelemetry.instrumentation.auto_instrumentation._load"
_CHOSE_CONFIGURATOR = "_otel_expansion_chose_configurator"


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
        if self._delegate is None:
            _quiet_configurator_warnings()
            if "OTEL_PYTHON_CONFIGURATOR" not in os.environ:
                # read once by the loader right after this distro; our configurator removes it again, so
                # the program never sees it
                os.environ["OTEL_PYTHON_CONFIGURATOR"] = NAME
                _state[_CHOSE_CONFIGURATOR] = True

    def _configure(self, **kwargs: Any) -> None:
        if self._delegate is not None:
            self._delegate.configure(**kwargs)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if self._delegate is not None:
            self._delegate.load_instrumentor(entry_point, **kwargs)
        else:
            super().load_instrumentor(entry_point, **kwargs)


_state: dict[str, bool] = {}


def _quiet_configurator_warnings() -> None:
    """Drop the loader's "Configuration of X not loaded ..." lines: they are about configurators our
    distro deliberately stands in for, and would be the only difference in the program's stderr."""
    import logging

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("Configuration of %s not loaded")

    logging.getLogger(_LOADER_LOGGER).addFilter(_Filter())


def program_version() -> str | None:
    """The version of the installed distribution whose console script is running (``black`` -> 26.10.1)."""
    from importlib.metadata import entry_points

    from otel_expansion.collect import default_executable

    exe = default_executable()
    for ep in entry_points(group="console_scripts"):
        if ep.name == exe:
            dist = getattr(ep, "dist", None)
            return str(dist.version) if dist is not None and dist.version else None
    return None


def _has_resource_version() -> bool:
    from otel_expansion.config import variable

    pairs = variable("OTEL_RESOURCE_ATTRIBUTES")
    return isinstance(pairs, tuple) and any(key == "service.version" for key, _ in pairs)


def _is_program() -> bool:
    """False for ``python -c CODE``, ``python -`` and an interactive interpreter: there is no program whose
    usage this would be, so under ``opentelemetry-instrument`` nothing is recorded for a service ``python``
    (no state directory, no sender round). Name one with ``OTEL_SERVICE_NAME`` to record such runs."""
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 not in ("", "-c", "-")


class ExpansionConfigurator(base_configurator()):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        chosen_by_our_distro = _state.pop(_CHOSE_CONFIGURATOR, False)
        if chosen_by_our_distro:
            os.environ.pop("OTEL_PYTHON_CONFIGURATOR", None)
        other = None if chosen_by_our_distro else _other("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR")
        if other is not None:  # the environment has its own OpenTelemetry set-up: run that instead
            other.load()().configure(**kwargs)
            return
        import sys

        from otel_expansion._runtime import _init
        from otel_expansion.config import variable
        from otel_expansion.privacy.vocabulary import executable_name

        if not variable("OTEL_SERVICE_NAME") and not _is_program():
            return  # `python -c ...` or an interactive interpreter: no program to name, nothing recorded
        # the program's installed console script (never a script file's name); opentelemetry-instrument's
        # configuration is the environment, so its OTEL_SERVICE_NAME may rename it (identifier-shaped)
        service = executable_name(sys.argv[0] if sys.argv else "", "unknown_service")
        version = None
        if not _has_resource_version():
            try:
                version = program_version()
            except Exception:
                version = None
        _init(service, version, {"mode": "service", "instrument": False, "service_name_env": True}, auto=True,
              install_global=True)
