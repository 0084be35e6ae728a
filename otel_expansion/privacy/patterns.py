"""What counts as personal or secret data: rule sources, placeholders and the checks regexes cannot do.

Pure data and pure functions. Nothing is compiled here at import (``re`` is not even imported): the
:class:`~otel_expansion.privacy.redaction.Redactor` joins these sources into one alternation when it is
first built. Rules are ordered by priority: where two could start at the same position the earlier wins.
"""

from __future__ import annotations

import math
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~7 ms on a CLI's exit path)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "CARD",
    "EMAIL",
    "GENERIC_USER_NAMES",
    "IP",
    "MAC",
    "PHONE",
    "REDACTED",
    "SECRET",
    "TOKEN",
    "TRUNCATED",
    "USER",
    "UUID",
    "VALIDATED",
    "bearer_value_ok",
    "candidate_trigger_source",
    "digit_count",
    "is_plain",
    "looks_random",
    "luhn_ok",
    "rule_sources",
    "sensitive_key_source",
    "shannon_entropy",
    "trigger_source",
    "user_names",
    "valid_ipv6",
]

# Typed placeholders: the kind of data that was there survives, the data does not.
REDACTED = "<redacted>"  # extra (user-supplied) patterns, and the fail-closed result of an internal error
EMAIL = "<email>"
IP = "<ip>"
MAC = "<mac>"
USER = "<user>"
TOKEN = "<token>"
SECRET = "<secret>"
CARD = "<card>"
PHONE = "<phone>"
UUID = "<uuid>"
TRUNCATED = "...<truncated>"

# Account names that identify nobody (CI runners, containers, service accounts): never treated as the
# current user's name, so words like "runner" or "build" survive on CI machines.
GENERIC_USER_NAMES = frozenset(
    "root admin administrator user users runner ubuntu ec2-user vagrant docker jenkins circleci nobody "
    "build builder app node default guest travis gitlab-runner codespace vscode www-data daemon "
    "buildkite semaphore appveyor azure cloudshell-user debian centos fedora alpine".split()
)

# Key / flag names whose value is a secret. "tokens" (max_tokens, input_tokens), "tokenizer",
# "token_count"/"token_type", "author" and "authority" are ordinary words and are excluded on purpose.
_SENSITIVE_WORDS = (
    r"passw(?:or)?d|passwd|passphrase|pwd|secret|token(?![sS]|iz|is|[-_.]?(?:count|limit|usage|type|len))|api[-_.]?key|auth(?!or)"
    r"|credential|private[-_.]?key|access[-_.]?key|cookie"
)


def sensitive_key_source() -> str:
    """Regex (case-insensitive) that finds a sensitive word anywhere in a key or flag name."""
    return f"(?i:{_SENSITIVE_WORDS})"


# Substrings (lower case) that every sensitive key, bearer header or PEM block contains; used by the
# cheap pre-checks, so it must cover ``_SENSITIVE_WORDS`` and the bearer schemes.
_KEYWORDS = (
    "passw", "passphrase", "pwd", "secret", "token", "api", "auth", "credential", "private", "access",
    "cookie", "bearer", "basic", "digest", "xox", "xapp", "eyj",
)

_H = "[0-9A-Fa-f]"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_QUOTED_OR_BARE = r"""(?:"[^"\n]*"?|'[^'\n]*'?|[^\s,;&"'`]+)"""
_SCHEME_WORD = r"(?i:bearer|basic|token|digest)"

# The rules, in families. Each family has a guard: a one-character lookahead saying how its members can
# start, so the engine skips the whole family in one cheap test at most positions (a plain alternation
# of ~20 rules costs ~0.3 us per character; guarded, a fraction of that). Within the alternation the
# first family/rule that matches at a position wins, so the order is the priority order. An empty guard
# means none.
# Rule names double as regex group names; inner groups are prefixed with their rule's name. Every rule
# must be able to fire only on text that ``trigger_source`` and ``is_plain`` flag, or the fast paths
# would skip it: tests/privacy checks this property.
Family = tuple[str, tuple[tuple[str, str], ...]]

