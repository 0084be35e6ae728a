"""otel-expansion: privacy-respecting product telemetry for CLIs and applications, on OpenTelemetry.

Importing this package loads nothing: not one other module, of the package or of the standard library
(tests/test_import_cost.py pins it). Every public name is loaded on first use (module
``__getattr__``, then kept in this module's namespace, so later lookups cost a dict read), because a CLI
imports the package on every run and each module it loads costs that run startup time. ``init()`` loads
what a recorded run needs.

Importing it does one thing: it puts :func:`_find_spec` on ``sys.meta_path``, which finds this package's
own submodules by their file name instead of the generic directory search (about 60 k instructions less per
module; a click CLI's run loads 8 of them).
"""

# No ``from __future__ import annotations`` here: that statement imports the ``__future__`` module.

_TYPE_CHECKING = False
if _TYPE_CHECKING:
    from importlib.machinery import ModuleSpec as _Spec
    from importlib.machinery import SourceFileLoader as _SourceLoader
    from os import stat as _stat

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
    from otel_expansion.config import Level
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
    "Level": ("otel_expansion.config", "Level"),
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


_PREFIX = "otel_expansion."
_SEP = _ROOT = ""  # the path separator and the package's directory, set by _install_finder


def _find_spec(name: str, path: "object" = None, target: "object" = None) -> "object":
    """The spec ``PathFinder`` would give a submodule of this package, found without its search.

    The package's modules are plain source files: ``a.b`` is ``<package>/a/b/__init__.py`` (a package,
    searched first, as ``FileFinder`` does) or ``<package>/a/b.py``. The spec has the standard
    ``SourceFileLoader``, so compiling, ``.pyc`` validation and writing (``__pycache__``,
    ``PYTHONDONTWRITEBYTECODE``, ``PYTHONPYCACHEPREFIX``), ``importlib.resources`` and ``inspect`` are
    Python's own. Anything else (another package, a parent whose ``__path__`` was changed, a file that is
    not there: a zipapp, a frozen app) is None, and the standard finders decide.
    (tests/test_import_cost.py holds every module's spec equal to PathFinder's.)"""
    if not name.startswith(_PREFIX) or type(path) is not list or len(path) != 1:
        return None
    base = path[0] + _SEP + name.rpartition(".")[2]
    if base != _ROOT + _SEP + name[len(_PREFIX):].replace(".", _SEP):  # the parent's __path__ is not ours as laid out
        return None
    spec = None
    origin = base + _SEP + "__init__.py"
    try:
        _stat(origin)
        spec = _Spec(name, _SourceLoader(name, origin), origin=origin, is_package=True)
        spec.submodule_search_locations = [base]
    except OSError:
        origin = base + ".py"
        try:
            _stat(origin)
        except OSError:
            return None
        spec = _Spec(name, _SourceLoader(name, origin), origin=origin)
    spec.has_location = True
    return spec


def _install_finder() -> None:
    """Put :func:`_find_spec` on ``sys.meta_path`` just before the standard ``PathFinder``, once, where this
    package is plain files on disk. Not in a frozen app (its own importer serves the modules) nor where the
    standard ``PathFinder`` is not on ``sys.meta_path``; a zipapp's modules are not files: the finder
    finds nothing there and the standard import goes on."""
    import sys

    if getattr(sys, "frozen", False):
        return
    external = sys.modules.get("_frozen_importlib_external")
    if external is None or external.PathFinder not in sys.meta_path:
        return
    if any(getattr(f, "otel_expansion_finder", False) is True for f in sys.meta_path):
        return
    g = globals()
    g["_Spec"] = sys.modules["_frozen_importlib"].ModuleSpec
    g["_SourceLoader"] = external.SourceFileLoader
    g["_stat"] = sys.modules["os"].stat if "os" in sys.modules else external._os.stat
    g["_SEP"] = external.path_sep
    g["_ROOT"] = __path__[0]
    # A namespace object, not a class of our own (a class statement costs more than the finder saves on one
    # module). Just before PathFinder, not first: an import hook the program or a tool put ahead of it
    # (typeguard, beartype's claw, pytest's assertion rewriting) still sees our modules first. Every other
    # import that reaches PathFinder pays one prefix check here. ``otel_expansion_finder`` marks it for
    # removal once a CLI run is recorded (_runtime: a finder left in place keeps this package reachable into
    # the interpreter's finalization, which then costs more).
    finder = type(sys.implementation)(find_spec=_find_spec, otel_expansion_finder=True)  # type: ignore[call-arg]
    sys.meta_path.insert(sys.meta_path.index(external.PathFinder), finder)


_install_finder()


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
