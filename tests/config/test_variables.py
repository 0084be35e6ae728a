"""The variable table is the one source of configuration: Settings, debug and the docs' reference follow it."""

from __future__ import annotations

import re
from pathlib import Path

from otel_expansion.config import _DEFAULTS, VARIABLES, Settings, resolve, variables_markdown

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_reference_table_is_generated_from_the_code() -> None:
    """The configuration reference's table (docs/configuration.md) is exactly what VARIABLES generates."""
    text = REFERENCE.read_text()
    match = re.search(r"<!-- variables:[^\n]*-->\n(.*?)\n<!-- /variables -->", text, re.S)
    assert match is not None, "docs/configuration.md lacks the generated variables table"
    assert match.group(1) == variables_markdown()


def test_every_variable_backed_setting_defaults_to_its_documented_default() -> None:
    """A setting's default is its variable's default read through the same parser (no second copy)."""
    fresh = resolve("app", environ={}, home="/tmp/x")
    for var in VARIABLES:
        if var.field is None:
            continue
        assert var.field in Settings.__slots__
        assert getattr(fresh, var.field) == _DEFAULTS[var.field]


def test_variables_are_read_from_the_environment() -> None:
    """Each variable-backed setting changes when its variable is set to a valid non-default value."""
    samples = {"flag": None, "number": "70000", "integer": "70000", "lines": "a\nb", "text": "salt"}
    for var in VARIABLES:
        if var.field is None or var.kind not in samples:
            continue
        raw = samples[var.kind] or ("false" if var.default == "true" else "true")
        s = resolve("app", environ={var.name: raw}, home="/tmp/x")
        assert getattr(s, var.field) != _DEFAULTS[var.field], var.name


def test_names_are_unique_and_documented() -> None:
    """One row per variable, each with a meaning."""
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names))
    assert all(v.doc.strip() for v in VARIABLES)
