"""Honest dependencies: every third-party import of the package is declared, every declaration is used."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None

ROOT = Path(__file__).resolve().parent.parent

OPTIONAL = {"click", "typer", "fire", "docopt", "PyInstaller"}
"""Frameworks the integrations hook into only when the host program itself imports them; PyInstaller runs
the package's hooks (otel_expansion/_pyinstaller) only while it freezes an app."""

# distribution -> the top-level import names it provides (only what the package uses)
PROVIDES = {
    "opentelemetry-api": ("opentelemetry.trace", "opentelemetry.metrics", "opentelemetry.context",
                          "opentelemetry.attributes"),
    "opentelemetry-sdk": ("opentelemetry.sdk",),
    "opentelemetry-proto": ("opentelemetry.proto",),
    "opentelemetry-exporter-otlp-proto-common": ("opentelemetry.exporter.otlp.proto.common",),
    "googleapis-common-protos": ("google.rpc",),
    "opentelemetry-instrumentation": ("opentelemetry.instrumentation",),
    "psutil": ("psutil",),
    "protobuf": ("google.protobuf",),
}


def _declared() -> set[str]:
    assert tomllib is not None
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}


def _third_party_imports() -> set[str]:
    names: set[str] = set()
    stdlib = set(sys.stdlib_module_names)
    for path in (ROOT / "otel_expansion").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names
            if n.split(".")[0] not in stdlib | OPTIONAL and not n.startswith("otel_expansion")}


def _provider(module: str) -> str | None:
    for dist, prefixes in PROVIDES.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return dist
    return None


def test_every_import_is_declared() -> None:
    """No module imports a distribution that pyproject.toml does not declare."""
    if tomllib is None:  # pragma: no cover
        return
    undeclared = {m for m in _third_party_imports() if _provider(m) not in _declared()}
    assert undeclared == set()


def test_every_declared_dependency_is_imported() -> None:
    """No declared runtime dependency sits unused in every user's environment."""
    if tomllib is None:  # pragma: no cover
        return
    used = {_provider(m) for m in _third_party_imports()}
    assert _declared() - used == set()
