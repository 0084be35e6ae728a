"""Framework integrations, one module each, installed once and only when the framework is used.

A framework that is not imported yet is hooked on import (a tiny meta-path finder), so instrumenting
never imports click, typer, argparse, optparse, python-fire or docopt on the host's behalf. A program on
none of them is still recorded: ``finish_fallback`` names its one run after the program.
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

    from otel_expansion.collect.recorder import Recorder
    from otel_expansion.config.settings import Settings

    class TelemetryHandle(Protocol):
        """What an integration uses of the handle ``init()`` returns (``_runtime.Telemetry``): its recorder.
        A Protocol, because the handle belongs to a later layer than the integrations."""

        @property
        def recorder(self) -> Recorder: ...

        settings: Settings
        started: tuple[int, int, float]  # init()'s wall ns, monotonic ns and CPU s: the fallback run's start
        command_name: tuple[str, str] | None  # set_command() before any run began: (name, origin)
        _closed: bool

        def shutdown(self) -> None: ...

    class Integration(Protocol):
        """What each integration module (click, typer, argparse) provides: hooks installed once, a run
        finished at exit when the framework has no end of its own, and a clean removal."""

        def install(self, telemetry: TelemetryHandle) -> None: ...

        def finish(self, telemetry: TelemetryHandle) -> None: ...

        def uninstall(self) -> None: ...

INTEGRATIONS: dict[str, str] = {
    "click": "otel_expansion.collect.integrations.click",
    "typer": "otel_expansion.collect.integrations.typer",
    "argparse": "otel_expansion.collect.integrations.argparse",
    "optparse": "otel_expansion.collect.integrations.optparse",
    "fire": "otel_expansion.collect.integrations.fire",
    "docopt": "otel_expansion.collect.integrations.docopt",
}

_installed: set[str] = set()
_telemetry: TelemetryHandle | None = None


def install_all(telemetry: TelemetryHandle) -> None:
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
    module: Integration = sys.modules[name]  # a module implementing the protocol
    return module


def activate(telemetry: TelemetryHandle, framework: str) -> None:
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


def observe_exit() -> None:
    """Watch how the process ends from ``init()`` on, framework or not (see ``_exit``)."""
    _observe_exit()


def program_name(service_name: str) -> tuple[str, str] | None:
    """(name, origin) of the program for a run no framework named: the console script's name as typed
    (``pipreqs``), else the service name given to ``init()`` (never a script's file name); None for
    ``python -c``, the REPL and code read from stdin: no program to name."""
    argv = sys.argv
    argv0 = argv[0] if argv and isinstance(argv[0], str) else ""
    if argv0 in ("", "-c", "-"):
        return None
    main = sys.modules.get("__main__")
    if getattr(main, "__spec__", None) is not None or argv0.endswith((".py", ".pyw", ".pyz", ".pyc")):
        return service_name, "declared"  # python -m pkg, python tool.py
    import os

    if os.path.isdir(argv0):  # python some_dir/ (a __main__.py inside)
        return service_name, "declared"
    from otel_expansion.collect.recorder import default_executable

    return default_executable(), "framework"


def finish_fallback(telemetry: TelemetryHandle) -> None:
    """Every run of a process that called ``init()`` is recorded: when no framework integration and no
    ``command()`` began a command, one invocation named after the program, from ``init()`` to exit,
    with the status the process exits with (or ``unknown``)."""
    recorder = telemetry.recorder
    if recorder._begun or recorder.active is not None or recorder.commands:
        return
    named = telemetry.command_name or program_name(telemetry.settings.service_name)
    if named is None:
        return
    run = recorder.begin(named[0], None, named[1])
    if run is None:
        return
    started = telemetry.started
    if started:
        run.start_ns, run.start_mono, run.start_cpu = started[0], started[1], (
            started[2] if run.start_cpu else 0.0)
    from otel_expansion.collect.integrations import _exit

    _exit.end_run(recorder, run)


_exec_originals: dict[str, Any] = {}
_exec_handle: list[Any] = [None]


def watch_exec(telemetry: TelemetryHandle) -> None:
    """Wrap ``os.execv`` and ``os.execve`` (once; every ``os.exec*`` function ends in one of them): the
    run of ``telemetry`` is finished and written to the journal before the process image is replaced."""
    import os

    _exec_handle[0] = telemetry
    if _exec_originals:
        return
    for name in ("execv", "execve"):
        original = getattr(os, name, None)
        if original is not None:
            _exec_originals[name] = original
            setattr(os, name, _before_exec(original))


def _before_exec(original: Callable[..., Any]) -> Callable[..., Any]:
    def exec_(*args: Any, **kwargs: Any) -> Any:
        try:
            from otel_expansion.collect.integrations import _exit

            handle = _exec_handle[0]
            if handle is not None and not handle._closed:
                _exit.execs()
                handle.shutdown()  # finish, journal, sender: local work of milliseconds
        except Exception:
            pass
        return original(*args, **kwargs)

    exec_.__name__ = exec_.__qualname__ = original.__name__
    exec_.__doc__ = original.__doc__
    return exec_


def after_shutdown() -> None:
    """Last step of our exit work: a program ending by Ctrl-C still dies by SIGINT (see ``_exit``)."""
    from otel_expansion.collect.integrations import _exit

    _exit.rearm_interrupt()


def _loaded(framework: str) -> Integration | None:
    """The integration module if it was imported (an installed integration always is)."""
    module: Integration | None = sys.modules.get(INTEGRATIONS[framework])
    return module


def deactivate(framework: str) -> None:
    module = _loaded(framework)
    if framework in _installed and module is not None:
        module.uninstall()
    _installed.discard(framework)


def finish_all(telemetry: TelemetryHandle) -> None:
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
    if _exec_originals:
        import os

        for name, original in _exec_originals.items():
            setattr(os, name, original)
        _exec_originals.clear()
    _exec_handle[0] = None


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
