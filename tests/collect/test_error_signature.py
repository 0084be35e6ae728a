"""``cli.error.signature`` wherever a failure is recorded: the recorder's command and handled-exception
entries, a service's usage aggregate (part of the error counters' key), and the SDK replay (the errors and
handled-exceptions counters, the failed command's span and the exception events; never the invocation or
duration series)."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.trace.v1 import trace_pb2

from otel_expansion.collect import Recorder
from otel_expansion.collect.usage import Usage, error_series, handled_series
from otel_expansion.config import Level, resolve
from otel_expansion.privacy.redaction import Redactor
from otel_expansion.sdk import signals
from otel_expansion.sdk.pipeline import Pipeline
from otel_expansion.sdk.staging import Staging

HERE = __name__
SIG = "__main__:main > app.sync:pull > app.sync:fetch"
T0 = 1_764_480_000 * 10**9


def fetch() -> None:
    raise ConnectionError("host db-7.internal refused")


def pull() -> None:
    fetch()


def recorder(level: str) -> Recorder:
    return Recorder(resolve("svc", environ={}, home="/nonexistent", level=level, send=False))


class TestRecorder:
    def test_failed_command_carries_its_signature_and_a_success_none(self) -> None:
        """A failing command's entry has ``sig`` (the frames from where it was caught inward); a successful
        one has no such key at all, at every level."""
        for level in ("basic", "enhanced", "full"):
            rec = recorder(level)
            run = rec.begin("sync", "svc", origin="literal")
            try:
                pull()
            except ConnectionError as exc:
                rec.end(run, exc)
            rec.end(rec.begin("sync", "svc", origin="literal"))
            body = rec.drain()
            assert body is not None
            failed, ok = body["commands"]
            # co_name, not co_qualname (3.11+ only): the method's own name
            assert failed["sig"] == f"{HERE}:test_failed_command_carries_its_signature_and_a_success_none" \
                f" > {HERE}:pull > {HERE}:fetch"
            assert failed["error"] == "ConnectionError" and "sig" not in ok

    def test_an_exit_code_without_an_exception_has_no_signature(self) -> None:
        """``sys.exit(3)``: an exit status, not an error with a path: no signature."""
        rec = recorder("full")
        rec.end(rec.begin("sync", "svc", origin="literal"), SystemExit(3))
        body = rec.drain()
        assert body is not None and "sig" not in body["commands"][0] and body["commands"][0]["error"] == "3"

    def test_handled_exception_carries_its_signature(self) -> None:
        """record_exception(): the handled exception's own path."""
        rec = recorder("basic")
        try:
            pull()
        except ConnectionError as exc:
            rec.exception(exc)
        body = rec.drain()
        assert body is not None
        (item,) = body["exceptions"]
        assert item["sig"] == f"{HERE}:test_handled_exception_carries_its_signature > {HERE}:pull > {HERE}:fetch"

    def test_a_placeholder_in_a_signature_is_counted(self) -> None:
        """Code compiled from a string leaves ``<dynamic>`` in the signature, counted as undeclared."""
        rec = recorder("basic")
        namespace: dict[str, Any] = {}
        exec("def generated():\n    raise ValueError('x')\n", namespace)
        run = rec.begin("sync", "svc", origin="literal")
        try:
            namespace["generated"]()
        except ValueError as exc:
            rec.end(run, exc)
        body = rec.drain()
        assert body is not None
        assert body["commands"][0]["sig"] == f"{HERE}:test_a_placeholder_in_a_signature_is_counted > <dynamic>"
        assert body.get("undeclared") == 1


