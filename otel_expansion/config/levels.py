"""Telemetry levels and what each one allows. Pure data: the single source for every level decision.

``Level`` is a small ``int`` subclass rather than an ``enum.IntEnum``: ``enum`` costs ~2 ms to import
and this module loads in every instrumented CLI. Comparisons read naturally: ``level >= ENHANCED``.
"""

from __future__ import annotations

_NAMES = ("off", "basic", "enhanced", "full")


class Level(int):
    """An ordered telemetry level: OFF < BASIC < ENHANCED < FULL."""

    __slots__ = ()
    OFF: Level
    BASIC: Level
    ENHANCED: Level
    FULL: Level

    def __new__(cls, value: int | str = 0) -> Level:
        if isinstance(value, str):
            return cls.parse(value)
        number = int(value)
        if not 0 <= number < len(_NAMES):
            raise ValueError(f"{value!r} is not a telemetry level (0-3)")
        return _ALL[number] if _ALL else super().__new__(cls, number)

    @classmethod
    def parse(cls, value: str) -> Level:
        """Parse a level name (case-insensitive); raises ValueError with the accepted names."""
        name = value.strip().lower()
        if name in _NAMES:
            return _ALL[_NAMES.index(name)]
        raise ValueError(f"unknown telemetry level {value!r} (expected {'|'.join(_NAMES)})")

    @property
    def name(self) -> str:
        return _NAMES[self].upper()

    def __str__(self) -> str:
        return _NAMES[self]

    def __repr__(self) -> str:
        return f"Level.{_NAMES[self].upper()}"


_ALL: tuple[Level, ...] = ()
_ALL = tuple(int.__new__(Level, i) for i in range(len(_NAMES)))
Level.OFF, Level.BASIC, Level.ENHANCED, Level.FULL = _ALL
LEVELS = _ALL
"""Every level, lowest first."""

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
