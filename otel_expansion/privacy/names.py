"""Shape checks for names (attribute keys, identifier tokens), public versions, ambient resource values.

Shape never admits a value: which names may leave is decided by the closed vocabulary
(``privacy.vocabulary``); the checks here only add redaction on top (an attribute key must also be
identifier-shaped). Pure string methods: no ``re`` import.
"""

from __future__ import annotations

from otel_expansion.privacy import patterns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "MAX_NAME",
    "ambient_resource",
    "attribute_key",
    "declared",
    "name_ok",
    "public_version",
    "token_ok",
]

MAX_NAME = 64
MAX_WORDS = 4
MAX_DIGITS = 4
_SEPARATORS = str.maketrans("", "", "-_.:")
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_cache: dict[str, bool] = {}
_names: list[tuple[str, ...]] = []


def _user_names() -> tuple[str, ...]:
    if not _names:
        _names.append(patterns.user_names())
    return _names[0]


def name_ok(text: str) -> bool:
    """Whether ``text`` has the shape of a command/feature name (``remote add``, ``export.csv``)."""
    ok = _cache.get(text)
    if ok is None:
        ok = _shape_ok(text)
        if len(_cache) > 4096:
            _cache.clear()
        _cache[text] = ok
    return ok


def _shape_ok(text: str) -> bool:
    if type(text) is not str or not 0 < len(text) <= MAX_NAME or not text.isascii():
        return False
    words = text.split(" ")
    if len(words) > MAX_WORDS:
        return False
    for word in words:
        if not word or word[0] not in _LOWER:
            return False
        core = word.translate(_SEPARATORS)
        if not core.isalnum() or len(word) - len(core) > 3 or word[-1] in "-_.:":
            return False
    if patterns.digit_count(text) > MAX_DIGITS:
        return False
    return _untouched(text)


def _untouched(text: str) -> bool:
    """No redaction rule changes ``text``: the cheap proof first, the redactor when it cannot decide
    (``token create`` holds a keyword, yet no rule fires on it)."""
    if patterns.is_plain(text, _user_names()):
        return True
    from otel_expansion.privacy.redaction import default_redactor

    return default_redactor().redact(text) == text


def token_ok(text: object) -> bool:
    """One identifier-like token (``ValueError``, ``tool.py``, ``linux``): ASCII letters, digits and
    ``._-:``, no spaces, at most four digits, nothing a redaction rule would touch."""
    if type(text) is not str or not 0 < len(text) <= MAX_NAME or not text.isascii():
        return False
    if not text.translate(_SEPARATORS).isalnum() or patterns.digit_count(text) > MAX_DIGITS:
        return False
    return _untouched(text)


def attribute_key(key: object) -> str | None:
    """A feature attribute key when identifier-shaped (``format``, ``db.system``), else None (dropped)."""
    return key if type(key) is str and " " not in key and name_ok(key) else None


_PRE_TAGS = ("a", "b", "c", "rc", "alpha", "beta", "pre", "preview", "post", "dev", "final", "r")


def public_version(version: object) -> str | None:
    """The public part of a version: ``1.0`` for ``1.0+jane.doe.laptop``; None when it is not a version.

    Release numbers, then pre/post/dev tags (PEP 440 and SemVer spellings); a local label (after ``+``),
    SemVer build metadata and any other suffix are dropped: they name machines, people and branches.
    """
    if type(version) is not str:
        return None
    text = version.strip().partition("+")[0]
    if text[:1] in ("v", "V"):
        text = text[1:]
    parts: list[str] = []
    i, n = 0, len(text)
    # release: digits (. digits)*
    while True:
        j = i
        while j < n and text[j].isdigit() and text[j].isascii():
            j += 1
        if j == i or j - i > 9:
            break
        parts.append(text[i:j])
        i = j
        if i < n and text[i] == "." and i + 1 < n and text[i + 1].isdigit():
            parts.append(".")
            i += 1
            continue
        break
    if not parts:
        return None
    release = "".join(parts)
    out = release
    # tags: [.-_]? tag [.-_]? digits?
    while i < n and len(out) < 32:
        j = i + 1 if text[i] in ".-_" else i
        k = j
        while k < n and text[k].isalpha() and text[k].isascii():
            k += 1
        tag = text[j:k].lower()
        if tag not in _PRE_TAGS:
            break
        m = k + 1 if k < n and text[k] in ".-_" else k
        e = m
        while e < n and text[e].isdigit() and text[e].isascii() and e - m < 6:
            e += 1
        if e == m and m != k:
            break
        out += text[i:e]
        i = e
    return out


DYNAMIC = "<dynamic>"


def ambient_resource(pairs: Iterable[tuple[str, str]],
                     allow: Iterable[str] | Mapping[str, frozenset[str] | None]) -> dict[str, str]:
    """Members of ``OTEL_RESOURCE_ATTRIBUTES`` the app allow-listed (exact keys or ``prefix.*``).

    The variable belongs to the end user's own observability set-up, not to the app: nothing of it
    reaches the app's product telemetry unless the app names the key. A value leaves only when it is in
    the vocabulary the app gave for the key (``resource_keys={"deployment.environment": ["prod",
    "staging"]}``), or, for a key given without values, when it passes the rule for names: written
    literally in the main program's code or published by an installed distribution
    (``vocabulary.in_code``/``published``); otherwise it becomes ``<dynamic>``. Its shape never admits
    it. A disallowed key is dropped.
    """
    from otel_expansion.privacy import vocabulary as closed

    exact: dict[str, frozenset[str] | None] = {}
    prefixes: list[tuple[str, frozenset[str] | None]] = []
    items = allow.items() if isinstance(allow, dict) else ((k, None) for k in allow)
    for key, values in items:
        if isinstance(key, str) and key:
            if key.endswith(".*"):
                prefixes.append((key[:-1], values))
            else:
                exact[key] = values
    if not exact and not prefixes:
        return {}
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in exact:
            vocabulary: frozenset[str] | None = exact[key]
        else:
            match = next((p for p in prefixes if key.startswith(p[0])), None)
            if match is None:
                continue
            vocabulary = match[1]
        if vocabulary is not None:
            out[key] = value if value in vocabulary and closed.printable(value) else DYNAMIC
        else:
            out[key] = value if closed.printable(value) and (
                closed.in_code(value) or closed.published(value)) else DYNAMIC
    return out


def declared(names: Iterable[object] | Mapping[str, object] | None) -> frozenset[str] | None:
    """The app's declared names as a set (None: nothing declared, so shape alone decides)."""
    if names is None:
        return None
    if isinstance(names, str):
        names = (names,)
    return frozenset(n for n in names if isinstance(n, str))