_FAMILIES: tuple[Family, ...] = (
    ("-", (
        # PEM private key blocks; a block cut by truncation is removed to the end of the text.
        ("pem", r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
        # --password hunter2, --api-key=XYZ, -token abc (the value may not look like another flag).
        ("flag", r"(?<![\w-])(?P<flag_key>--?[\w.-]*" + "{SENS}" + r"[\w.-]*)(?P<flag_sep>=|[ \t]+)"
                 r"(?P<flag_val>" + _SCHEME_WORD + r"[ \t]+\S+|(?!-)" + _QUOTED_OR_BARE + ")"),
    )),
    ("[A-Za-z]", (
        ("slack_hook", r"(?i:https?://hooks\.slack\.com/)[^\s\"'<>`]*"),
        # Any scheme://... URL: credentials, query and fragment dropped; host and path redacted in turn.
        ("url", r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>`]*"),
        ("bearer", r"(?<![A-Za-z0-9])(?P<bearer_scheme>" + _SCHEME_WORD + r")[ \t]+"
                   r"(?P<bearer_val>[A-Za-z0-9._~+/=-]{8,})"),
        # Vendor tokens with a recognisable prefix, and JWTs.
        ("token", r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
                  r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16,}"
                  r"|xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}|glpat-[A-Za-z0-9_-]{20,}"
                  r"|npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_-]{40,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
                  r"|sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,}"
                  r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*)"),
        ("ipdash", r"(?<![\w-])ip-(?:\d{1,3}-){3}\d{1,3}(?![\w-])"),
    )),
    ("[A-Za-z0-9._%+-]", (
        ("email", r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}"),
    )),
    # password=x, "api_key": "x", Authorization: Bearer x. The lookahead (a ':' or '=' after the word)
    # fails fast on ordinary words before the costly search for a sensitive word inside them.
    ("[\"'\\w.-]", (
        ("kv", r"(?<![\w.-])(?=[\"']?[\w.-]*[\"']?[ \t]*[:=])"
               r"(?P<kv_key>[\"']?[\w.-]*" + "{SENS}" + r"[\w.-]*[\"']?)(?P<kv_sep>[ \t]*[:=][ \t]*)"
               r"(?P<kv_val>(?:" + _SCHEME_WORD + r"[ \t]+)?" + _QUOTED_OR_BARE + ")"),
    )),
    ("[/\\\\~]|[A-Za-z]:", (
        # (the environment-specific "curhome" rule is inserted first here)
        ("homedir", r"(?P<homedir_prefix>(?:[A-Za-z]:)?(?:\\{1,2}|/)(?:(?i:users)|home|Documents and Settings)"
                    r"(?:\\{1,2}|/))(?P<homedir_user>[^\\/\s:*?\"'<>|]+)"),
        ("tilde", r"(?<![\w~])~(?P<tilde_user>[A-Za-z_][\w.-]*)"),
    )),
    ("[0-9A-Fa-f:]", (
        ("uuid", rf"(?<![0-9A-Fa-f-]){_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}(?![0-9A-Fa-f-])"),
        ("mac", rf"(?<![\w:-]){_H}{{2}}(?P<mac_sep>[:-]){_H}{{2}}(?:(?P=mac_sep){_H}{{2}}){{4}}(?![\w:-])"),
        # Candidate only: validated by valid_ipv6 (needs '::' or exactly eight groups).
        ("ipv6", rf"(?<![\w:.])(?:{_H}{{0,4}}:){{2,7}}(?:{_IPV4}|{_H}{{1,4}})?(?:%[\w.-]+)?(?![\w:]|\.\d)"),
    )),
    ("[0-9+(]", (
        ("ipv4", rf"(?<![A-Za-z0-9.]){_IPV4}(?:/\d{{1,2}})?(?![A-Za-z0-9]|\.\d)"),
        # Candidate only: 13-19 digits with a card-network prefix, validated by luhn_ok.
        ("card", r"(?<![\d.-])(?:4|5[1-5]|2[2-7]|3\d|6)(?:[ -]?\d){11,18}(?!\d|[.-]\d)"),
        # Candidates only: validated by digit count. International +CC, US (555) 123-4567 / 555-123-4567,
        # and trunk-prefix national forms (020 7946 0958).
        ("phone", r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]\d{1,5}){1,6}(?![\d])"
                  r"|(?<![\w+])\+\d{7,15}(?!\d)"
                  r"|(?<![\w.+-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[.-])\d{3}[.-]\d{4}(?![\w]|[.-]\d)"
                  r"|(?<![\w.+-])0\d{1,4}[ /-]\d{3,4}[ -]?\d{3,5}(?![\w]|[.-]\d)"),
    )),
    # (the environment-specific "curuser" family goes here)
    ("[A-Za-z0-9+/_=-]", (
        # Candidate only: validated by looks_random (or 32+ hex digits).
        ("generic", r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{24,}"),
    )),
)

VALIDATED = frozenset({"ipv6", "card", "phone", "generic", "bearer"})
"""Rules whose regex only finds candidates; a rejected candidate is rescanned without that rule."""


def _escape(text: str) -> str:
    """``re.escape`` without importing ``re`` (this module stays import-free)."""
    return "".join("\\" + c if not (c.isalnum() or c == "_") else c for c in text)


def _current_user(environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The current user's names and home directories worth hiding (at least 3 chars, not generic)."""
    names: list[str] = []
    for var in ("USER", "USERNAME", "LOGNAME"):
        name = environ.get(var, "").strip()
        if len(name) >= 3 and name.lower() not in GENERIC_USER_NAMES and name not in names:
            names.append(name)
    homes: list[str] = []
    for var in ("HOME", "USERPROFILE"):
        home = environ.get(var, "").strip().rstrip("/\\")
        absolute = home.startswith(("/", "\\")) or (len(home) > 2 and home[0].isalpha() and home[1] == ":")
        if len(home) >= 3 and absolute and home not in homes:
            homes.append(home)
    return names, homes


def rule_sources(environ: Mapping[str, str] | None = None) -> list[Family]:
    """All built-in rule families in priority order, including this user's own home and names."""
    env = os.environ if environ is None else environ
    names, homes = _current_user(env)
    sens = sensitive_key_source()
    families: list[Family] = [
        (guard, tuple((name, src.replace("{SENS}", sens)) for name, src in rules)) for guard, rules in _FAMILIES
    ]
    if homes:
        forms: list[str] = []
        for home in homes:
            variants = {home, home.replace("\\", "/"), home.replace("\\", "\\\\")}
            for v in sorted(variants, key=len, reverse=True):
                esc = _escape(v)
                forms.append(f"(?i:{esc})" if ("\\" in v or ":" in v) else esc)
        src = "(?:" + "|".join(forms) + ")" + r"(?=[/\\\s\"'`:;,)\]}>]|\Z)"
        i = next(i for i, (_, rules) in enumerate(families) if rules[0][0] == "homedir")
        guard, rules = families[i]
        families[i] = (guard, (("curhome", src), *rules))
    if names:
        alts = "|".join(_escape(n) for n in sorted(names, key=len, reverse=True))
        families.insert(len(families) - 1, ("", (
            ("curuser", f"(?<![A-Za-z0-9])(?i:{alts})(?![A-Za-z0-9])"),
        )))
    return families


