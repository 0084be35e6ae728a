"""What counts as personal or secret data: rule sources, placeholders and the checks regexes cannot do.

Pure data and pure functions, and no import of ``re``: the
:class:`~otel_expansion.privacy.redaction.Redactor` compiles these sources into one alternation when it
is first built, and :func:`is_plain` proves most short strings clean with plain string methods.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~7 ms on a CLI's exit path)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "ANYWHERE_GUARD",
    "CARD",
    "EMAIL",
    "GENERIC_USER_NAMES",
    "IBAN",
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
    "WORD_START_GUARD",
    "Family",
    "bearer_value_ok",
    "digit_count",
    "iban_ok",
    "is_plain",
    "looks_random",
    "luhn_ok",
    "rule_families",
    "sensitive_key_source",
    "shannon_entropy",
    "user_names",
    "valid_ipv6",
]

# Typed placeholders: the kind of data that was there survives, the data does not.
REDACTED = "<redacted>"  # extra (user-supplied) patterns, and the fail-closed result of an internal error
EMAIL = "<email>"
IP = "<ip>"
MAC = "<mac>"
USER = "<user>"
HOST = "<host>"
TOKEN = "<token>"
SECRET = "<secret>"
CARD = "<card>"
IBAN = "<iban>"
PHONE = "<phone>"
UUID = "<uuid>"
TRUNCATED = "...<truncated>"

# Account names that identify nobody (CI runners, containers, service accounts): never treated as the
# current user's name, so words like "runner" or "build" survive on CI machines.
GENERIC_USER_NAMES = frozenset((
    "root", "admin", "administrator", "user", "users", "runner", "ubuntu", "ec2-user", "vagrant", "docker",
    "jenkins", "circleci", "nobody", "build", "builder", "app", "node", "default", "guest", "travis",
    "gitlab-runner", "codespace", "vscode", "www-data", "daemon", "buildkite", "semaphore", "appveyor",
    "azure", "cloudshell-user", "debian", "centos", "fedora", "alpine",
))

# Key / flag names whose value is a secret. "tokens" (max_tokens, input_tokens), "tokenizer",
# "token_count"/"token_type", "author" and "authority" are ordinary words and are excluded on purpose.
_SENSITIVE_WORDS = (
    r"passw(?:or)?d|passwd|passphrase|pwd|secret|token(?![sS]|iz|is|[-_.]?(?:count|limit|usage|type|len))"
    r"|api[-_.]?key|auth(?!or(?!i[sz]))|credential|private[-_.]?key|access[-_.]?key|cookie"
)


def sensitive_key_source() -> str:
    """Regex (case-insensitive) that finds a sensitive word anywhere in a key or flag name."""
    return f"(?i:{_SENSITIVE_WORDS})"


# Lower-case substrings that every sensitive key, bearer header, PEM block, Slack token and JWT
# contains; :func:`is_plain` relies on this covering them all.
_KEYWORDS = (
    "pass", "pwd", "secret", "token", "api", "auth", "credential", "private", "access",
    "cookie", "bearer", "basic", "digest", "xox", "xapp", "eyj",
)

_H = "[0-9A-Fa-f]"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
# A value: quoted, or everything up to whitespace or a quote (a secret may contain , ; & ...).
# One already replaced by a placeholder is left alone, so redacting twice changes nothing.
_QUOTED_OR_BARE = r"""(?!<(?:secret|token|redacted)>)(?:"[^"\n]*"?|'[^'\n]*'?|[^\s"'`]+)"""
_SCHEME_WORD = r"(?i:bearer|basic|token|digest)"

Family = tuple[str, tuple[tuple[str, str], ...]]
"""(guard, ((rule name, regex source), ...)). The guard is a zero-width test every member implies, so
one failed test skips the whole family: the regex engine tries every alternative at every position
(~10 ns each), and these guards keep a scan of a short string in the low microseconds."""

# Priority order: at one position the first family/rule that matches wins, anywhere-families first.
# Rules whose regex only finds candidates (VALIDATED) come last, so when one is rejected only a few
# rules remain to try that position. Rule names double as group names; inner groups carry the rule's
# name as prefix.