class TestUsage:
    def cmd(self, sig: str | None, code: int = 1, error: str = "OSError") -> dict[str, Any]:
        c: dict[str, Any] = {"name": "sync", "exe": "svc", "start": T0, "end": T0 + 1000, "exit": code}
        if code:
            c["error"] = error
            if sig is not None:
                c["sig"] = sig
        return c

    def test_the_signature_is_part_of_the_error_counters_key(self) -> None:
        """Two signatures of one error type are two exact counts; a failure without one keeps its own."""
        usage = Usage()
        for sig in (SIG, SIG, "m:a", None):
            usage.command(self.cmd(sig))  # type: ignore[arg-type]
        usage.command(self.cmd(None, code=0))  # type: ignore[arg-type]
        usage.exception("KeyError", "m:a")
        usage.exception("KeyError", None)
        snap = usage.take()
        assert snap is not None
        assert snap["errors"] == [["sync", "OSError", 4]]  # the totals a release before signatures reads
        assert sorted(error_series(snap), key=str) == sorted(
            [("sync", "OSError", SIG, 2), ("sync", "OSError", "m:a", 1), ("sync", "OSError", None, 1)], key=str)
        assert sorted(handled_series(snap), key=str) == sorted([("KeyError", "m:a", 1), ("KeyError", None, 1)],
                                                               key=str)

    def test_merge_and_an_old_snapshot(self) -> None:
        """A snapshot merged back keeps its signed counts; one written before signatures reads as unsigned."""
        usage = Usage()
        usage.command(self.cmd(SIG))  # type: ignore[arg-type]
        snap = usage.take()
        assert snap is not None
        usage.merge(snap)
        usage.merge(snap)
        again = usage.take()
        assert again is not None and error_series(again) == [("sync", "OSError", SIG, 2)]
        old = {"errors": [["sync", "OSError", 3]], "handled": [["KeyError", 2]]}
        assert error_series(old) == [("sync", "OSError", None, 3)]
        assert handled_series(old) == [("KeyError", None, 2)]


def points(staging: Staging) -> tuple[dict[tuple[str, tuple[Any, ...]], float], list[Any]]:
    pts, spans = staging.take()
    values: dict[tuple[str, tuple[Any, ...]], float] = {}
    for p in pts:
        key = (p.key.name, p.key.attributes)
        values[key] = values.get(key, 0) + (p.count or p.value)
    decoded = []
    for s in spans:
        span = trace_pb2.Span()
        span.ParseFromString(s.data)
        decoded.append(span)
    return values, decoded


def pipeline(level: Level) -> tuple[Pipeline, Staging]:
    staging = Staging()
    return Pipeline({"service.name": "svc"}, level, Redactor(), staging), staging


def attributes_of(values: dict[tuple[str, tuple[Any, ...]], float], metric: str) -> dict[tuple[Any, ...], float]:
    return {attrs: v for (name, attrs), v in values.items() if name == metric}


class TestReplay:
    body: dict[str, Any] = {
        "level": 3,
        "commands": [
            {"name": "sync", "exe": "svc", "start": T0, "end": T0 + 10**6, "exit": 1, "error": "OSError", "sig": SIG,
             "exception": {"message": "<value>", "stack": "m:1 in f"}},
            {"name": "sync", "exe": "svc", "start": T0 + 2 * 10**6, "end": T0 + 3 * 10**6, "exit": 1,
             "error": "OSError", "sig": SIG},
            {"name": "sync", "exe": "svc", "start": T0 + 4 * 10**6, "end": T0 + 5 * 10**6, "exit": 1,
             "error": "OSError"},
            {"name": "sync", "exe": "svc", "start": T0 + 6 * 10**6, "end": T0 + 7 * 10**6, "exit": 0},
        ],
        "features": [],
        "exceptions": [{"type": "KeyError", "t": T0 + 6 * 10**6 + 5, "sig": "m:a", "message": "m", "stack": "s"},
                       {"type": "KeyError", "t": T0 + 8 * 10**6}],
    }

    def test_errors_and_handled_counters_carry_it_invocations_do_not(self) -> None:
        """cli.command.errors and cli.exceptions.handled are keyed by signature at every level; the
        invocation and duration series never carry it (their cardinality stays the commands')."""
        for level in (Level.BASIC, Level.ENHANCED, Level.FULL):
            p, staging = pipeline(level)
            p.ingest(self.body)  # type: ignore[arg-type]
            p.collect()
            values, _ = points(staging)
            errors = attributes_of(values, signals.ERRORS)
            assert errors == {
                (("cli.command.name", "sync"), ("cli.error.signature", SIG), ("error.type", "OSError")): 2,
                (("cli.command.name", "sync"), ("error.type", "OSError")): 1,
            }
            handled = attributes_of(values, signals.HANDLED)
            assert handled == {(("cli.error.signature", "m:a"), ("error.type", "KeyError"),
                                ("exception.handled", True)): 1,
                               (("error.type", "KeyError"), ("exception.handled", True)): 1}
            for metric in (signals.INVOCATIONS, signals.DURATION):
                assert all("cli.error.signature" not in dict(a) for a in attributes_of(values, metric))

    def test_failed_spans_and_exception_events_carry_it(self) -> None:
        """The failed command's span (enhanced, full) and, at full, its exception event and the handled
        exception's event carry the signature; the successful command's span does not."""
        for level in (Level.ENHANCED, Level.FULL):
            p, staging = pipeline(level)
            p.ingest(self.body)  # type: ignore[arg-type]
            _, spans = points(staging)
            sigs = [{kv.key: kv.value.string_value for kv in s.attributes}.get("cli.error.signature")
                    for s in spans]
            assert sigs == [SIG, SIG, None, None]
            events = [({kv.key: kv.value.string_value for kv in e.attributes}).get("cli.error.signature")
                      for s in spans for e in s.events if e.name == "exception"]
            assert events == ([SIG, "m:a"] if level == Level.FULL else [])

    def test_a_service_usage_aggregate_replays_each_signature_exactly(self) -> None:
        """record_usage: the signed counts and what they leave of each total, never more."""
        usage = Usage()
        for sig in (SIG, SIG, None):
            c: dict[str, Any] = {"name": "sync", "exe": "svc", "start": T0, "end": T0 + 1, "exit": 1,
                                 "error": "OSError"}
            if sig:
                c["sig"] = sig
            usage.command(c)  # type: ignore[arg-type]
        usage.exception("KeyError", "m:a")
        snap = usage.take()
        assert snap is not None
        p, staging = pipeline(Level.BASIC)
        p.record_usage(snap, Level.BASIC)
        p.collect()
        values, _ = points(staging)
        assert attributes_of(values, signals.ERRORS) == {
            (("cli.command.name", "sync"), ("cli.error.signature", SIG), ("error.type", "OSError")): 2,
            (("cli.command.name", "sync"), ("error.type", "OSError")): 1,
        }
        assert attributes_of(values, signals.HANDLED) == {
            (("cli.error.signature", "m:a"), ("error.type", "KeyError"), ("exception.handled", True)): 1}


