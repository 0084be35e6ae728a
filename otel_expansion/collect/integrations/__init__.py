"""Framework integrations, one module each, installed once and only when the framework is used.

A framework that is not imported yet is hooked on import (a tiny meta-path finder), so instrumenting
never imports click, typer or argparse on the host's behalf.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Protocol

    class Integration(Protocol):
        """What each integration module (click, typer, argparse) provides: hooks installed once, a run
        finished at exit when the framework has no end of its own, and a clean removal."""

        def install(self, telemetry: Any) -> None: ...

        def finish(self, telemetry: Any) -> None: ...

        def uninstall(self) -> None: ...

INTEGRATIONS: dict[str, str] = {
    "click": "otel_expansion.collect.integrations.click",
    "typer": "otel_expansion.collect.integrations.typer",
    "argparse": "otel_expansion.collect.integrations.argparse",
}

_installed: set[str] = set()
_telemetry: Any = None


def install_all(telemetry: Any) -> None:
    global _telemetry
    _telemetry = telemetry
    _observe_exit()
    pending = []
    for framework in INTEGRATIONS:
        if framework in sys.modules:
            _install(framework)
        else:
            pending.append(framework)
    if pending and not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PostImportFinder(pending, _install))


def _install(framework: str) -> None:
    if framework in _installed or _telemetry is None:
        return
    _installed.add(framework)
    try:
        _module(framework).install(_telemetry)
    except Exception as exc:
        from otel_expansion.config.settings import warn

        warn(f"could not instrument {framework}: {type(exc).__name__}: {exc}")


def _module(framework: str) -> Integration:
    """The integration module of ``framework``, imported on first use."""
    name = INTEGRATIONS[framework]
    __import__(name)
    module: Integration = sys.modules[name]  # type: ignore[assignment]  # a module implementing the protocol
    return module


def activate(telemetry: Any, framework: str) -> None:
    """Instrument one framework now, or when it is first imported."""
    global _telemetry
    _telemetry = telemetry
    _observe_exit()
    if framework in sys.modules:
        _install(framework)
    else:
        for finder in sys.meta_path:
            if isinstance(finder, _PostImportFinder):
                finder.names.add(framework)
                return
        sys.meta_path.insert(0, _PostImportFinder([framework], _install))


def _observe_exit() -> None:
    """Watch ``sys.exit`` from now on, before the program's ``sys.exit(main())`` looks it up."""
    from otel_expansion.collect.integrations import _exit

    _exit.install()


def after_shutdown() -> None:
    """Last step of our exit work: a program ending by Ctrl-C still dies by SIGINT (see ``_exit``)."""
    from otel_expansion.collect.integrations import _exit

    _exit.rearm_interrupt()


def _loaded(framework: str) -> Integration | None:
    """The integration module if it was imported (an installed integration always is)."""
    module: Integration | None = sys.modules.get(INTEGRATIONS[framework])  # type: ignore[assignment]
    return module


def deactivate(framework: str) -> None:
    module = _loaded(framework)
    if framework in _installed and module is not None:
        module.uninstall()
    _installed.discard(framework)


def finish_all(telemetry: Any) -> None:
    """End runs that only finish with the process (argparse, click usage errors)."""
    for framework in list(_installed):
        module = _loaded(framework)
        if module is not None:
            module.finish(telemetry)


def uninstall_all() -> None:
    """Remove every patch (tests and ``opentelemetry-instrument`` uninstrumentation)."""
    global _telemetry
    for framework in list(_installed):
        module = _loaded(framework)
        if module is not None:
            module.uninstall()
    _installed.clear()
    _telemetry = None
    from otel_expansion.collect.integrations import _exit

    _exit.uninstall()
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PostImportFinder)]


class _PostImportFinder:
    """Runs a callback right after a watched top-level module finishes importing.

    Duck-typed meta path finder and loader: ``importlib.abc`` costs ~7 ms to import.
    """

    def __init__(self, names: Sequence[str], callback: Callable[[str], None]) -> None:
        self.names = set(names)
        self.callback = callback
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in self.names or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            from importlib.util import find_spec

            spec = find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _NotifyingLoader(spec.loader, self, fullname)  # type: ignore[assignment]
        return spec

    def done(self, fullname: str) -> None:
        self.names.discard(fullname)
        self.callback(fullname)


class _NotifyingLoader:
    def __init__(self, inner: Loader, finder: _PostImportFinder, name: str) -> None:
        self.inner = inner
        self.finder = finder
        self.name = name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        self.finder.done(self.name)

    def __getattr__(self, name: str) -> Any:
        """Everything else is the real loader's (``get_code``, ``get_source``: tracebacks, the
        privacy vocabulary's reading of the module's literals)."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
