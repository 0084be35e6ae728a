"""Telemetry levels and what each one allows. Pure data: the single source for every level decision."""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    """Ordered so that ``level >= Level.ENHANCED`` reads as "at least enhanced"."""

    OFF = 0
    BASIC = 1
    ENHANCED = 2
    FULL = 3

    @classmethod
    def parse(cls, value: str) -> Level:
        """Parse a level name (case-insensitive); raises ValueError with the accepted names."""
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = "|".join(m.name.lower() for m in cls)
            raise ValueError(f"unknown telemetry level {value!r} (expected {names})") from None

    def __str__(self) -> str:
        return self.name.lower()


# What each level may collect. Checked by the recorder (before anything is stored) and again inside the
# SDK pipeline (level-filter span processor and metric views), so a bug in one layer cannot leak.
SPANS = Level.ENHANCED
SESSIONS = Level.ENHANCED
PERFORMANCE = Level.ENHANCED
ACTIVITY = Level.ENHANCED
FEATURES = Level.BASIC
FEATURE_ATTRIBUTES = Level.FULL
EXCEPTION_DETAILS = Level.FULL
ARGUMENT_SHAPES = Level.FULL
