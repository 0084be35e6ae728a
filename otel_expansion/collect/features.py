"""Declared features: data minimisation by design.

An app may declare the features it records, in code or in a small TOML registry file::

    otel_expansion.declare_features(
        otel_expansion.Feature("export.csv", "Exports a table as CSV.", {"rows": int}, level="basic"),
    )
    otel_expansion.declare_features("telemetry-features.toml")

    # telemetry-features.toml
    [features."export.csv"]
    description = "Exports a table as CSV."
    level = "basic"            # the lowest level at which the feature is counted
    attributes.rows = "int"    # string, int, float or bool; ["int", "full"]: its own level

Feature attributes leave only when declared (name, type and level), at every level, ``full`` included
and numbers included: without a registry no attribute leaves. Once a registry exists, a feature that is
not declared, or declared for a higher level, is not recorded at any level; every undeclared feature and
attribute is counted (``dropped.undeclared`` in the spool's counters). Attributes travel on feature
events, which exist at ``full`` only. The per-app TELEMETRY.md lists the declared features. Pure data;
no imports on the hot path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

from otel_expansion.config import Level

TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "int": (int,), "float": (float, int), "bool": (bool,)}
_ALIASES = {"str": "string", "integer": "int", "boolean": "bool", "number": "float"}


def _type_name(kind: object) -> str:
    if isinstance(kind, type):
        kind = {str: "string", int: "int", float: "float", bool: "bool"}.get(kind, kind.__name__)
    name = _ALIASES.get(str(kind), str(kind))
    if name not in TYPES:
        raise ValueError(f"unknown attribute type {kind!r} (expected {', '.join(TYPES)})")
    return name


class Feature:
    """One declared feature: its name, what it means, its attributes' names and types, and its level."""

    __slots__ = ("attribute_levels", "attributes", "description", "level", "name")

    def __init__(self, name: str, description: str = "", attributes: Mapping[str, object] | None = None,
                 level: str | Level = "basic") -> None:
        self.name = str(name)
        self.description = str(description)
        self.level = level if isinstance(level, Level) else Level.parse(str(level))
        self.attributes: dict[str, str] = {}
        self.attribute_levels: dict[str, Level] = {}
        for k, v in (attributes or {}).items():
            kind, own_level = (v[0], v[1]) if isinstance(v, (tuple, list)) and len(v) == 2 else (v, self.level)
            self.attributes[str(k)] = _type_name(kind)
            self.attribute_levels[str(k)] = own_level if isinstance(own_level, Level) else Level.parse(
                str(own_level))
        if self.level == Level.OFF:
            raise ValueError(f"feature {name!r}: level off would never record it")

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, level={self.level}, attributes={self.attributes!r})"

    def accepts(self, key: str, value: object, level: Level | None = None) -> bool:
        """``value`` is of the declared type of ``key`` (and ``key`` is declared for ``level``)."""
        kind = self.attributes.get(key)
        if kind is None or (level is not None and self.attribute_levels.get(key, self.level) > level):
            return False
        if kind != "bool" and isinstance(value, bool):
            return False
        return isinstance(value, TYPES[kind])


_declared: dict[str, Feature] = {}
_files: list[str] = []


def declare(*items: Feature | str) -> None:
    """Declare features (``Feature`` objects) or registry files (paths); later declarations add to them."""
    for item in items:
        if isinstance(item, Feature):
            _declared[item.name] = item
        else:
            _files.append(str(item))


def registry() -> dict[str, Feature] | None:
    """Every declared feature by name, or None when the app declared nothing (no checks then)."""
    while _files:
        for feature in load_file(_files.pop(0)):
            _declared[feature.name] = feature
    return _declared if _declared else None


def load_file(path: str) -> list[Feature]:
    """Features from a registry file; a bad entry gets a warning naming it and its line, and is skipped."""
    from otel_expansion.config.file import ParseError, parse, read_text
    from otel_expansion.config.warn_once import warn

    text = read_text(path, 1 << 20)
    if text is None:
        warn(f"feature registry {path} cannot be read; no features declared from it")
        return []
    try:
        doc, where = parse(text)
    except ParseError as exc:
        warn(f"{path}:{exc.line}: not valid TOML ({exc}); no features declared from it")
        return []
    out: list[Feature] = []
    table = doc.get("features", {})
    if not isinstance(table, dict):
        warn(f"{path}: `features` must be a table of features")
        return []
    for name, spec in table.items():
        line = where.get(f"features.{name}", 0)
        try:
            if not isinstance(spec, dict):
                raise ValueError("must be a table")
            unknown = set(spec) - {"description", "level", "attributes"}
            if unknown:
                raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
            attrs = spec.get("attributes", {})
            if not isinstance(attrs, dict):
                raise ValueError("attributes must be a table of name = type")
            out.append(Feature(name, str(spec.get("description", "")), attrs, str(spec.get("level", "basic"))))
        except ValueError as exc:
            warn(f"{path}:{line}: feature {name!r}: {exc}; skipped")
    return out


def _reset_for_tests() -> None:
    _declared.clear()
    _files.clear()