def trigger_source(environ: Mapping[str, str] | None = None) -> str:
    """A cheap regex that matches every text any built-in rule could change (it may over-match).

    Derivation, rule by rule: '@' email; ':' url, kv, ipv6, mac; '/' and '\\' paths and home dirs;
    '~' tilde; '=' kv; '+' phone; three digits (maybe spaced) cards and phones; digit.digit ipv4; a 20-char
    run tokens, uuids, generic secrets; ``ip-N`` and hex-dash pairs ipdash and mac; keywords flags,
    bearer values, PEM blocks, Slack tokens and JWT headers; the user's own names.
    """
    env = os.environ if environ is None else environ
    names, _ = _current_user(env)
    parts = [
        r"[@:/\\~=+]", r"\d[ -]?\d[ -]?\d", r"\d\.\d", r"[A-Za-z0-9+/_=-]{20}", r"ip-\d", rf"{_H}{{2}}-{_H}{{2}}-",
        "(?i:" + "|".join(_KEYWORDS) + ")",
    ]
    if names:
        parts.append("(?i:" + "|".join(_escape(n) for n in names) + ")")
    return "|".join(parts)


_PLAIN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.- "
_NO_DIGITS = str.maketrans("", "", "0123456789")
_AWS_PREFIXES = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA")


def user_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The current user's names that are hidden everywhere, lower-cased (for :func:`is_plain`)."""
    return tuple(n.lower() for n in _current_user(os.environ if environ is None else environ)[0])


def is_plain(text: str, names: tuple[str, ...] | None = None) -> bool:
    """True only when no built-in rule can change ``text``: a proof, not a guess, and no regex needed.

    Short (<= 64), only ``[A-Za-z0-9_.- ]``, at most 3 digits (an IPv4 address needs 4, phones and
    cards 8+), no word over 23 chars (generic secrets need 24), words of 17+ chars without an AWS key
    prefix, ``sk-`` or a MAC address's five dashes, no sensitive keyword, and none of the user's
    ``names`` (lower case; read from the environment when None). Extra patterns are not considered:
    callers that configure some must not skip the redactor on this basis.
    """
    if len(text) > 64 or text.strip(_PLAIN_CHARS):
        return False
    if len(text) - len(text.translate(_NO_DIGITS)) > 3:
        return False
    if len(text) > 16:
        for word in text.split():
            n = len(word)
            if n > 23:
                return False
            if n >= 17 and (word.count("-") >= 5 or "sk-" in word or any(p in word for p in _AWS_PREFIXES)):
                return False
    low = text.lower()
    for k in _KEYWORDS:
        if k in low:
            return False
    for name in user_names() if names is None else names:
        if name in low:
            return False
    return True


