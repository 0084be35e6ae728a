"""The redactor: turns any string or attribute value into one that is safe to store and send.

Used in the CLI's own process at exit and inside the SDK pipeline, so it is built for the hot path: a
memo cache, then :func:`~otel_expansion.privacy.patterns.is_plain` (plain string methods that prove
most short strings clean), then one left-to-right scan with a single alternation of all rules and a
handler per rule. Nothing is compiled until the first Redactor is built, and the public methods never
raise: on an internal error a string becomes ``<redacted>`` (fail closed).
"""

from __future__ import annotations

from otel_expansion.privacy import patterns as P
from otel_expansion.privacy.patterns import REDACTED

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~7 ms on a CLI's exit path)
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from otel_expansion._types import AttrValue

__all__ = ["ID_KEYS", "REDACTED", "Redactor", "default_redactor"]

MAX_ITEMS = 32  # items kept from a sequence value
MAX_KEY_LENGTH = 128
MAX_FLAGS = 64
_SECRET_FLAG_WORDS = ("token", "pass", "pwd", "secret", "key", "auth", "credential")
MAX_ARGS_SCANNED = 1024
MAX_REPR_DEPTH = 4
MAX_REPR_ITEMS = 16
CACHE_MAX_KEY = 256  # longer strings are not memoised: bounded memory, and they rarely repeat
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

ID_KEYS = frozenset({
    "session.id", "session.previous_id", "service.instance.id", "otel_expansion.installation.id",
})
"""Attribute keys holding our own random ids: a hex value there is kept (it would look like a secret)."""

NAME_KEYS = frozenset({"cli.command.name", "cli.error.signature"})
"""Attribute keys holding names built from the program's code (privacy.vocabulary): redacted a
``:``-separated part at a time (:meth:`Redactor.name`), so ``auth:login`` is not read as a key and its value."""

_HOME_DIRS_OF_NOBODY = frozenset({"shared", "public", "default", "all users", "default user", "linuxbrew"})
_TRAILING_PUNCT = ".,;:!?)]}'\""
_SLACK_HOOKS = "https://hooks.slack.com/"
_HEXDIGITS = frozenset("0123456789abcdef")
_logged: set[str] = set()


def _log_once(message: str, trace: bool = True) -> None:
    """One line on the ``otel_expansion.privacy.redaction`` logger per distinct message (logging loads
    lazily: it costs ~30 ms to import); with the traceback when it is a bug rather than bad input."""
    if message in _logged:
        return
    _logged.add(message)
    try:
        import logging

        logging.getLogger("otel_expansion.privacy.redaction").warning("%s", message, exc_info=trace)
    except Exception:  # pragma: no cover - logging itself failing must not break the host
        pass


