"""The redaction engine: corpus coverage, fast paths, validators, limits and hostile inputs."""

from __future__ import annotations

import math
import os
import random
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_expansion.privacy import patterns as P
from otel_expansion.privacy.redaction import ID_KEYS, REDACTED, Redactor, default_redactor
from tests.conftest import temp_environ
from tests.privacy.pii_corpus import CLEAN_CASES, PII_CASES, PiiCase

ROOT = Path(__file__).resolve().parents[2]
USER_VARS = ("USER", "USERNAME", "LOGNAME", "HOME", "USERPROFILE")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A known current user (zorblatt, /home/zorblatt) so results do not depend on who runs the tests."""
    for var in USER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("USER", "zorblatt")
    monkeypatch.setenv("HOME", "/home/zorblatt")
    yield monkeypatch


@pytest.fixture
def r(env: pytest.MonkeyPatch) -> Redactor:
    return Redactor()


def _case_id(case: PiiCase) -> str:
    return f"{case.category}-{PII_CASES.index(case)}"


# -- the corpus -----------------------------------------------------------------------------------------

class TestCorpus:
    def test_corpus_is_large_and_well_formed(self) -> None:
        """At least 120 PII cases over every category and 40 clean cases; each secret is in its text."""
        assert len(PII_CASES) >= 120 and len(CLEAN_CASES) >= 40
        assert {c.category for c in PII_CASES} >= {
            "email", "ipv4", "ipv6", "path", "url", "github", "aws", "slack", "jwt", "bearer", "pem",
            "generic", "kv", "flag", "card", "phone",
        }
        for case in PII_CASES:
            assert case.secret in case.text and len(case.secret) >= 6, case

    @pytest.mark.parametrize("case", PII_CASES, ids=_case_id)
    def test_secret_does_not_survive(self, r: Redactor, case: PiiCase) -> None:
        """The secret is gone from redact(), value() and attributes() output alike."""
        out = r.redact(case.text)
        assert case.secret not in out, out
        assert case.secret not in str(r.value(case.text))
        assert case.secret not in str(r.attributes({"message": case.text}))
        assert case.secret not in str(r.value([case.text, "x"]))

    @pytest.mark.parametrize("case", PII_CASES, ids=_case_id)
    def test_redaction_is_idempotent(self, r: Redactor, case: PiiCase) -> None:
        """Redacting a redacted string changes nothing (placeholders are never re-matched)."""
        once = r.redact(case.text)
        assert r.redact(once) == once

    @pytest.mark.parametrize("text", CLEAN_CASES)
    def test_clean_text_is_unchanged(self, r: Redactor, text: str) -> None:
        """Command names, versions, dates, ports, error types and relative paths pass untouched."""
        assert r.redact(text) == text
        assert r._redact_uncached(text) == text  # the full scan agrees with the fast path

    def test_placeholders_are_typed(self, r: Redactor) -> None:
        """Each kind of data leaves its own placeholder, so the redacted text stays useful."""
        assert r.redact("mail ann.b@example.com") == "mail <email>"
        assert r.redact("from 203.0.113.9:22") == "from <ip>:22"
        assert r.redact("ping ::1") == "ping <ip>"
        assert r.redact("fe80::1%eth0 up") == "<ip> up"
        assert r.redact("/home/alice/x.py") == "/home/<user>/x.py"
        assert r.redact("~bob/notes") == "~<user>/notes"
        assert r.redact("card 4111 1111 1111 1111") == "card <card>"
        assert r.redact("call 555-201-3344") == "call <phone>"
        assert r.redact("password=x1") == "password=<secret>"
        assert r.redact("Authorization: Bearer abc123def456") == "Authorization: <secret>"
        assert r.redact("use Bearer abc123def456") == "use Bearer <token>"
        assert r.redact("ghp_" + "a1B2" * 9) == "<token>"
        assert r.redact("https://u:p@example.com/a/b?q=1#f") == "https://example.com/a/b"
        assert r.redact("ether 3c:22:fb:9a:41:7e") == "ether <mac>"


# -- the current user ----------------------------------------------------------------------------------

class TestCurrentUser:
    def test_own_name_and_home_are_hidden_everywhere(self, r: Redactor) -> None:
        """$USER anywhere becomes <user>; $HOME becomes ~ (so every user's paths aggregate)."""
        assert r.redact("run by zorblatt today") == "run by <user> today"
        assert r.redact("Zorblatt_backup") == "<user>_backup"
        assert r.redact("/home/zorblatt/proj/app.py") == "~/proj/app.py"
        assert r.redact("/home/zorblattx/proj") == "/home/<user>/proj"

    def test_generic_and_short_names_are_not_hidden(self, env: pytest.MonkeyPatch) -> None:
        """CI account names and names under 3 chars would destroy ordinary words: they are ignored."""
        env.setenv("USER", "runner")
        env.setenv("USERNAME", "al")
        r = Redactor()
        assert r.redact("runner started; al said hi") == "runner started; al said hi"

    def test_windows_profile(self, env: pytest.MonkeyPatch) -> None:
        """USERPROFILE is matched case-insensitively in every slash style."""
        env.setenv("USERPROFILE", r"C:\Users\Quenby")
        r = Redactor()
        assert r.redact(r"c:\users\quenby\x.txt") == r"~\x.txt"
        assert r.redact("C:/Users/Quenby/x.txt") == "~/x.txt"


# -- fast paths ----------------------------------------------------------------------------------------

_CHUNKS = [
    "a", "Z", "q", "deploy", " ", "  ", "-", "--", "_", ".", "0", "1", "9", "42", "255", "4111", "@", ":",
    "::", "/", "\\", "~", "=", "+", "(", ")", "'", '"', ",", "\t", "\n", "AKIA", "ghp_", "sk-", "xoxb-",
    "eyJ", "pwd", "token", "Bearer", "basic ", "home", "/home/", "Users", "C:", "ip-", "ab-cd-ef-",
    "zorblatt", "é", "٣", "ABCDEFGHIJKLMNOP", "abcdefghijklmnopqrstuvwx", "0123456789abcdef", "x" * 17,
]


class TestFastPaths:
    @settings(max_examples=1500, deadline=None)
    @given(st.lists(st.sampled_from(_CHUNKS), max_size=14).map("".join))
    def test_is_plain_is_a_proof(self, text: str) -> None:
        """Whenever is_plain() says a string is clean, the full scan indeed changes nothing."""
        r = _fixed_user_redactor()
        if P.is_plain(text, r._names):
            assert r._apply(text) == text

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=60))
    def test_is_plain_is_a_proof_on_any_text(self, text: str) -> None:
        """The same property over arbitrary Unicode."""
        r = _fixed_user_redactor()
        if P.is_plain(text, r._names):
            assert r._apply(text) == text

    def test_common_strings_take_the_fast_path(self) -> None:
        """Command names, error types and prose are proved clean without any regex."""
        for text in ("deploy", "remote add", "ConnectionRefusedError", "mypkg.errors.Error", "1.2.3",
                     "Could not find the requested resource in the configured project list"):
            assert P.is_plain(text, ()), text
        for text in ("a@b", "x:y", "10.0.0.1", "token", "AKIAABCDEFGHIJKLMNOP", "aa-bb-cc-dd-ee-ff", "alice"):
            assert not P.is_plain(text, ("alice",)), text

    def test_is_plain_reads_the_user_from_the_environment(self, env: pytest.MonkeyPatch) -> None:
        """Without explicit names, is_plain() looks up $USER itself (for callers without a Redactor)."""
        assert not P.is_plain("build by Zorblatt")
        env.delenv("USER")
        assert P.is_plain("build by Zorblatt")

    def test_cache_is_bounded_and_used(self, env: pytest.MonkeyPatch) -> None:
        """The memo cache never exceeds its size; long strings are not memoised; size 0 disables it."""
        r = Redactor(cache_size=8)
        for i in range(100):
            r.redact(f"user{i}@example.com")
            assert r.cache_info()[0] <= 8
        assert r.redact("user99@example.com") == "<email>"
        r.redact("x@example.com " * 40)
        assert "x@example.com " * 40 not in r._cache
        off = Redactor(cache_size=0)
        assert off.redact("a@example.com") == "<email>" and off.cache_info() == (0, 0)

    def test_import_is_cheap_and_lazy(self) -> None:
        """Importing the modules compiles nothing and loads neither hmac nor hashlib; hashing loads them."""
        code = (
            "import sys, re\n"
            "compiled = []\n"
            "orig = re.compile\n"
            "re.compile = lambda *a, **k: compiled.append(a) or orig(*a, **k)\n"
            "import otel_expansion.privacy.redaction as m\n"
            "assert not compiled, compiled\n"
            "assert 'hmac' not in sys.modules and 'hashlib' not in sys.modules\n"
            "r = m.Redactor(hash_salt='s')\n"
            "assert compiled\n"
            "assert 'hmac' not in sys.modules\n"
            "r.identifier('x')\n"
            "assert 'hmac' in sys.modules\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr


def _fixed_user_redactor() -> Redactor:
    """A redactor for the fixed test user, built once (hypothesis runs outside function fixtures)."""
    global _FIXED
    if _FIXED is None:
        with temp_environ(remove=tuple(USER_VARS), USER="zorblatt", HOME="/home/zorblatt"):
            _FIXED = Redactor(cache_size=0)
    return _FIXED


_FIXED: Redactor | None = None


# -- validators ----------------------------------------------------------------------------------------

class TestValidators:
    def test_luhn(self) -> None:
        """Luhn accepts the standard test numbers and rejects a one-digit change."""
        for good in ("4111111111111111", "5555 5555 5555 4444", "378282246310005", "6011-1111-1111-1117"):
            assert P.luhn_ok(good), good
        for bad in ("4111111111111112", "5555555555554445", "378282246310006", ""):
            assert not P.luhn_ok(bad), bad

    def test_only_luhn_valid_card_numbers_are_redacted(self, r: Redactor) -> None:
        """A 16-digit number failing Luhn, ids and epoch-millisecond timestamps are not cards."""
        assert r.redact("card 4111 1111 1111 1111") == "card <card>"
        assert r.redact("card 4111 1111 1111 1112") == "card 4111 1111 1111 1112"
        assert r.redact("order 4111111111111112") == "order 4111111111111112"
        assert r.redact("ts 1700000000000") == "ts 1700000000000"
        assert r.redact("20240115103000123") == "20240115103000123"

    def test_ibans_with_valid_check_digits_are_redacted(self, r: Redactor) -> None:
        """Compact or spaced in fours, in any country's length; a failing check, or a shorter code with
        letters and digits (a build tag), is left alone."""
        for good in ("DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32",
                     "FR1420041010050500013M02606", "NL91ABNA0417164300"):
            assert P.iban_ok(good), good
            assert r.redact(f"pay to {good} today") == "pay to <iban> today", good
        for bad in ("DE89370400440532013001", "GB82 WEST 1234 5698 7654 33"):
            assert not P.iban_ok(bad), bad
            assert "<iban>" not in r.redact(bad)
        assert r.redact("release AB12 CD34") == "release AB12 CD34"

    def test_rejected_candidate_lets_later_rules_try(self, r: Redactor) -> None:
        """A Luhn-failing card candidate is still checked as a phone number at the same position."""
        assert r.redact("555-201-3344 1234") == "<phone> 1234"
        assert r.redact("10:30:1.2.3.4 x") == "10:30:<ip> x"

    def test_ipv6_validation(self) -> None:
        """Compressed, full, zoned and IPv4-mapped forms are addresses; times and '::' alone are not."""
        for good in ("::1", "fe80::1%eth0", "2001:db8::", "1:2:3:4:5:6:7:8", "::ffff:10.0.0.1", "a::b"):
            assert P.valid_ipv6(good), good
        for bad in ("::", "10:30:00", "1:2:3:4:5:6:7", "1::2::3", "12345::1", "1:2:3:4:5:6:7:8:9"):
            assert not P.valid_ipv6(bad), bad

    def test_numbers_that_are_not_phones(self, r: Redactor) -> None:
        """Versions, dates, times, ports, timezone offsets and small numbers are kept."""
        for text in ("v10.15.7", "2024-01-15 10:30:00+05:30", "port 65535", "+0530", "build 20240115",
                     "kernel 6.5.0-1025-azure", "retry 3/10", "1.2.3.4.5"):
            assert r.redact(text) == text, text

    def test_looks_random_separates_tokens_from_names(self) -> None:
        """>=95% of random 32+ char tokens are secrets; realistic identifiers and paths never are."""
        rng = random.Random(7)
        for alphabet in (string.ascii_letters + string.digits, string.ascii_letters + string.digits + "+/",
                         string.ascii_lowercase + string.digits, string.hexdigits[:16]):
            for n in (32, 40, 64):
                tokens = ["".join(rng.choice(alphabet) for _ in range(n)) for _ in range(300)]
                hits = sum(P.looks_random(t) for t in tokens)
                assert hits >= 285, (alphabet, n, hits)
        benign = [
            "test_should_handle_missing_config_file", "ThisIsAVeryLongClassNameForTesting",
            "AbstractSingletonProxyFactoryBean", "opentelemetry-exporter-otlp-proto-http",
            "/usr/local/lib/python3/site-packages", "release/2024-01-15/hotfix-login-page",
            "kube-system/coredns-5d78c9869d-abcde", "x86_64-unknown-linux-gnu/release/build",
            "HTTP_REQUEST_DURATION_SECONDS_BUCKET", "TheQuickBrownFoxJumpsOverTheLazyDog42",
            "ubuntu-22-04-jammy-amd64-server-20240101", "UserProfileSettingsViewController2",
            "node-v20-11-0-linux-x64-tar-gz", "Win64OpenSSL_Light-3_1_4-extra-files",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ]
        for name in benign:
            assert not P.looks_random(name), name

    def test_entropy(self) -> None:
        """Shannon entropy: 0 for one repeated char, log2(n) for n distinct chars."""
        assert P.shannon_entropy("aaaa") == 0.0
        assert math.isclose(P.shannon_entropy("abcd"), 2.0)
        assert P.shannon_entropy("") == 0.0

    def test_sensitive_key_words(self, r: Redactor) -> None:
        """Secret-named keys are caught; author, max_tokens and token counts are ordinary words."""
        assert r.redact("Authorization: xyz") == "Authorization: <secret>"
        assert r.redact("oauth_token=abc") == "oauth_token=<secret>"
        for text in ("author=bob", "authority: ca", "max_tokens=100", "token_count=3", "tokenizer=bpe"):
            assert r.redact(text) == text, text


# -- configuration: allow list, extra patterns, hashing ----------------------------------------------------

class TestConfiguration:
    def test_allow_list_exact_and_regex(self, env: pytest.MonkeyPatch) -> None:
        """Allowed strings pass untouched, whole or as one match; the rest of the text is still redacted."""
        r = Redactor(allow=["support@example.com", "re:10\\.0\\.0\\.\\d+", "token=public-demo"])
        assert r.redact("support@example.com") == "support@example.com"
        out = r.redact("mail support@example.com or bob@example.com")
        assert out == "mail support@example.com or <email>"
        assert r.redact("hosts 10.0.0.7 and 10.1.0.7") == "hosts 10.0.0.7 and <ip>"
        assert r.redact("token=public-demo") == "token=public-demo"
        assert r.redact("token=private-one") == "token=<secret>"

    def test_allow_list_does_not_unmask_neighbours(self, env: pytest.MonkeyPatch) -> None:
        """Allowing a domain does not expose the address that contains it."""
        r = Redactor(allow=["example.com"])
        assert r.redact("bob@example.com") == "<email>"

    def test_extra_patterns(self, env: pytest.MonkeyPatch) -> None:
        """Extra regexes become <redacted>; invalid ones are ignored; empty matches insert nothing."""
        r = Redactor(extra_patterns=[r"ACME-\d{6}", "(unclosed", r"q*"], allow=["ACME-000000"])
        assert r.redact("customer ACME-123456 at a@example.com") == f"customer {REDACTED} at <email>"
        assert r.redact("customer ACME-000000") == "customer ACME-000000"
        assert r.redact("plain words") == "plain words"

    def test_config_given_as_a_single_string(self, env: pytest.MonkeyPatch) -> None:
        """A lone string is one pattern, not a sequence of one-character patterns."""
        r = Redactor(extra_patterns="ACME-\\d+", allow="keep@example.com")  # type: ignore[arg-type]
        assert r.redact("ACME-1 keep@example.com a") == f"{REDACTED} keep@example.com a"

    def test_salted_identifier_is_stable_and_salt_dependent(self, env: pytest.MonkeyPatch) -> None:
        """Same salt, same 16-hex pseudonym (across instances); another salt, another pseudonym."""
        a, b, c = Redactor(hash_salt="s1"), Redactor(hash_salt="s1"), Redactor(hash_salt="s2")
        ida = a.identifier("alice@example.com")
        assert ida == b.identifier("alice@example.com")
        assert ida != c.identifier("alice@example.com")
        assert ida != a.identifier("bob@example.com")
        assert len(ida) == 16 and set(ida) <= set("0123456789abcdef")
        assert len(a.identifier("\ud800 lone surrogate")) == 16

    def test_identifier_without_salt_is_redacted(self, r: Redactor) -> None:
        """Without a salt, identifiers are redacted like any text, never passed raw."""
        assert r.identifier("alice@example.com") == "<email>"
        assert r.identifier("plan-pro") == "plan-pro"

    def test_bad_limits_fall_back(self, env: pytest.MonkeyPatch) -> None:
        """Nonsense limits do not raise; lengths are floored at 64 so placeholders always fit."""
        r = Redactor(max_length="lots", cache_size=None)  # type: ignore[arg-type]
        assert r.max_length == 1024 and r.cache_size == 4096
        assert Redactor(max_length=3, cache_size=-5).cache_info() == (0, 0)
        assert Redactor(max_length=3).max_length == 64

    def test_default_redactor_is_a_singleton(self) -> None:
        """default_redactor() builds once per process."""
        assert default_redactor() is default_redactor()


# -- argument shapes ---------------------------------------------------------------------------------------

class TestArgvShape:
    def test_flag_names_only(self, r: Redactor) -> None:
        """--token=abc -> --token, -p 1 -> -p, positionals and everything after -- are dropped."""
        argv = ["prog", "deploy", "--token=abc", "-p", "1", "positional", "--verbose", "--", "--after"]
        assert r.argv_shape(argv) == ("--token", "-p", "--verbose")

    def test_values_never_survive(self, r: Redactor) -> None:
        """Attached short values, negative numbers, odd and secret-looking flag names are not kept."""
        shape = r.argv_shape(["-psecret", "-5", "-", "--bob@example.com", "--ghp_" + "a1B2" * 9, "--ok-flag",
                              "--na me", 3, None, "--"])  # type: ignore[list-item]
        assert shape == ("-p", "--ok-flag")
        assert "secret" not in "".join(shape)

    def test_each_flag_once(self, r: Redactor) -> None:
        """A flag repeated (32 times, or `-v -v`) is named once, in order of first use."""
        assert r.argv_shape(["--flag"] * 32 + ["-v", "--x=1", "-v", "--flag", "-vvv"]) == ("--flag", "-v", "--x")

    def test_bounded(self, r: Redactor) -> None:
        """A huge argv yields at most 64 flags."""
        assert len(r.argv_shape([f"--f{i}" for i in range(10_000)])) == 64
        assert r.argv_shape(iter(["--a", "--b"])) == ("--a", "--b")  # type: ignore[arg-type]


# -- values and attributes -----------------------------------------------------------------------------------

class _Boom:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class _Leaky:
    def __repr__(self) -> str:
        return "Config(owner='carla@example.com', token_value='ghp_" + "Zz9" * 12 + "')"


class _HostileStr(str):
    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class _BadMapping:
    def items(self) -> object:
        raise RuntimeError("no items")


class TestValue:
    def test_scalars(self, r: Redactor) -> None:
        """bool/int/float stay themselves, None means drop, bytes become a length marker."""
        assert r.value(True) is True and r.value(3) == 3 and r.value(2.5) == 2.5
        assert r.value(None) is None
        assert r.value(b"\x00\x01secret") == "<binary len=8>"
        assert r.value(bytearray(5)) == "<binary len=5>"
        assert r.value(memoryview(b"abcd")) == "<binary len=4>"
        assert math.isnan(r.value(float("nan")))  # type: ignore[arg-type]

    def test_card_numbers_given_as_ints(self, r: Redactor) -> None:
        """An int that is a valid card number is redacted like the same digits in text."""
        assert r.value(4111111111111111) == "<card>"
        assert r.value(4111111111111112) == 4111111111111112
        assert r.value(10**30) == str(10**30)
        assert r.value(10**5000) == REDACTED  # more digits than int->str allows: no exception

    def test_sequences_are_homogeneous_and_bounded(self, r: Redactor) -> None:
        """Lists keep one element type (mixed become strings), at most 32 items, each redacted."""
        assert r.value([1, 2, 3]) == (1, 2, 3)
        assert r.value([True, False]) == (True, False)
        assert r.value([1, 2.5]) == (1.0, 2.5)
        assert r.value(["a", 1, None]) == ("a", "1")
        assert r.value(("x@example.com", "ok")) == ("<email>", "ok")
        assert len(r.value(list(range(1000)))) == 32  # type: ignore[arg-type]
        assert r.value(frozenset({"b"})) == ("b",)
        assert r.value({"zeta", "alpha", "mid"}) == ("alpha", "mid", "zeta")
        assert r.value([]) == ()

    def test_hostile_inputs_never_raise(self, r: Redactor) -> None:
        """Huge, binary, deep, recursive and self-sabotaging objects all yield a bounded value."""
        huge = "x" * 1_000_000 + " a@example.com"
        out = r.value(huge)
        assert isinstance(out, str) and len(out) <= r.max_length + len(P.TRUNCATED)
        deep: list[object] = []
        cur = deep
        for _ in range(100_000):
            nxt: list[object] = []
            cur.append(nxt)
            cur = nxt
        loop: list[object] = [1]
        loop.append(loop)
        selfdict: dict[str, object] = {"k": "v"}
        selfdict["me"] = selfdict
        hostiles = (deep, loop, selfdict, _Boom(), [_Boom()], {"a": _Boom()}, _HostileStr("abc"),
                    [_HostileStr("x")], object(), type, (i for i in range(3)), {"nested": {"x": [1, {2}]}})
        for hostile in hostiles:
            v = r.value(hostile)
            assert v is None or isinstance(v, (str, bool, int, float, tuple)), hostile
            assert len(str(v)) <= r.max_length + len(P.TRUNCATED)
        assert r.redact(_HostileStr("a@example.com")) == "<email>"
        assert r.redact(_Boom()) == "<_Boom>"  # type: ignore[arg-type]

    def test_object_reprs_are_redacted(self, r: Redactor) -> None:
        """A nested dict or object becomes its bounded repr, redacted."""
        out = r.value({"user": "dina@example.com", "n": [1, 2]})
        assert out == "{'user': '<email>', 'n': [1, 2]}"
        leaky = r.value(_Leaky())
        assert isinstance(leaky, str) and "carla" not in leaky and "Zz9Zz9" not in leaky

    def test_truncation_never_leaves_a_fragment(self, r: Redactor) -> None:
        """A token or spaced card cut by the length limit is dropped whole, and a marker is added."""
        token = "ghp_" + "Qw3" * 12
        for pad in range(r.max_length - 40, r.max_length + 5):
            out = r.redact("a " * (pad // 2) + token + " tail")
            assert "Qw3Qw3" not in out and len(out) <= r.max_length + len(P.TRUNCATED)
        card = "4111 1111 1111 1111"
        for pad in range(r.max_length - 20, r.max_length):
            out = r.redact("b" * pad + " " + card)
            assert "1111 1111" not in out, out

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=3000))
    def test_redact_never_raises_and_is_bounded(self, text: str) -> None:
        """Any Unicode (lone surrogates, controls, huge) gives a str of bounded length."""
        r = _fixed_user_redactor()
        out = r.redact(text)
        assert isinstance(out, str) and len(out) <= r.max_length + len(P.TRUNCATED)


class TestAttributes:
    def test_limits(self, r: Redactor) -> None:
        """At most max_count entries; None values dropped; long keys cut to 128 chars."""
        attrs = {f"k{i}": i for i in range(100)}
        assert len(r.attributes(attrs, max_count=10)) == 10
        assert r.attributes({"a": None, "b": 1}) == {"b": 1}
        out = r.attributes({"k" * 500: "v"})
        assert list(out) == ["k" * 128]
        assert r.attributes(None) == {}

    def test_secret_named_keys(self, r: Redactor) -> None:
        """Values of password/token/api_key keys become <secret>, except booleans."""
        out = r.attributes({"db.password": "hunter2", "api_key": 12345, "auth.enabled": True, "n": 3})
        assert out == {"db.password": "<secret>", "api_key": "<secret>", "auth.enabled": True, "n": 3}

    def test_names_from_the_code_are_redacted_a_part_at_a_time(self, r: Redactor) -> None:
        """A command ``auth:login`` (heroku-style) and a signature through a module ``myapp.auth`` keep their
        names: a part before a colon is not a secret's key; every rule still applies within a part."""
        out = r.attributes({"cli.command.name": "auth:login", "cli.error.signature": "__main__:main > myapp.auth:login",
                            "note": "auth:login"})
        assert out == {"cli.command.name": "auth:login", "cli.error.signature": "__main__:main > myapp.auth:login",
                       "note": "auth:<secret>"}  # free text still reads it as a key and its value
        assert r.name("token:refresh") == "token:refresh"
        assert r.name("sync:jane@example.com") == "sync:<email>"

    def test_our_ids_are_kept(self, r: Redactor) -> None:
        """Random hex ids under our id keys survive (they look like secrets); anything else there does not."""
        hexid = "0123456789abcdef0123456789abcdef"
        assert "session.id" in ID_KEYS
        assert r.attributes({"session.id": hexid}) == {"session.id": hexid}
        assert r.attributes({"other.id": hexid}) == {"other.id": "<secret>"}
        assert r.attributes({"session.id": "eve@example.com"}) == {"session.id": "<email>"}

    def test_hostile_mappings(self, r: Redactor) -> None:
        """A mapping whose items() raises, or with odd keys, yields what could be read, without raising."""
        assert r.attributes(_BadMapping()) == {}  # type: ignore[arg-type]
        out = r.attributes({1: "a", ("t",): "b", "c@example.com": "d"})  # type: ignore[dict-item]
        assert out == {"1": "a", "('t',)": "b", "<email>": "d"}


def test_nested_values_redact_strings_before_repr() -> None:
    """A secret inside a nested container is found even where repr() would escape it."""
    from otel_expansion.privacy.redaction import Redactor

    out = Redactor().value({"inner": ["C:\\Users\\dmitriy\\Documents\\notes.txt", "x carol@example.com"]})
    assert isinstance(out, str) and "dmitriy" not in out and "carol@example.com" not in out


def test_argv_shape_skips_a_secret_flags_value_even_if_it_looks_like_a_flag() -> None:
    """`--token --looks-like-a-flag` records only --token: the next word is its value."""
    from otel_expansion.privacy.redaction import Redactor

    shape = Redactor().argv_shape(["login", "--token", "--Zebediah-as-token", "--verbose", "--password=x"])
    assert shape == ("--token", "--verbose", "--password")