def candidate_trigger_source(environ: Mapping[str, str] | None = None) -> str:
    """Matches a rejected ``generic`` candidate (a run of ``[A-Za-z0-9+/_=-]``) that could still hold
    another rule's match; together with "8+ digits" (cards, phones) it decides whether to rescan it.

    In that alphabet only these can match: flag/kv (a sensitive word), vendor tokens (their prefix),
    home directories (``/home/``, ``/Users/``, this user's home), uuid and dashed MAC (hex-dash-hex),
    ``ip-N``, and this user's names.
    """
    env = os.environ if environ is None else environ
    names, homes = _current_user(env)
    parts = [
        "(?i:" + "|".join(k for k in _KEYWORDS if k not in ("bearer", "basic", "digest", "eyj")) + ")",
        r"gh[pousr]_|github_pat_|xapp-|glpat-|npm_|pypi-|[spr]k_|sk-|AIza|" + "|".join(_AWS_PREFIXES),
        "(?i:/home/|/users/)", rf"{_H}{{2}}-{_H}{{2}}", r"ip-\d",
    ]
    parts += [_escape(h) for h in homes] + ["(?i:" + _escape(n) + ")" for n in names]
    return "|".join(parts)


# -- checks a regex cannot express --------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """Luhn checksum over a string of digits (other characters are ignored)."""
    total = 0
    ds = [ord(c) - 48 for c in digits if "0" <= c <= "9"]
    for i, d in enumerate(reversed(ds)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return bool(ds) and total % 10 == 0


def digit_count(text: str) -> int:
    return len(text) - len(text.translate(_NO_DIGITS))


_HEX = frozenset("0123456789abcdefABCDEF")


def valid_ipv6(candidate: str) -> bool:
    """Whether an ``ipv6`` candidate is a real address ('::' compression or eight groups, zone allowed).

    The unspecified address ``::`` alone is not treated as an address (it is also C++/Rust syntax).
    """
    addr = candidate.partition("%")[0]
    if "." in addr:  # embedded IPv4 (already checked by the regex) stands for two groups
        addr = addr[: addr.rfind(":") + 1] + "0:0"
    if "::" in addr:
        if addr.count("::") > 1 or addr == "::":
            return False
        left, right = addr.split("::")
        groups = (left.split(":") if left else []) + (right.split(":") if right else [])
        if len(groups) > 7:
            return False
    else:
        groups = addr.split(":")
        if len(groups) != 8:
            return False
    return all(1 <= len(g) <= 4 and _HEX.issuperset(g) for g in groups)


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text`` under its own character frequencies."""
    n = len(text)
    if not n:
        return 0.0
    from collections import Counter  # loaded with ``re`` anyway; its counting loop is in C

    return -sum(k / n * math.log2(k / n) for k in Counter(text).values())


_random_checks: list[Any] = []


def _checks() -> list[Any]:
    """Compiled helpers for :func:`looks_random` (``re`` is loaded by then: the Redactor uses it)."""
    if not _random_checks:
        import re

        _random_checks.extend((
            re.compile(r"[A-Za-z0-9]{12}"),  # an alphanumeric core
            re.compile(r"[bcdfghj-np-tv-xzBCDFGHJ-NP-TV-XZ]{5}"),  # five consonants in a row
            re.compile(r"[A-Za-z](?=[0-9])|[0-9](?=[A-Za-z])"),  # letter<->digit switches
        ))
    return _random_checks


def looks_random(text: str) -> bool:
    """Whether a 24+ char run of ``[A-Za-z0-9+/_=-]`` is a machine-made secret rather than a name.

    Tuned on random tokens against identifiers, paths, branch names and package names (see
    tests/privacy): a hex run of 32+ chars with digits and letters is a key or digest; otherwise the
    run must hold a 12+ char alphanumeric core, look unpronounceable (five consonants in a row, which
    English identifiers almost never have, or four letter<->digit switches) and have an entropy of at
    least 0.7 * log2(min(len, 64)) bits/char. About 98% of random 24-char alphanumeric tokens and over
    99% of 40-char ones are caught; CamelCase, snake_case and kebab-case names, dates and versions are not.
    """
    n = len(text)
    if n < 24:
        return False
    core, consonants, switches = _checks()
    if core.search(text) is None:
        return False
    if _HEX.issuperset(text):
        digits = digit_count(text)
        return n >= 32 and 0 < digits < n
    if consonants.search(text) is None and len(switches.findall(text)) < 4:
        return False
    return shannon_entropy(text) >= 0.7 * math.log2(min(n, 64))


def bearer_value_ok(value: str) -> bool:
    """An authorization value rather than a word ("Basic authentication"): digits, base64 punctuation
    or internal capitals."""
    if any(c.isdigit() or c in "+/=" for c in value):
        return True
    return sum(1 for c in value[1:] if c.isupper()) >= 2
