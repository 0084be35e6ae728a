"""Free text at full: only the program's own text (constants of the code involved) survives."""

from __future__ import annotations

import json

from otel_expansion.collect import Recorder, features
from otel_expansion.config import Level, Settings
from otel_expansion.privacy import provenance
from otel_expansion.privacy.redaction import Redactor

TYPED = json.loads('["Jane Smith", "DE89 3704 0044 0532 0130 00", "jane@example.com", "48.85661, 2.35222"]')


def message_of(exc: BaseException) -> str:
    r = Redactor()
    return r.redact(provenance.own_text(str(exc), provenance.exception_constants(exc), provenance.kind_of(r.redact)))


def test_fstring_fixed_parts_kept_interpolated_parts_typed() -> None:
    """f"..." keeps its literal parts; each interpolated value becomes a placeholder labelled by the rules."""
    name, iban, mail, coords = TYPED
    try:
        raise ValueError(f"no account {name!r} for {mail} (iban {iban}) near {coords}")
    except ValueError as exc:
        assert message_of(exc) == "no account '<value>' for <email> (iban <iban>) near <value>"


def test_percent_and_format_templates() -> None:
    """%-format and str.format templates contribute their literal pieces."""
    try:
        raise RuntimeError("user %s not found after %d tries" % (TYPED[0], 3))  # noqa: UP031
    except RuntimeError as exc:
        assert message_of(exc) == "user <value> not found after <number> tries"
    try:
        raise RuntimeError("cannot open {} for {}".format("/srv/" + TYPED[0], TYPED[2]))
    except RuntimeError as exc:
        # the gap is a value, whole: "/srv/" was written here, but inside the value it is the value's text
        assert message_of(exc) == "cannot open <value> for <email>"


def test_message_from_c_code_is_withheld() -> None:
    """A message no code of the traceback wrote (KeyError's repr of a key) keeps nothing of the key."""
    try:
        {}[TYPED[0]]
    except KeyError as exc:
        assert message_of(exc) == "'<value>'"


def test_exception_class_init_counts_as_own_code() -> None:
    """A custom exception formatting its message in __init__ keeps that template."""

    class NotFound(Exception):
        def __init__(self, what: str) -> None:
            super().__init__(f"{what} was not found in the catalogue")

    try:
        raise NotFound(TYPED[0])
    except NotFound as exc:
        assert message_of(exc) == "<value> was not found in the catalogue"


def test_short_constants_never_slice_values() -> None:
    """A constant counts only as a whole message or a template's piece in its place, never as a word found
    inside an interpolated value."""
    c = provenance.Constants(["in", " at "])
    assert provenance.own_text("Martin at Berlin", c) == "<value>"
    assert provenance.own_text("Martin at Berlin", provenance.Constants(["%s at %s"])) == "<value> at <value>"


WARDS = {"oncology": 3, "psychiatry": 7, "hiv clinic": 9}


def test_a_value_equal_to_another_constant_stays_a_value() -> None:
    """Parts of an interpolated value that equal some other constant of the code (a dict key here) are
    still the value's: the template ``could not save note: {}`` decides where the value is."""
    assert WARDS
    for note in ("patient jane referred to psychiatry", "hiv clinic appointment for bob", "oncology",
                 "call me at +44 7911 123456"):
        try:
            raise RuntimeError("could not save note: %s" % note)  # noqa: UP031
        except RuntimeError as exc:
            assert message_of(exc) in ("could not save note: <value>", "could not save note: <phone>")
        try:
            raise RuntimeError(f"could not save note: {note}")
        except RuntimeError as exc:
            assert message_of(exc) in ("could not save note: <value>", "could not save note: <phone>")
    said, key = json.loads('["call me at +44 7911 123456", "AKIAIOSFODNN7EXAMPLE"]')
    try:
        raise RuntimeError("user said: " + said)
    except RuntimeError as exc:
        assert message_of(exc) in ("user said: <value>", "user said: <phone>")
    try:
        raise RuntimeError("fail" + key)
    except RuntimeError as exc:
        assert message_of(exc) in ("fail<value>", "fail<token>")
    try:
        raise RuntimeError(said.split(" at ")[0] + " at " + key)  # " at " in its place: a piece
    except RuntimeError as exc:
        assert "call" not in message_of(exc) and "AKIA" not in message_of(exc)


def test_templates_built_by_the_bytecode() -> None:
    """An f-string's pieces, a ``+`` of a constant and a value, nested: the pieces in their places."""
    who, where = TYPED[0], TYPED[2]
    for raise_it, expected in (
        (lambda: RuntimeError(f"copy {who} -> {where}: done"), "copy <value> -> <email>: done"),
        (lambda: RuntimeError("lost " + who), "lost <value>"),
        (lambda: RuntimeError(who + " is gone"), "<value> is gone"),
        (lambda: RuntimeError("[" + f"{who}|{where}" + "]"), "[<value>|<email>]"),
        (lambda: RuntimeError(f"{who}"), "<value>"),
    ):
        try:
            raise raise_it()
        except RuntimeError as exc:
            assert message_of(exc) == expected


def test_recorder_full_exception_and_feature_values() -> None:
    """The recorder at full: messages and declared feature attribute values keep only own text; frames
    are modules; undeclared attributes (numbers too) are dropped and counted."""
    features._reset_for_tests()
    features.declare(features.Feature("export", attributes={"fmt": str, "who": str, "path": str, "n": int}))
    try:
        r = Recorder(Settings(service_name="t", home="/nonexistent", level=Level.FULL))
        run = r.begin("deploy", origin="literal")
        r.feature("export", {"fmt": "csv", "who": TYPED[0], "path": f"/tmp/{TYPED[0]}.csv", "n": 3,
                             "account": 4402817733, "lat": 48.85661, TYPED[2]: 1})
    finally:
        features._reset_for_tests()
    try:
        raise RuntimeError(f"deploy of {TYPED[0]} failed")
    except RuntimeError as exc:
        r.end(run, exc)
    body = r.drain()
    assert body is not None
    details = body["commands"][0]["exception"]
    assert details["message"] == "deploy of <value> failed"
    assert details["stack"].endswith("in test_recorder_full_exception_and_feature_values")
    assert "/" not in details["stack"] and ".py" not in details["stack"]
    assert body["features"][0]["attrs"] == {"fmt": "csv", "who": "<value>", "path": "/tmp/<value>.csv", "n": 3}
    assert body["undeclared"] == 3  # account, lat and a key computed at run time


def test_feature_attributes_without_a_registry_never_leave() -> None:
    """At full, without declarations, a feature is counted by name and none of its attributes leave."""
    r = Recorder(Settings(service_name="t", home="/nonexistent", level=Level.FULL))
    r.feature("export", {"fmt": "csv", "account": 4402817733, "lat": 48.85661})
    body = r.drain()
    assert body is not None
    assert body["features"][0]["name"] == "export" and "attrs" not in body["features"][0]
    assert body["undeclared"] == 3


def test_connection_string_user_names_are_redacted() -> None:
    """User ID=...;Password=... and user=... password=...: the user name goes with the password."""
    r = Redactor()
    assert r.redact("Server=db;User ID=jdoe;Password=hunter2;") == "Server=db;User ID=<user>;Password=<secret>"
    assert r.redact("host=db user=jdoe password=s3cret dbname=app") == (
        "host=db user=<user> password=<secret> dbname=app")