# Families whose rules may start anywhere, even inside a word. Tried first at every position.
_ANYWHERE: tuple[Family, ...] = (
    ("(?=-)", (
        # PEM private key blocks; a block cut by truncation is removed to the end of the text.
        ("pem", r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
        # --password hunter2, --api-key=XYZ, -token abc (a value may not look like another flag).
        ("flag", r"(?<![\w-])(?P<flag_key>--?[\w.-]*{SENS}[\w.-]*)(?P<flag_sep>=|[ \t]+)"
                 r"(?P<flag_val>" + _SCHEME_WORD + r"[ \t]+\S+|(?!-)" + _QUOTED_OR_BARE + ")"),
    )),
    ("(?=[/\\\\~]|[A-Za-z]:)", (
        # (the environment-specific "curhome" rule is inserted first here)
        ("homedir", r"(?P<homedir_prefix>(?:[A-Za-z]:)?(?:\\{1,2}|/)"
                    r"(?:(?i:users)|home|Documents and Settings)(?:\\{1,2}|/))"
                    r"(?P<homedir_user>[^\\/\s:*?\"'<>|]+)"),
        ("tilde", r"(?<![\w~])~(?P<tilde_user>[A-Za-z_][\w.-]*)"),
    )),
)

# Families whose rules start a word (the character before is not a letter or digit); tried after the
# ones above, behind one shared test, so the middle of a word costs almost nothing.
_WORD_START: tuple[Family, ...] = (
    ("(?=[A-Za-z])", (
        ("slack_hook", r"(?<![+.-])(?i:https?://hooks\.slack\.com/)[^\s\"'<>`]*"),
        # Any scheme://... URL: credentials, query and fragment dropped; host and path redacted in turn.
        ("url", r"(?<![+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>`]*"),
        # Vendor tokens with a recognisable prefix, and JWTs.
        ("token", r"(?<!_)(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
                  r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16,}"
                  r"|xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}|glpat-[A-Za-z0-9_-]{20,}"
                  r"|npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_-]{40,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
                  r"|sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,}"
                  r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*)"),
        # AWS-style host names that embed a private address: ip-10-0-1-23.ec2.internal
        ("ipdash", r"(?<![_-])ip-(?:\d{1,3}-){3}\d{1,3}(?![\w-])"),
    )),
    ("(?<![._%+-])(?=[A-Za-z0-9._%+-])", (
        ("email", r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}"),
    )),
    # The user name of a connection string: User ID=jdoe;Password=... / user=jdoe password=...
    ("(?<![\\w.-])(?=[UuLl])", (
        ("userkv", r"(?P<userkv_key>(?i:user(?:[ _-]?(?:id|name))?|login))(?P<userkv_sep>[ \t]*=[ \t]*)"
                   r"(?P<userkv_val>\"[^\"\n]*\"?|'[^'\n]*'?|[^\s;,\"'`&]+)"),
    )),
    # password=x, "api_key": "x", Authorization: Bearer x. The lookahead (':' or '=' after the word,
    # scanned once: the backreference makes it atomic) fails fast on ordinary words.
    ("(?<![_.-])(?=[\"'\\w.-])", (
        ("kv", r"(?=[\"']?(?=(?P<kv_word>[\w.-]*))(?P=kv_word)[\"']?[ \t]*[:=])"
               r"(?P<kv_key>[\"']?[\w.-]*{SENS}[\w.-]*[\"']?)(?P<kv_sep>[ \t]*[:=][ \t]*)"
               r"(?P<kv_val>(?:" + _SCHEME_WORD + r"[ \t]+)?" + _QUOTED_OR_BARE + ")"),
    )),
    ("(?=[0-9A-Fa-f])", (
        ("uuid", rf"(?<!-){_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}(?![0-9A-Fa-f-])"),
        ("mac", rf"(?<![_:-]){_H}{{2}}(?P<mac_sep>[:-]){_H}{{2}}(?:(?P=mac_sep){_H}{{2}}){{4}}(?![\w:-])"),
    )),
    ("(?<!\\.)(?=[0-9])", (
        ("ipv4", rf"{_IPV4}(?:/\d{{1,2}})?(?![A-Za-z0-9]|\.\d)"),
    )),
    # (the environment-specific "curuser" family goes here)
    # -- validated rules, last: when one rejects its candidate only these remain to try the position --
    ("(?=[A-Z]{2}[0-9])", (
        # Validated: an IBAN (country, check digits, up to 30 letters or digits, spaced in fours or not),
        # checked by iban_ok (length and the ISO 7064 mod-97 check digits).
        ("iban", r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"),
    )),
    ("(?=[0-9+(])", (
        # Validated: 13-19 digits with a card-network prefix, checked by luhn_ok. (Not inside a word:
        # "x4111..." is left to the generic rule.)
        ("card", r"(?<![\d.-])(?:4|5[1-5]|2[2-7]|3\d|6)(?:[ -]?\d){11,18}(?!\d|[.-]\d)"),
        # Validated by digit count: international +CC, US (555) 123-4567 / 555-123-4567, trunk-prefix
        # national forms (020 7946 0958). Versions, dates, times and ports do not fit.
        ("phone", r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]\d{1,10}){1,6}(?!\d)"
                  r"|(?<![\w+])\+\d{7,15}(?!\d)"
                  r"|(?<![\w.+-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[.-])\d{3}[.-]\d{4}(?![\w]|[.-]\d)"
                  r"|(?<![\w.+-])0\d{1,4}[ /-]\d{3,4}[ -]?\d{3,5}(?![\w]|[.-]\d)"),
    )),
    ("(?=[BbTtDd])", (
        # Validated: a value, not a word ("Basic authentication").
        ("bearer", r"(?P<bearer_scheme>" + _SCHEME_WORD + r")[ \t]+(?P<bearer_val>[A-Za-z0-9._~+/=-]{8,})"),
    )),
    ("(?<![_:.])(?=[0-9A-Fa-f:])", (
        # Validated: valid_ipv6 wants '::' or exactly eight groups.
        ("ipv6", rf"(?:{_H}{{0,4}}:){{2,7}}(?:{_IPV4}|{_H}{{1,4}})?(?:%[\w.-]+)?(?![\w:]|\.\d)"),
    )),
    ("(?<![+/_=-])", (
        # Validated: looks_random decides (or 32+ hex digits).
        ("generic", r"[A-Za-z0-9+/_=-]{24,}"),
    )),
)