def test_full_stack_names_frames_only_as_the_code_fixes_them(tmp_path: Any) -> None:
    """The full level's ``exception.stacktrace`` names frames as the signature does: code renamed at run time
    and a module imported under a name made at run time leave ``<dynamic>``, never the name."""
    import importlib.util
    import sys
    import types

    secret = "_".join(["riku", "virta", str(7 * 11)])  # made at run time: in no code

    def fail() -> None:
        raise ValueError("x")

    renamed = types.FunctionType(fail.__code__.replace(co_name=secret), globals())
    plugin = tmp_path / "plugin.py"
    plugin.write_text("def run():\n    raise ValueError('x')\n", encoding="utf-8")
    spec = importlib.util.spec_from_file_location(secret, plugin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[secret] = module
    try:
        spec.loader.exec_module(module)
        for door in (renamed, module.run):
            rec = recorder("full")
            try:
                door()
            except ValueError as exc:
                rec.exception(exc)
            body = rec.drain()
            assert body is not None
            (item,) = body["exceptions"]
            assert secret not in repr(item) and "<dynamic>" in item["stack"] and "<dynamic>" in item["sig"]
            assert body.get("undeclared") == 1  # the placeholder in the signature, counted
    finally:
        sys.modules.pop(secret, None)


def test_a_service_counts_each_signature_exactly_past_a_full_buffer(tmp_path: Any) -> None:
    """Service mode: 300 failures on two paths, the buffer holding only 50 commands: the errors counter
    in the spool has each signature's exact count (from the in-process usage aggregate)."""
    from otel_expansion.workers.sender import open_spool
    from tests.sdk.test_service_counts import runtime

    home = tmp_path / "home"
    rt = runtime(home, "enhanced")
    rt.recorder.max_commands = 50
    rec = rt.recorder
    for i in range(300):
        r = rec.begin("sync", "svc", origin="literal")
        try:
            (pull if i % 3 else fetch)()
        except ConnectionError as exc:
            rec.end(r, exc)
    rt.step()
    rt._close_spool()
    s = open_spool(str(home), rt.settings)
    try:
        points, _ = s.pending(limit=1_000_000)
    finally:
        s.close()
    errors: dict[str | None, float] = {}
    for p in points:
        if p.key.name == signals.ERRORS:
            sig = dict(p.key.attributes).get("cli.error.signature")
            errors[sig] = errors.get(sig, 0) + p.value  # type: ignore[arg-type]
    where = f"{HERE}:test_a_service_counts_each_signature_exactly_past_a_full_buffer"
    assert errors == {f"{where} > {HERE}:pull > {HERE}:fetch": 200, f"{where} > {HERE}:fetch": 100}