def _safe_cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` chars plus a marker, never leaving a fragment of a token or number.

    A cut inside a run of non-space characters drops that run (half a token would not match its rule
    and would leak), then trailing digits and separators go too (half a spaced card or phone number).
    """
    head = text[:limit]
    if len(text) > limit and not text[limit].isspace():
        i = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"), head.rfind("\r"))
        head = head[: i + 1]
    return head.rstrip("0123456789 \t\r\n+-.()") + P.TRUNCATED


def _exact_str(value: object) -> str:
    """A plain ``str`` for any str subclass (whose __hash__/__eq__/__str__ could be hostile)."""
    return str.__str__(value)


def _type_name(value: object) -> str:
    try:
        return str(type(value).__qualname__)[:64]
    except Exception:
        return "object"


class Redactor:
    """Configured once; ``redact``/``value``/``attributes`` then only transform. Thread-safe enough:
    the only shared mutable state is the memo dict, whose single operations are atomic."""

    def __init__(
        self,
        extra_patterns: Sequence[str] = (),
        allow: Sequence[str] = (),
        hash_salt: str | None = None,
        max_length: int = 1024,
        cache_size: int = 4096,
    ) -> None:
        import re

        self._re = re
        self.max_length = max(64, _int_or(max_length, 1024))
        self.cache_size = max(0, _int_or(cache_size, 4096))
        self.hash_salt = str(hash_salt) if hash_salt else None
        self._cache: dict[str, str] = {}
        self._names = P.user_names()
        self._families = P.rule_families()
        self._full = self._compile_families(set())
        self._tails: dict[str, re.Pattern[str] | None] = {}
        self._sensitive = re.compile(P.sensitive_key_source(), re.ASCII)
        extra_list = _strings(extra_patterns)
        extras = (self._compile(p, i, extra_list, "PATTERNS") for i, p in enumerate(extra_list))
        self._extras = [rx for rx in extras if rx is not None]
        exact: set[str] = set()
        allow_res: list[re.Pattern[str]] = []
        allow_list = _strings(allow)
        for i, item in enumerate(allow_list):
            if item.startswith("re:"):
                rx = self._compile(item[3:], i, allow_list, "ALLOW")
                if rx is not None:
                    allow_res.append(rx)
            elif item:
                exact.add(item)
        self._allow_exact = frozenset(exact)
        self._allow_res = tuple(allow_res)
        self._has_allow = bool(exact or allow_res)
        self._handlers: dict[str, Callable[[re.Match[str]], str | None]] = {
            "pem": lambda m: P.SECRET,
            "slack_hook": lambda m: m.group() if m.group().endswith("/") else _SLACK_HOOKS + P.SECRET,
            "url": self._url,
            "email": lambda m: P.EMAIL,
            "flag": lambda m: self._keyed(m, "flag"),
            "kv": lambda m: self._keyed(m, "kv"),
            "userkv": lambda m: m.group("userkv_key") + m.group("userkv_sep") + P.USER,
            "token": lambda m: P.TOKEN,
            "ipdash": lambda m: P.IP,
            "curhome": lambda m: "~",
            "homedir": self._homedir,
            "tilde": lambda m: "~" + P.USER,
            "uuid": lambda m: P.UUID,
            "mac": lambda m: P.MAC,
            "ipv4": lambda m: P.IP,
            "curuser": lambda m: P.USER,
            "curhost": lambda m: P.HOST,
            # validated: None means "not what it looked like"
            "bearer": self._bearer,
            "ipv6": lambda m: P.IP if P.valid_ipv6(m.group()) else None,
            "iban": lambda m: P.IBAN if P.iban_ok(m.group()) else None,
            "card": self._card,
            "phone": lambda m: P.PHONE if 8 <= P.digit_count(m.group()) <= 15 else None,
            "generic": lambda m: P.SECRET if P.looks_random(m.group()) else None,
        }

    # -- strings ---------------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` with every rule applied; bounded to ``max_length`` (plus a marker). Never raises."""
        try:
            if type(text) is not str:
                text = _exact_str(text) if issubclass(type(text), str) else self._repr(text)
            cache = self._cache
            hit = cache.get(text)
            if hit is not None:
                return hit
            if not self._extras and len(text) <= self.max_length and P.is_plain(text, self._names):
                out = text
            else:
                out = self._redact_uncached(text)
            if self.cache_size and len(text) <= CACHE_MAX_KEY:
                if len(cache) >= self.cache_size:
                    cache.clear()
                cache[text] = out
            return out
        except Exception:
            _log_once("redaction failed; value replaced by <redacted>")
            return REDACTED

    def _redact_uncached(self, text: str) -> str:
        if self._has_allow and self._allowed(text):
            return text
        if len(text) > self.max_length:
            text = _safe_cut(text, self.max_length)
        for rx in self._extras:
            text = rx.sub(self._extra_match, text)
        return self._apply(text)

    def _apply(self, text: str) -> str:
        """One left-to-right scan with the combined regex. A candidate its validator rejects is not a
        match: the validated rules after it get their chance at the same position (``_tails``), then
        the scan resumes one character later, so nothing inside the candidate is skipped."""
        search = self._full.search
        out: list[str] = []
        last = pos = 0
        while True:
            m = search(text, pos)
            if m is None:
                break
            start = m.start()
            rep, end = self._resolve(m, text)
            if rep is None:
                pos = start + 1
                continue
            out.append(text[last:start])
            out.append(rep)
            last = end
            pos = end if end > start else start + 1
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def _resolve(self, m: re.Match[str], text: str) -> tuple[str | None, int]:
        """(replacement, end) for a match, or (None, _) when it and every later candidate rule fail."""
        while True:
            matched = m.group()
            if self._has_allow and self._allowed(matched):
                return matched, m.end()
            name = m.lastgroup or ""
            out = self._handlers[name](m)
            if out is not None:
                return out, m.end()
            tail = self._tail(name)
            nxt = tail.match(text, m.start()) if tail is not None else None
            if nxt is None:
                return None, m.end()
            m = nxt

    def _tail(self, name: str) -> re.Pattern[str] | None:
        """The rules after ``name`` in priority order, compiled on its first rejection (most runs never
        need one; validated rules sit late in the order, so tails are small)."""
        try:
            return self._tails[name]
        except KeyError:
            pass
        order = [n for fams in self._families for _, rules in fams for n, _ in rules]
        skip = set(order[: order.index(name) + 1])
        rx = self._compile_families(skip) if len(skip) < len(order) else None
        self._tails[name] = rx
        return rx

    def _compile_families(self, skip: set[str]) -> re.Pattern[str]:
        anywhere, word_start = self._families

        def join(families: list[P.Family]) -> list[str]:
            parts = []
            for guard, rules in families:
                alts = "|".join(f"(?P<{name}>{src})" for name, src in rules if name not in skip)
                if alts:
                    parts.append(f"{guard}(?:{alts})")
            return parts

        parts = []
        outer = join(anywhere)
        if outer:
            parts.append(P.ANYWHERE_GUARD + "(?:" + "|".join(outer) + ")")
        inner = join(word_start)
        if inner:
            parts.append(P.WORD_START_GUARD + "(?:" + "|".join(inner) + ")")
        return self._re.compile("|".join(parts), self._re.ASCII)

    def _extra_match(self, m: re.Match[str]) -> str:
        matched = m.group()
        if not matched or (self._has_allow and self._allowed(matched)):
            return matched
        return REDACTED

    def _allowed(self, text: str) -> bool:
        return text in self._allow_exact or any(rx.fullmatch(text) for rx in self._allow_res)

    # -- rule handlers ---------------------------------------------------------------------------------
    def _url(self, m: re.Match[str]) -> str:
        """scheme://host/path survives; credentials, query and fragment do not; host and path are
        redacted in turn (an IP host, a home directory or a token in the path)."""
        text = m.group()
        end = len(text)
        while end and text[end - 1] in _TRAILING_PUNCT:
            end -= 1
        url, trail = text[:end], text[end:]
        scheme, _, rest = url.partition("://")
        cut = len(rest)
        for sep in "/?#":
            i = rest.find(sep)
            if 0 <= i < cut:
                cut = i
        authority, tail = rest[:cut], rest[cut:]
        host = authority.rpartition("@")[2]
        for sep in "?#":
            i = tail.find(sep)
            if i >= 0:
                tail = tail[:i]
        return f"{scheme}://{self._apply(host)}{self._apply(tail)}{trail}"

    def _keyed(self, m: re.Match[str], rule: str) -> str:
        """key + separator + <secret>; the key itself is redacted too (it could be a token)."""
        value = m.group(f"{rule}_val")
        if self._has_allow and self._allowed(value):
            return m.group()
        key = self._apply(m.group(f"{rule}_key"))  # no ':', '=' or space inside: cannot recurse
        return key + m.group(f"{rule}_sep") + P.SECRET

    def _bearer(self, m: re.Match[str]) -> str | None:
        if not P.bearer_value_ok(m.group("bearer_val")):
            return None
        return m.group()[: m.start("bearer_val") - m.start()] + P.TOKEN

    def _homedir(self, m: re.Match[str]) -> str:
        user = m.group("homedir_user")
        if user.lower() in _HOME_DIRS_OF_NOBODY or (self._has_allow and self._allowed(user)):
            return m.group()
        return m.group("homedir_prefix") + P.USER

    def _card(self, m: re.Match[str]) -> str | None:
        text = m.group()
        return P.CARD if 13 <= P.digit_count(text) <= 19 and P.luhn_ok(text) else None

    # -- values ----------------------------------------------------------------------------------------
    def value(self, v: object) -> AttrValue | None:
        """Any object as a safe, bounded OpenTelemetry attribute value; None means "drop it"."""
        try:
            t = type(v)
            if t is str:
                return self.redact(v)  # type: ignore[arg-type]
            if v is None:
                return None
            if t is bool or t is float:
                return v  # type: ignore[return-value]
            if t is int:
                return self._int(v)  # type: ignore[arg-type]
            if issubclass(t, (list, tuple, set, frozenset)):
                return self._sequence(v)  # type: ignore[arg-type]
            return self._scalar(v)
        except Exception:
            _log_once("attribute value could not be converted; replaced by <redacted>")
            return REDACTED

    def _scalar(self, v: object) -> str | bool | int | float | None:
        """One non-sequence value (or a nested container, which becomes a redacted bounded repr)."""
        t = type(v)
        if t is str:
            return self.redact(v)  # type: ignore[arg-type]
        if v is None:
            return None
        if t is bool:
            return bool(v)
        if issubclass(t, str):
            return self.redact(_exact_str(v))
        if issubclass(t, int):
            return self._int(int.__int__(v))  # type: ignore[arg-type]
        if issubclass(t, float):
            return float.__float__(v)  # type: ignore[arg-type]
        binary = _binary_len(v)
        if binary is not None:
            return f"<binary len={binary}>"
        return self.redact(self._repr(v))

    def _int(self, v: int) -> int | str:
        """Ints stay ints, except card-length numbers (checked like text) and ones OTLP cannot carry."""
        if _INT64_MIN <= v <= _INT64_MAX:
            if -(10**12) < v < 10**12:
                return v
            text = str(v)
            out = self.redact(text)
            return v if out == text else out
        try:
            return self.redact(str(v))
        except ValueError:  # more digits than int->str conversion allows
            return REDACTED

    def _sequence(self, v: Iterable[object]) -> AttrValue:
        items: list[str | bool | int | float] = []
        for i, item in enumerate(v):
            if i >= MAX_ITEMS:
                break
            x = self._scalar(item) if not issubclass(type(item), (list, tuple, set, frozenset)) else (
                self.redact(self._repr(item)))
            if x is not None:
                items.append(x)
        kinds = {type(x) for x in items}
        if kinds == {str} and issubclass(type(v), (set, frozenset)):
            items.sort()  # a set has no order; a stable one aggregates better
        if kinds == {bool}:
            return tuple(x for x in items if type(x) is bool)
        if kinds == {int}:
            return tuple(x for x in items if type(x) is int)
        if kinds and kinds <= {int, float}:
            return tuple(float(x) for x in items)
        return tuple(x if type(x) is str else str(x) for x in items)

    def _repr(self, obj: object) -> str:
        """A repr bounded in depth, items and length, safe on recursive and hostile objects."""
        budget = [self.max_length]
        try:
            return self._brepr(obj, 0, budget, set())
        except RecursionError:
            return f"<{_type_name(obj)}>"

    def _brepr(self, obj: object, depth: int, budget: list[int], seen: set[int]) -> str:
        if budget[0] <= 0:
            return "..."
        t = type(obj)
        if t is str or issubclass(t, str):
            s = _exact_str(obj)
            # redact each string before repr(): escaping (a Windows path's backslashes doubled) would
            # otherwise hide it from the rules that run over the finished repr
            out = repr(self.redact(_safe_cut(s, budget[0]) if len(s) > budget[0] else s))
        elif obj is None or t is bool or t is int or t is float:
            try:
                out = repr(obj)
            except ValueError:
                out = "<int>"
        elif _binary_len(obj) is not None:
            out = f"<binary len={_binary_len(obj)}>"
        elif issubclass(t, (list, tuple, set, frozenset, dict)):
            opening, closing = ("{", "}") if issubclass(t, (dict, set, frozenset)) else (
                ("(", ")") if issubclass(t, tuple) else ("[", "]"))
            if depth >= MAX_REPR_DEPTH or id(obj) in seen:
                out = opening + "..." + closing
            else:
                seen.add(id(obj))
                parts: list[str] = []
                is_dict = issubclass(t, dict)
                container: Any = obj
                items: Iterable[Any] = dict.items(container) if is_dict else container
                for i, item in enumerate(items):
                    if i >= MAX_REPR_ITEMS or budget[0] <= 0:
                        parts.append("...")
                        break
                    if is_dict:
                        k, val = item
                        parts.append(self._brepr(k, depth + 1, budget, seen) + ": "
                                     + self._brepr(val, depth + 1, budget, seen))
                    else:
                        parts.append(self._brepr(item, depth + 1, budget, seen))
                seen.discard(id(obj))
                if len(parts) == 1 and opening == "(":
                    parts.append("")  # (x,)
                out = opening + ", ".join(parts).rstrip() + closing
        else:
            try:
                r = repr(obj)
                out = r if type(r) is str else f"<{_type_name(obj)}>"
            except Exception:
                out = f"<{_type_name(obj)}>"
            if len(out) > budget[0]:
                out = _safe_cut(out, budget[0])
        budget[0] -= len(out)
        return out

    def attributes(self, attrs: Mapping[str, object] | None, max_count: int = 64) -> dict[str, AttrValue]:
        """A redacted copy of an attribute mapping: at most ``max_count`` entries, None values dropped,
        values of secret-named keys (password, token, api_key, ...) replaced by ``<secret>``."""
        out: dict[str, AttrValue] = {}
        if attrs is None:
            return out
        try:
            scanned = 0
            limit = max(256, 4 * max_count)
            for key, val in attrs.items():
                scanned += 1
                if len(out) >= max_count or scanned > limit:
                    break
                k = self._key(key)
                if not k or val is None:
                    continue
                v = self._attr_value(k, val)
                if v is not None:
                    out[k] = v
        except Exception:
            _log_once("attribute mapping could not be read completely; the rest is dropped")
        return out

    def _key(self, key: object) -> str:
        k = key if type(key) is str else self._scalar(key)
        return str(self.redact(str(k)))[:MAX_KEY_LENGTH] if k is not None else ""

    def _attr_value(self, key: str, val: object) -> AttrValue | None:
        if type(val) is str and key in ID_KEYS and 16 <= len(val) <= 64 and _HEXDIGITS.issuperset(val):
            return val
        if type(val) is str and key in NAME_KEYS:
            return self.name(val)
        if self._sensitive.search(key) is not None:
            return val if type(val) is bool else P.SECRET
        return self.value(val)

    def name(self, text: str) -> str:
        """A name built from the program's code (a command such as ``auth:login``, a signature such as
        ``myapp.auth:login``, our own span's name), redacted a ``:``-separated part at a time: every rule
        still applies within each part, but a part is never read as a key whose value follows the colon
        (the rule for ``password: hunter2`` made ``myapp.auth:login`` into ``myapp.auth:<secret>``)."""
        if ":" not in text:
            return self.redact(text)
        return ":".join(self.redact(part) for part in text.split(":"))

    # -- arguments and identifiers ---------------------------------------------------------------------
    def argv_shape(self, argv: Sequence[str]) -> tuple[str, ...]:
        """Distinct flag names in order of first use (``--token=abc`` -> ``--token``, ``-p 1`` -> ``-p``; a
        flag given twice is named once); values, positional arguments and everything after ``--`` are
        dropped. Short clusters keep their first letter only (``-psecret`` may be a flag with its value
        attached); an integration that knows the parser's options does better (argparse splits clusters,
        click reads the whole command line by its declarations)."""
        out: list[str] = []
        skip_value = False
        try:
            for i, arg in enumerate(argv):
                if i >= MAX_ARGS_SCANNED or len(out) >= MAX_FLAGS:
                    break
                if not issubclass(type(arg), str):
                    continue
                arg = _exact_str(arg)
                if skip_value:  # the value of a secret-named flag, even when it looks like a flag itself
                    skip_value = False
                    continue
                if arg == "--":
                    break
                if arg.startswith("--"):
                    name, eq, _ = arg[2:].partition("=")
                    if _flag_name_ok(name) and self.redact(name) == name and "--" + name not in out:
                        out.append("--" + name)
                    skip_value = not eq and any(w in name.lower() for w in _SECRET_FLAG_WORDS)
                elif len(arg) > 1 and arg[0] == "-" and arg[1].isascii() and arg[1].isalpha() and arg[:2] not in out:
                    out.append(arg[:2])
        except Exception:
            _log_once("argument shape could not be computed completely")
        return tuple(out)

    def identifier(self, ident: str) -> str:
        """A stable pseudonym: salted HMAC-SHA256 (16 hex chars) when a salt is set, else redacted."""
        try:
            text = ident if type(ident) is str else (
                _exact_str(ident) if issubclass(type(ident), str) else self._repr(ident))
            if not self.hash_salt:
                return self.redact(text)
            import hashlib
            import hmac

            key = self.hash_salt.encode("utf-8", "surrogatepass")
            return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
        except Exception:
            _log_once("identifier could not be hashed; replaced by <redacted>")
            return REDACTED

    # -- construction helpers --------------------------------------------------------------------------
    def _compile(self, source: str, index: int, items: list[str], kind: str) -> re.Pattern[str] | None:
        try:
            return self._re.compile(source)
        except Exception as exc:
            _warn_invalid(index, items, kind, exc, source)
            return None

    def cache_info(self) -> tuple[int, int]:
        """(entries, capacity) of the memo cache, for tests and ``otel-expansion debug``."""
        return len(self._cache), self.cache_size


def _warn_invalid(index: int, items: list[str], kind: str, exc: Exception, source: str) -> None:
    """Say which configured pattern is not a regular expression, and why, never what it is (a pattern
    written to catch a secret is made of that secret): the standard warning, once.

    ``items`` is init()'s list followed by the environment variable's lines (config.resolve); the entries
    that end it and equal the variable's lines are counted as the variable's."""
    try:
        from otel_expansion.config import variable, warn

        var = f"OTEL_EXPANSION_REDACT_{kind}"
        env = variable(var)
        env_items = [str(x) for x in env] if isinstance(env, tuple) else []
        tail = len(env_items) if env_items and items[len(items) - len(env_items):] == env_items else 0
        first_env = len(items) - tail
        if index >= first_env:
            where, number, total = var, index - first_env + 1, tail
        else:
            where, number, total = f"init(redact_{kind.lower()}=...)", index + 1, first_env
        what = "pattern" if kind == "PATTERNS" else "entry"
        warn(f"{where}: {what} {number} of {total} is not a valid regular expression ({_reason(exc, source)}); "
             "ignored")
    except Exception:  # pragma: no cover - a warning must never break the host
        pass


def _reason(exc: Exception, source: str) -> str:
    """The regular expression engine's complaint without any word of the pattern in it (``re`` quotes
    group names, escapes and ranges from the pattern): words found in the pattern are left out."""
    import re

    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "", str(getattr(exc, "msg", "") or type(exc).__name__))
    words = [w for w in msg.split() if not any(c.isalnum() for c in w) or w.strip("),;:") not in source]
    return " ".join(words) or type(exc).__name__


def _strings(items: Sequence[str] | str | None) -> list[str]:
    """Configuration lists, tolerating a lone string (which is a Sequence of characters)."""
    if not items:
        return []
    if isinstance(items, str):
        return [items]
    return [str(x) for x in items if x is not None]


def _int_or(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError, OverflowError):
        return default


def _binary_len(v: object) -> int | None:
    t = type(v)
    if issubclass(t, bytes):
        return bytes.__len__(v)  # type: ignore[arg-type]
    if issubclass(t, bytearray):
        return bytearray.__len__(v)  # type: ignore[arg-type]
    if t is memoryview:
        return v.nbytes  # type: ignore[attr-defined, no-any-return]
    return None


def _flag_name_ok(name: str) -> bool:
    return (
        0 < len(name) <= 64
        and name[0].isascii()
        and name[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    )


_default: Redactor | None = None


def default_redactor() -> Redactor:
    """The process-wide redactor with default rules (built on first use)."""
    global _default
    r = _default
    if r is None:
        r = _default = Redactor()
    return r
