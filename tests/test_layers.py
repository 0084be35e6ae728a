"""The package's layering is a contract: data flows one way through the tree, read from the imports.

Every ``import`` of ``otel_expansion`` anywhere in a module (function-level ones included, since a lazy
import is still a dependency) must point at the same or a lower layer; cli/, backend/ and auto/ are
leaves nothing in the library imports; no two modules import each other, directly or in a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "otel_expansion"

LAYERS = [
    "_version",
    "_types",
    "config",
    "privacy",
    "journal",
    "collect",
    "otlp",
    "sdk",
    "spool",
    "export",
    "workers",
    "_runtime",
    "__init__",
]
"""Lowest first: a module may import its own layer or one listed before it.

The journal sits below collect although runs flow collect -> journal: it is the declared record format
(and its file store) that the recorder writes to, and knows nothing of how records are made.
"""

LEAVES = {"cli", "backend", "auto", "__main__", "controls", "entry", "_pyinstaller"}
"""Entry points and side doors: they may use the library, the library never imports them (_pyinstaller:
PyInstaller's hooks, loaded by the freezer through the ``pyinstaller40`` entry point)."""

LEAF_MAY_IMPORT = {"cli": {"backend"}, "__main__": {"cli"}, "controls": {"cli"}}
"""The ``otel-expansion`` command serves the embedded backend's report and dashboard; ``python -m`` runs it;
``mycli telemetry ...`` (controls/) runs the ``otel-expansion`` commands inside the host program."""

ROOT_MAY_EXPOSE = {"controls", "entry"}
"""Leaves whose entry point the package top exposes, imported on first use (``add_telemetry_commands``,
``wrap``)."""


def _component(module: str) -> str:
    """``otel_expansion.sdk.pipeline`` -> ``sdk``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported otel_expansion module) for every import statement in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("otel_expansion"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("otel_expansion"):
                continue
            for alias in node.names:  # ``from otel_expansion.sdk import signals`` names a module
                candidate = f"{base}.{alias.name}"
                if _exists(candidate):
                    yield node.lineno, candidate
                else:
                    yield node.lineno, base


def _named_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every string constant that names a module of the package: ``python -m NAME``,
    ``importlib.import_module(NAME)``, ``sys.modules.get(NAME)`` depend on that module as much as an import.
    A package's name alone (``"otel_expansion.export"``) is a logger name here, not something run, unless
    the package has a ``__main__``; a string naming a module file always counts."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value.startswith("otel_expansion.") and all(node.value.split("."))):
            continue
        rel = PACKAGE.parent / Path(*node.value.split("."))
        if rel.with_suffix(".py").exists() or (rel / "__main__.py").exists():
            yield node.lineno, node.value


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).exists() or (PACKAGE.parent / rel / "__init__.py").exists()


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _sources():
        name = _module_name(path)
        graph.setdefault(name, set())
        for _, target in _imports(path):
            if target != name:
                graph[name].add(target)
    return graph


def test_every_component_is_placed() -> None:
    """A new top-level module or folder must be given a layer (or declared a leaf) before it lands."""
    components = {_component(_module_name(p)) for p in _sources()}
    assert components - set(LAYERS) - LEAVES == set()


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_layers(path: Path) -> None:
    """No stage imports a later stage, an orchestrator, or a leaf."""
    source = _component(_module_name(path))
    wrong = []
    for line, target in [*_imports(path), *_named_modules(path)]:
        dest = _component(target)
        if source in LEAVES:
            if dest in LEAVES and dest != source and dest not in LEAF_MAY_IMPORT.get(source, set()):
                wrong.append(f"line {line}: leaf {source} imports leaf {target}")
            continue
        if dest in LEAVES:
            if not (source == "__init__" and dest in ROOT_MAY_EXPOSE):
                wrong.append(f"line {line}: imports the leaf {target}")
        elif LAYERS.index(dest) > LAYERS.index(source):
            wrong.append(f"line {line}: {source} imports the later layer {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    """No module reaches itself through imports (lazy ones included)."""
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith("otel_expansion") and nxt not in graph:
                nxt = nxt.rpartition(".")[0]  # ``from pkg import name`` where name is not a module
            if state.get(nxt) == 1:
                if nxt != "otel_expansion" or node == "otel_expansion":
                    cycles.append([*stack[stack.index(nxt):], nxt])
            elif state.get(nxt) is None and nxt in graph:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)
    # A package __init__ that re-exports a submodule is not a cycle of design: importing any submodule
    # runs the parent __init__ by Python's rules, but no module here imports the package top.
    assert cycles == []


def test_public_api_is_explicit() -> None:
    """The package's public names are exactly __all__, and each one exists."""
    import otel_expansion

    public = {n for n in dir(otel_expansion) if not n.startswith("_")} - {
        "auto", "cli", "collect", "config", "export", "journal", "otlp", "privacy", "sdk", "spool", "workers",
        "backend", "controls", "annotations",  # subpackages once imported; ``from __future__ import annotations``
    }
    assert public == set(otel_expansion.__all__) - {"__version__"}
    for name in otel_expansion.__all__:
        assert hasattr(otel_expansion, name)


def test_module_names_in_strings_are_seen(tmp_path: Path) -> None:
    """The sender is started by module name: the orchestrator's entry counts as a dependency of whoever
    names it, so a stage that starts ``otel_expansion.workers.sender`` by string fails the layer check."""
    launcher = PACKAGE / "export" / "launcher.py"
    assert [m for _, m in _named_modules(launcher)] == []  # the launcher is given the entry
    named = {(p.relative_to(PACKAGE).as_posix(), m) for p in _sources() for _, m in _named_modules(p)}
    assert ("workers/__init__.py", "otel_expansion.workers.sender") in named
    fake = tmp_path / "launcher.py"
    fake.write_text('ARGV = ["-m", "otel_expansion.workers.sender"]\n')
    assert [m for _, m in _named_modules(fake)] == ["otel_expansion.workers.sender"]