VALIDATED = frozenset({"iban", "card", "phone", "bearer", "ipv6", "generic"})
"""Rules whose regex only finds candidates; a rejected one lets the rules after it try the position."""

WORD_START_GUARD = "(?<![A-Za-z0-9])"
ANYWHERE_GUARD = "(?=[-/\\\\~]|[A-Za-z]:)"
"""Implied by every guard in ``_ANYWHERE`` (curhome included: home directories are absolute paths)."""


def _escape(text: str) -> str:
    """``re.escape`` without importing ``re``."""
    return "".join(c if c.isalnum() or c == "_" else "\\" + c for c in text)


def _current_user(environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The current user's names (at least 3 chars, not generic) and absolute home directories."""
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


def host_names() -> list[str]:
    """This machine's name (full and first label), when distinctive enough to hide without eating words.

    From ``os.uname()`` (``socket`` costs an import). Kept only when 6+ chars or containing a dot, dash or
    digit, so a host called ``build`` does not turn the command ``build`` into ``<host>``.
    """
    try:
        node = os.uname().nodename.strip()
    except (AttributeError, OSError):
        node = os.environ.get("COMPUTERNAME", "").strip()
    out: list[str] = []
    for name in (node, node.split(".")[0]):
        distinctive = len(name) >= 6 or any(c in name for c in ".-0123456789")
        if len(name) >= 3 and distinctive and name.lower() not in ("localhost", "localhost.localdomain") \
                and name not in out:
            out.append(name)
    return out


def user_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The current user's names and this host's names, hidden wherever they appear; lower-cased."""
    names = _current_user(os.environ if environ is None else environ)[0] + host_names()
    return tuple(n.lower() for n in names)


def rule_families(environ: Mapping[str, str] | None = None) -> tuple[list[Family], list[Family]]:
    """(anywhere, word-start) rule families in priority order, with this user's home and names added.

    The combined regex is ``ANYWHERE_GUARD (?: anywhere families ) | WORD_START_GUARD (?: word-start
    families )``.
    """
    names, homes = _current_user(os.environ if environ is None else environ)
    sens = sensitive_key_source()

    def expand(families: tuple[Family, ...]) -> list[Family]:
        return [(g, tuple((n, src.replace("{SENS}", sens)) for n, src in rules)) for g, rules in families]

    anywhere, word_start = expand(_ANYWHERE), expand(_WORD_START)
    if homes:
        forms: list[str] = []
        for home in homes:
            variants = {home, home.replace("\\", "/"), home.replace("\\", "\\\\")}
            for v in sorted(variants, key=len, reverse=True):
                forms.append(f"(?i:{_escape(v)})" if ("\\" in v or ":" in v) else _escape(v))
        src = "(?:" + "|".join(forms) + ")" + r"(?=[/\\\s\"'`:;,)\]}>]|\Z)"
        i = next(i for i, (_, rules) in enumerate(anywhere) if rules[0][0] == "homedir")
        guard, rules = anywhere[i]
        anywhere[i] = (guard, (("curhome", src), *rules))
    if names:
        alts = "|".join(f"(?i:{_escape(n)})" for n in sorted(names, key=len, reverse=True))
        i = next(i for i, (_, rules) in enumerate(word_start) if rules[0][0] == "iban")
        word_start.insert(i, ("", (("curuser", f"(?:{alts})(?![A-Za-z0-9])"),)))
    hosts = host_names()
    if hosts:
        alts = "|".join(f"(?i:{_escape(n)})" for n in sorted(hosts, key=len, reverse=True))
        i = next(i for i, (_, rules) in enumerate(word_start) if rules[0][0] == "iban")
        word_start.insert(i, ("", (("curhost", f"(?:{alts})(?![A-Za-z0-9-])"),)))
    return anywhere, word_start


_NO_DIGITS = str.maketrans("", "", "0123456789")
_NO_DIGITS_OR_SPECIALS = str.maketrans("", "", "0123456789@:/\\~=+")
_SPECIALS = "@:/\\~=+"
_AWS_PREFIXES = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA")


def is_plain(text: str, names: tuple[str, ...] | None = None) -> bool:
    """True only when no built-in rule can change ``text``: a proof from plain string methods.

    It holds when the text has none of ``@ : / \\ ~ = +`` (e-mail, URL, key=value, IPv6, MAC, paths,
    home dirs, international phones), at most 3 ASCII digits (an IPv4 address needs 4, phones 8,
    cards 13), no word over 23 chars (generic secrets and most tokens need 24), no 17-23 char word with
    an AWS key prefix, ``sk-`` or a dashed MAC's five dashes, none of the sensitive keywords (flags,
    bearer values, PEM, Slack, JWT), and none of the user's ``names`` (lower case; from the environment
    when None). Extra patterns are not considered: callers that configure some must not rely on it.
    The rules are compiled ASCII-only, so non-ASCII digits and letters change nothing.
    """
    removed = len(text) - len(text.translate(_NO_DIGITS_OR_SPECIALS))  # one C pass for both
    if removed and (removed > 3 or any(c in text for c in _SPECIALS)):
        return False
    if len(text) > 16:
        for word in text.split():
            n = len(word)
            if n > 23:
                return False
            if n >= 17 and (("-" in word and (word.count("-") >= 5 or "sk-" in word))
                            or ("A" in word and any(p in word for p in _AWS_PREFIXES))):
                return False
    low = text.lower()
    for k in _KEYWORDS:
        if k in low:
            return False
    names = user_names() if names is None else names
    return not names or all(name not in low for name in names)


# -- checks a regex cannot express --------------------------------------------------------------------

def iban_ok(text: str) -> bool:
    """An IBAN: 15 to 34 characters (spaces aside) whose check digits hold (ISO 7064 mod 97-10)."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def luhn_ok(digits: str) -> bool:
    """Luhn checksum over the ASCII digits of ``digits`` (other characters are ignored)."""
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

    The unspecified address ``::`` alone is not treated as one (it is also C++ and Rust syntax).
    """
    addr = candidate.partition("%")[0]
    if "." in addr:  # an embedded IPv4 address (checked by the regex) stands for two groups
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
    import math  # here, not at the top: a CLI's import of the package never needs it (~0.2 ms)
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

    Tuned on random tokens against identifiers, paths, branch and package names (tests/privacy pin it):
    a hex run of 32+ chars with digits and letters is a key or digest; otherwise the run needs a 12+
    char alphanumeric core, must look unpronounceable (five consonants in a row, which English
    identifiers almost never have, or four letter<->digit switches) and carry at least
    0.7 * log2(min(len, 64)) bits/char. About 98% of random 24-char alphanumeric tokens and over 99% of
    40-char ones are caught; CamelCase, snake_case and kebab-case names, dates and versions are kept.
    """
    n = len(text)
    if n < 24:
        return False
    core, consonants, switches = _checks()
    if core.search(text) is None:
        return False
    if _HEX.issuperset(text):
        return n >= 32 and 0 < digit_count(text) < n
    if consonants.search(text) is None and len(switches.findall(text)) < 4:
        return False
    import math

    return shannon_entropy(text) >= 0.7 * math.log2(min(n, 64))


def bearer_value_ok(value: str) -> bool:
    """An authorization value rather than a word ("Basic authentication"): a digit, base64
    punctuation or two capitals after the first letter."""
    if any(c.isdigit() or c in "+/=" for c in value):
        return True
    return sum(1 for c in value[1:] if c.isupper()) >= 2
