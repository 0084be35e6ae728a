"""Names are identifiers: shape, declaration and provenance decide; versions keep their public part."""

from __future__ import annotations

import json

import pytest

import otel_expansion
from otel_expansion.privacy import names
from otel_expansion.privacy.vocabulary import DYNAMIC


@pytest.mark.parametrize("text", ["deploy", "remote add", "db-migrate", "export.csv", "sync2", "token create",
                                  "getUserById"])
def test_identifier_shaped_names_pass(text: str) -> None:
    """Command paths and feature names as programs write them have the shape of a name (the shape only adds
    a check: which names may leave is the vocabulary's decision)."""
    assert names.name_ok(text)


@pytest.mark.parametrize("text", ["Jane Smith", "jane@example.com", "123-45-6789", "DE89 3704 0044", "/home/x",
                                  "a b c d e", "x" * 65, "müller", "ghp_" + "a" * 36, "order-12345678", ""])
def test_text_that_is_not_a_name_fails_the_shape(text: str) -> None:
    """People, addresses, numbers and tokens are not names."""
    assert not names.name_ok(text)
    assert names.attribute_key(text) is None  # nor attribute keys


@pytest.mark.parametrize(("version", "public"), [
    ("1.0+jane.doe.laptop", "1.0"), ("v2.3.4-rc.1", "2.3.4-rc.1"), ("1.0.0-jane", "1.0.0"),
    ("2024.1.post2.dev3", "2024.1.post2.dev3"), ("1.2.3a1", "1.2.3a1"), ("jane", None), ("", None),
])
def test_public_version(version: str, public: str | None) -> None:
    """A version keeps release numbers and pre/post/dev tags; local labels and other suffixes go."""
    assert names.public_version(version) == public


def test_ambient_resource_needs_an_allow_list() -> None:
    """The user's OTEL_RESOURCE_ATTRIBUTES pass only under keys (or prefixes) the app names."""
    pairs = [("deployment.environment", "prod"), ("team", "jane"), ("k8s.cluster.name", "c1")]
    assert names.ambient_resource(pairs, ()) == {}
    assert names.ambient_resource(pairs, ["deployment.environment", "k8s.*"]) == {
        "deployment.environment": DYNAMIC, "k8s.cluster.name": DYNAMIC}  # in no code: their shape admits nothing
    assert names.ambient_resource(pairs, {"deployment.environment": frozenset({"prod", "dev"}), "k8s.*": None}) == {
        "deployment.environment": "prod", "k8s.cluster.name": DYNAMIC}  # the app's vocabulary for the key


def test_computed_names_are_replaced_literal_names_kept() -> None:
    """command("x")/feature("x") written in code are kept; names computed at run time are placeholders."""
    t = otel_expansion.init("app", instrument=False, level="full")
    typed = json.loads('["jsmith"]')[0]  # as if typed by the user: not a constant of this code
    with otel_expansion.command("deploy"):
        otel_expansion.feature("export")
        otel_expansion.feature(typed)
    with otel_expansion.command(typed):
        pass

    @otel_expansion.command("sync")
    def sync() -> None:
        pass

    sync()
    for step in ("build", "publish"):  # a tuple constant of this code
        with otel_expansion.command(step):
            pass
    body = t.recorder.drain()
    assert body is not None
    assert [c["name"] for c in body["commands"]] == ["deploy", DYNAMIC, "sync", "build", "publish"]
    assert [f["name"] for f in body["features"]] == ["export", DYNAMIC]


def test_declared_commands_and_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """init(commands=..., features=...) lets computed names through when they are members."""
    t = otel_expansion.init("app", instrument=False, commands=["deploy", "sync"], features=["export"])
    chosen = json.loads('["sync", "jsmith", "export"]')
    for name in chosen[:2]:
        with otel_expansion.command(name):
            pass
    otel_expansion.feature(chosen[2])
    otel_expansion.feature(chosen[1])
    body = t.recorder.drain()
    assert body is not None
    assert [c["name"] for c in body["commands"]] == ["sync", DYNAMIC]
    assert [f["name"] for f in body["features"]] == ["export", DYNAMIC]


@pytest.mark.parametrize("version", [
    "1", "1.0", "2.31.0", "123456789.1", "1234567890.1", "1.1234567890", "1..0", ".1", "1.", "01.002", "1.0 ",
    " 1.0", "1.0+x", "v1.0", "1.0a1", "\uff11.\uff10", "1.²", "", "0", "1.2.3.4.5.6.7.8.9.10", "1,0", "1.0-rc.1",
])
def test_resource_shortcut_for_plain_releases_agrees_with_public_version(version: str) -> None:
    """collect proves a plain release (``1.2.3``) public without loading this module: on every
    shape, near misses included, it answers exactly as ``names.public_version``."""
    from otel_expansion import collect as resource

    assert resource.public_version(version) == names.public_version(version)


def test_the_recorder_spells_the_placeholder_as_the_vocabulary_does() -> None:
    """The recorder counts ``<dynamic>`` names without importing the vocabulary: the same text."""
    from otel_expansion import collect as recorder

    assert recorder._DYNAMIC == DYNAMIC
