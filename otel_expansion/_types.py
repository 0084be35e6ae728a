"""Attribute value types every layer shares (the OTel attribute model, as hashable Python values)."""

from __future__ import annotations

AttrValue = str | bool | int | float | tuple[str, ...] | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...]
Attrs = tuple[tuple[str, AttrValue], ...]
"""Attributes as a tuple of (key, value) pairs sorted by key: hashable and canonical."""
