"""The settings file (``settings.toml`` in the app's state directory) and the user's stored choices.

Precedence, lowest first: the app's defaults in code < this file < environment variables < the end
user's explicit command (``mycli telemetry level|enable|disable|debug``, stored beside it). Opt-out
variables (``DO_NOT_TRACK``...) win over all of them.

Read on every run, so the common case costs one failed ``open`` (0.03 ms). A flat file is read by a tiny
parser for the TOML subset settings need, with no import (0.08 ms); anything beyond that subset goes to
``tomllib``, whose imports cost ~50 ms on the 2-core development box (Python 3.10, without ``tomllib``,
reads the subset only). Every problem becomes one warning naming the file, the line and the key, and
the bad entry (or a malformed file) is ignored: a settings file never breaks the host program.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypedDict

    class FileValues(TypedDict, total=False):
        """The valid entries of a settings file, typed (see :data:`KEYS`). ``level`` is what the caller's
        ``parse_level`` gave (``config.Level.parse``: this module imports nothing of its package, which
        imports it)."""

        level: int
        debug: bool
        send: bool

SETTINGS_FILE = "settings.toml"
"""``otel_expansion.config.SETTINGS_FILE``, spelled here (a test holds them equal): this module imports nothing
of its package, which imports it."""

DEBUG_CHOICE_FILE = "debug"  # == config.paths.DEBUG_FILE: "off", or "on" [dry-run] [json]

# key -> (type name, description). Documented in the README and validated here.
KEYS: dict[str, tuple[str, str]] = {
    "level": ("string", "off, basic, enhanced or full."),
    "debug": ("boolean", "true prints every record, as stored, to stderr."),
    "send": ("boolean", "false keeps data local until a flush."),
}


class ParseError(Exception):
    """Malformed TOML at ``line`` (1-based; 0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


Table = dict[str, object]


def _unsupported(line: int) -> ParseError:
    return ParseError("unsupported", line)


def _split_key(raw: str, line: int) -> list[str]:
    """``a."b.c".d`` -> ["a", "b.c", "d"] (bare and quoted key segments)."""
    parts: list[str] = []
    i, n = 0, len(raw)
    while True:
        while i < n and raw[i] in " \t":
            i += 1
        if i < n and raw[i] in "\"'":
            quote = raw[i]
            end = raw.find(quote, i + 1)
            if end < 0 or "\\" in raw[i:end]:
                raise _unsupported(line)
            parts.append(raw[i + 1 : end])
            i = end + 1
        else:
            start = i
            while i < n and (raw[i].isalnum() or raw[i] in "-_"):
                i += 1
            if i == start:
                raise _unsupported(line)
            parts.append(raw[start:i])
        while i < n and raw[i] in " \t":
            i += 1
        if i == n:
            return parts
        if raw[i] != ".":
            raise _unsupported(line)
        i += 1


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r"}


def _value(raw: str, line: int) -> tuple[object, str]:
    """Parse one value at the start of ``raw``; returns it and the rest of the line."""
    if raw.startswith('"'):
        if raw.startswith('"""'):
            raise _unsupported(line)
        out: list[str] = []
        i = 1
        while i < len(raw):
            c = raw[i]
            if c == '"':
                return "".join(out), raw[i + 1 :]
            if c == "\\":
                nxt = raw[i + 1 : i + 2]
                if nxt not in _ESCAPES:
                    raise _unsupported(line)
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            out.append(c)
            i += 1
        raise _unsupported(line)
    if raw.startswith("'"):
        end = raw.find("'", 1)
        if raw.startswith("'''") or end < 0:
            raise _unsupported(line)
        return raw[1:end], raw[end + 1 :]
    token = raw.split("#", 1)[0].strip()
    rest = raw[len(raw.split("#", 1)[0]) :]
    if token == "true":
        return True, rest
    if token == "false":
        return False, rest
    digits = token.replace("_", "")
    try:
        if digits.lstrip("+-").isdigit():
            return int(digits), rest
        if any(c.isdigit() for c in digits) and set(digits) <= set("0123456789+-.eE"):
            return float(digits), rest
    except ValueError:
        pass
    raise _unsupported(line)


def parse_simple(text: str) -> tuple[Table, dict[str, int]]:
    """The flat TOML subset: tables, (dotted, quoted) keys, strings, numbers, booleans, comments.

    Returns the document and the line of every dotted key path. Raises ParseError("unsupported") on
    anything else, valid TOML or not, so that the caller can hand it to a complete parser.
    """
    root: Table = {}
    where: dict[str, int] = {}
    table = root
    prefix: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            if stripped.startswith("[["):
                raise _unsupported(number)
            close = stripped.rfind("]")
            tail = stripped[close + 1 :].strip()
            if close < 0 or (tail and not tail.startswith("#")):
                raise _unsupported(number)
            prefix = _split_key(stripped[1:close], number)
            table = root
            for part in prefix:
                nxt = table.setdefault(part, {})
                if not isinstance(nxt, dict):
                    raise _unsupported(number)
                table = nxt
            where[".".join(prefix)] = number
            continue
        key_raw, eq, value_raw = stripped.partition("=")
        if not eq or key_raw.count('"') % 2 or key_raw.count("'") % 2:
            raise _unsupported(number)
        keys = _split_key(key_raw, number)
        value, rest = _value(value_raw.strip(), number)
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            raise _unsupported(number)
        target = table
        for part in keys[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise _unsupported(number)
            target = nxt
        if keys[-1] in target:
            raise _unsupported(number)
        target[keys[-1]] = value
        where[".".join([*prefix, *keys])] = number
    return root, where


def _key_lines(text: str, doc: Table) -> dict[str, int]:
    """Best-effort line of each top-level key, for documents ``tomllib`` parsed (it keeps no positions)."""
    where: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        head = line.strip().split("=", 1)[0].strip().strip("\"'")
        if head in doc and head not in where:
            where[head] = number
        elif line.strip().startswith("[") and head.strip("[] \"'") in doc:
            where.setdefault(head.strip("[] \"'"), number)
    return where


def parse(text: str) -> tuple[Table, dict[str, int]]:
    """A TOML document and the lines of its keys; raises ParseError with the line when malformed."""
    try:
        return parse_simple(text)
    except ParseError:
        pass
    try:
        import tomllib as toml  # type: ignore[import-not-found,unused-ignore]  # Python >= 3.11
    except ImportError:  # Python 3.10: the subset above is all there is
        try:
            parse_simple(text)
        except ParseError as exc:
            raise ParseError("not in the TOML subset Python 3.10 reads (flat `key = value` lines and [tables])",
                             exc.line) from None
        raise
    try:
        doc = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        message = str(exc)
        line = 0
        if "(at line " in message:
            try:
                line = int(message.rsplit("(at line ", 1)[1].split(",", 1)[0])
            except ValueError:
                line = 0
            message = message.rsplit(" (at line ", 1)[0]
        raise ParseError(message, line) from None
    return doc, _key_lines(text, doc)


def _warn(message: str) -> None:
    from otel_expansion.config.warn_once import warn

    warn(message)


def read_text(path: str, limit: int = 65536) -> str | None:
    """A small text file, never through a symlink; None when absent or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > limit:
        _warn(f"{path}: larger than {limit} bytes; ignored")
        return None
    return data.decode("utf-8", "replace")


def validate(doc: Table, where: dict[str, int], path: str, parse_level: Callable[[str], int]) -> FileValues:
    """The valid settings in ``doc``; one warning per bad entry, naming the key and its line. ``parse_level``
    reads a level's name (``config.Level.parse``), raising ValueError for anything else."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        at = f"{path}:{where[key]}" if key in where else path
        if key not in KEYS:
            _warn(f"{at}: unknown key ignored (known: {', '.join(KEYS)})")  # never the file's own text
            continue
        kind = KEYS[key][0]
        if kind == "boolean":
            if not isinstance(value, bool):
                _warn(f"{at}: {key} must be true or false; ignored")
                continue
            out[key] = value
        elif key == "level":
            try:
                out[key] = parse_level(value if isinstance(value, str) else repr(value))
            except ValueError:
                _warn(f"{at}: {key} is not off|basic|enhanced|full; ignored")
    return out  # type: ignore[return-value]  # each key of KEYS checked against its declared type above


def load(home: str, parse_level: Callable[[str], int]) -> FileValues:
    """The valid settings from ``<home>/settings.toml``; {} when absent or malformed (with a warning).
    ``parse_level``: see :func:`validate`."""
    path = os.path.join(home, SETTINGS_FILE)
    text = read_text(path)
    if text is None:
        return {}
    try:
        doc, where = parse(text)
    except ParseError as exc:
        at = f"{path}:{exc.line}" if exc.line else path
        _warn(f"{at}: cannot be read as TOML ({exc}); settings file ignored")
        return {}
    except Exception as exc:  # a parser bug must not break the host either
        _warn(f"{path}: unreadable ({type(exc).__name__}); settings file ignored")
        return {}
    return validate(doc, where, path, parse_level)


def stored_debug(home: str) -> str | None:
    """The app's stored debug switch (``off``, or ``on`` with ``dry-run`` and/or ``json``), or None."""
    text = read_text(os.path.join(home, DEBUG_CHOICE_FILE), 64)
    return text.strip() or None if text is not None else None
