"""Recorder: level filtering and minimisation at the source, exit codes, error types."""

from __future__ import annotations

import pytest

from otel_expansion.collect import Recorder, error_type, exit_code_of, features
from otel_expansion.config import Level, Settings


def recorder(level: Level) -> Recorder:
    return Recorder(Settings(service_name="t", home="/nonexistent", level=level))


def run_failing(r: Recorder, exc: BaseException) -> dict[str, object]:
    run = r.begin("deploy")
    r.set_args(["--token", "s3cr3t", "--verbose", "target"])
    try:
        raise exc
    except BaseException as caught:
        r.end(run, caught)
    body = r.drain()
    assert body is not None
    return body["commands"][0]  # type: ignore[no-any-return, index]


class TestExitCodes:
    @pytest.mark.parametrize(
        ("exc", "code"),
        [(None, 0), (SystemExit(), 0), (SystemExit(3), 3), (SystemExit("msg"), 1), (KeyboardInterrupt(), 130),
         (ValueError(), 1), (SystemExit(-1), 255), (SystemExit(True), 1), (SystemExit(256), 0),
         (SystemExit(1 << 70), 255)],
    )
    def test_exit_code_matches_python(self, exc: BaseException | None, code: int) -> None:
        """The recorded exit code is the status the shell sees (``sys.exit(-1)`` is 255)."""
        assert exit_code_of(exc) == code

    def test_error_type_is_qualified_for_non_builtins(self) -> None:
        """error.type follows the convention: builtins short, others module-qualified; a class no class
        statement of an importable module names (a local one) is reported as its nearest such base."""

        class Custom(KeyError):
            pass

        assert error_type(ValueError()) == "ValueError"
        assert error_type(ModuleLevelError()).endswith("test_recorder.ModuleLevelError")
        assert error_type(Custom()) == "KeyError"


class TestLevels:
    def test_basic_keeps_only_counts_and_durations(self) -> None:
        """basic: no CPU, memory, args or exception details; the error's signature (the program's frames)."""
        cmd = run_failing(recorder(Level.BASIC), ValueError("alice@example.com"))
        assert set(cmd) == {"name", "exe", "start", "end", "exit", "error", "sig", "rec"}  # rec: our own cost
        assert cmd["error"] == "ValueError" and cmd["exit"] == 1
        assert cmd["sig"] == f"{__name__}:run_failing"

    def test_enhanced_adds_performance_not_details(self) -> None:
        """enhanced: CPU and memory, still no args and no exception message."""
        cmd = run_failing(recorder(Level.ENHANCED), ValueError("alice@example.com"))
        assert "cpu" in cmd and "mem" in cmd and "args" not in cmd and "exception" not in cmd

    def test_full_adds_flag_names_and_redacted_details(self) -> None:
        """full: flag names only, never values; a message built outside the traceback's code is withheld."""
        cmd = run_failing(recorder(Level.FULL), ValueError("mail alice@example.com now"))
        assert cmd["args"] == ("--token", "--verbose")
        details = cmd["exception"]
        assert isinstance(details, dict)
        assert details["message"] == "<value>"
        assert "test_recorder:" in details["stack"] and ".py" not in details["stack"]

    def test_off_records_nothing(self) -> None:
        """off: begin() refuses and nothing is drained."""
        r = recorder(Level.OFF)
        assert r.begin("x") is None
        r.feature("f")
        assert r.drain() is None


class ModuleLevelError(Exception):
    pass


class TestRecording:
    def test_nested_runs_belong_to_the_outer_one(self) -> None:
        """A command started inside another is not recorded separately."""
        r = recorder(Level.ENHANCED)
        outer = r.begin("outer", origin="literal")
        assert r.begin("inner", origin="literal") is None
        r.end(outer)
        body = r.drain()
        assert body is not None and [c["name"] for c in body["commands"]] == ["outer"]

    def test_feature_attributes_only_at_full(self) -> None:
        """Declared feature attributes are dropped below full and redacted at full."""
        features.declare(features.Feature("export", attributes={"fmt": str, "owner": str}))
        try:
            r = recorder(Level.ENHANCED)
            r.feature("export", {"fmt": "csv"})
            body = r.drain()
            assert body is not None and "attrs" not in body["features"][0]
            r = recorder(Level.FULL)
            r.feature("export", {"fmt": "csv", "owner": "bob@example.org"})
            body = r.drain()
        finally:
            features._reset_for_tests()
        assert body is not None
        attrs = body["features"][0]["attrs"]
        assert attrs["fmt"] == "csv" and "bob@example.org" not in str(attrs)

    def test_command_names_are_redacted(self) -> None:
        """A command name carrying PII (manual API) is redacted before it is stored."""
        r = recorder(Level.ENHANCED)
        r.end(r.begin("sync carol@example.com"))
        body = r.drain()
        assert body is not None and "carol@example.com" not in body["commands"][0]["name"]

    def test_bounded_buffers(self) -> None:
        """Runaway loops cannot grow memory without bound: excess is counted, not kept."""
        r = recorder(Level.BASIC)
        cap = r.max_commands * 2
        for _ in range(cap + 500):
            r.feature("f")
        body = r.drain()
        assert body is not None and len(body["features"]) == cap and body["overflow_features"] == 500
        assert "overflow" not in body  # dropped.overflow counts commands only


class TestPreCheck:
    @pytest.mark.parametrize("text", ["/home/alice/x.py", "10.0.0.1", "fe80::1", "password: hunter2",
                                      "run for dave@example.com"])
    def test_pii_never_skips_the_redactor(self, text: str) -> None:
        """The fast path that skips the redactor never lets PII-shaped text through."""
        r = recorder(Level.ENHANCED)
        r.end(r.begin(text))
        body = r.drain()
        assert body is not None and body["commands"][0]["name"] != text

    def test_plain_names_do_not_load_the_redactor(self) -> None:
        """Ordinary command names cost no redactor construction."""
        r = recorder(Level.ENHANCED)
        r.end(r.begin("remote add"))
        assert r._redactor is None


def test_identifiers_are_hashed_with_a_salt() -> None:
    """With a salt, *_id feature attributes become stable salted pseudonyms; others stay as they are."""
    def record(salt: str) -> dict[str, object]:
        features.declare(features.Feature("share", attributes={"user_id": str, "fmt": str}))
        try:
            r = Recorder(Settings(service_name="t", home="/x", level=Level.FULL, hash_salt=salt))
            r.feature("share", {"user_id": "user-42", "fmt": "csv"})
            body = r.drain()
        finally:
            features._reset_for_tests()
        assert body is not None
        return body["features"][0]["attrs"]  # type: ignore[no-any-return]

    a, b, c = record("s1"), record("s1"), record("s2")
    assert a["user_id"] == b["user_id"] != c["user_id"] and a["user_id"] != "user-42" and a["fmt"] == "csv"


def test_what_happens_during_a_command_falls_within_it_when_its_clocks_were_read_apart() -> None:
    """A command's start is read on two clocks (wall, then monotonic) and its end from the monotonic one; a
    thread preempted between the two reads, or a wall clock stepped between them, once put the features and
    handled exceptions recorded during it past its end, so its span lost them (and span thinning dropped
    them). Stamped on the command's own timeline, they fall within [start, end] by construction."""
    r = recorder(Level.FULL)
    run = r.begin("deploy")
    assert run is not None
    run.start_ns -= 2_000_000_000  # the wall read came 2 s before the monotonic one (or the clock stepped)
    r.feature("export")
    try:
        raise ValueError("x")
    except ValueError as exc:
        r.exception(exc)
    r.end(run)
    body = r.drain()
    assert body is not None
    (cmd,) = body["commands"]
    times = [f["t"] for f in body["features"]] + [e["t"] for e in body["exceptions"]]
    assert len(times) == 2 and all(cmd["start"] <= t <= cmd["end"] for t in times), (cmd, times)


def test_outside_a_command_features_carry_the_wall_clock() -> None:
    import time

    r = recorder(Level.FULL)
    before = time.time_ns()
    r.feature("export")
    body = r.drain()
    assert body is not None and before <= body["features"][0]["t"] <= time.time_ns()
