"""The host thread's recording path: what it remembers between commands, and that remembering changes
no recorded value. (Its cost is measured in benchmarks, never asserted here.)"""

from __future__ import annotations

import json
import sys
import threading
import types
from pathlib import Path

import pytest

from otel_expansion import collect as performance
from otel_expansion import collect as recorder
from otel_expansion.collect import Recorder
from otel_expansion.config import Level, Settings
from otel_expansion.privacy.provenance import literal_in_caller
from otel_expansion.privacy.vocabulary import DYNAMIC


def make(level: Level = Level.ENHANCED) -> Recorder:
    return Recorder(Settings(service_name="t", home="/nonexistent", level=level))


@pytest.mark.parametrize(("argv0", "expected"), [
    ("/usr/bin/tool.py", "tool"), ("/srv/app/bin/worker", "worker"), ("-c", "python"), ("", "python"),
    ("/src/pkg/__main__.py", "pkg"), ("/usr/bin/tool.py", "tool"),
])
def test_default_executable_follows_argv0(monkeypatch: pytest.MonkeyPatch, argv0: str, expected: str) -> None:
    """The executable is remembered per sys.argv[0]: a program that rewrites argv[0] is named anew."""
    recorder.default_executable()  # whatever was remembered before
    monkeypatch.setattr(sys, "argv", [argv0, "x"])
    assert recorder.default_executable() == expected


def test_changed_argv0_reaches_the_recorded_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands record the executable of the moment, not the first one seen: an installed console
    script by its name, anything else (a script file, ``-c``) as the service name."""
    r = make()
    monkeypatch.setattr(sys, "argv", ["/opt/first.py"])
    r.end(r.begin("job", origin="literal"))
    monkeypatch.setattr(sys, "argv", [str(Path(sys.executable).with_name("otel-expansion"))])
    r.end(r.begin("job", origin="literal"))
    monkeypatch.setattr(sys, "argv", [])
    r.end(r.begin("job", origin="literal"))
    body = r.drain()
    assert body is not None and [c["exe"] for c in body["commands"]] == ["t", "otel-expansion", "t"]


def test_remembered_names_follow_the_declarations() -> None:
    """A name remembered under one declaration list is not reused under another."""
    r = make()
    chosen = json.loads('["alpha", "beta"]')  # computed at run time: origin "app"
    r.declare(commands=["alpha"])
    for name in chosen:
        r.end(r.begin(name, origin="app"))
    r.declare(commands=["beta"])
    for name in chosen:
        r.end(r.begin(name, origin="app"))
    r.declared_commands = None  # set directly: nothing declared, so a computed name is never kept
    for name in chosen:
        r.end(r.begin(name, origin="app"))
    r.end(r.begin(chosen[0], origin="literal"))  # same text, written in code: kept
    body = r.drain()
    assert body is not None
    inv = DYNAMIC
    assert [c["name"] for c in body["commands"]] == ["alpha", inv, inv, "beta", inv, inv, "alpha"]


def test_non_string_names_are_placeholders_not_errors() -> None:
    """A name that is not a string (unhashable, even) is recorded as the placeholder, as before."""
    r = make()
    r.end(r.begin(["not", "a", "name"], origin="literal"))  # type: ignore[arg-type]
    body = r.drain()
    assert body is not None and body["commands"][0]["name"] == DYNAMIC


def test_literal_check_never_mixes_up_code_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-code cache holds each code object it describes, so a new code object (which may reuse a
    freed one's address) is always looked at afresh: a computed name never passes as a literal."""
    (tmp_path / "literal_host.py").write_text("", encoding="utf-8")  # a module file: the program's own code
    monkeypatch.syspath_prepend(str(tmp_path))
    import literal_host  # noqa: F401

    own = str(tmp_path / "literal_host.py")
    results = []
    for i in range(300):
        # same shape either way (a freed code object's memory is reused): "deploy" a constant of every other
        src = 'f = sys._getframe(0)\n' + ('x = "deploy"' if i % 2 else 'x = "deplox"')
        scope: dict[str, object] = {"sys": sys}
        exec(compile(src, own, "exec"), scope)  # a fresh code object each time, freed after
        frame = scope.pop("f")
        assert isinstance(frame, types.FrameType)
        results.append(literal_in_caller("deploy", frame))
        del frame, scope
    assert results == [bool(i % 2) for i in range(300)]


def test_cpu_clock_is_read_only_where_cpu_time_is_recorded() -> None:
    """At basic the start CPU reading (a system call) is skipped; from enhanced on it is recorded."""
    basic, enhanced = make(Level.BASIC), make(Level.ENHANCED)
    run = basic.begin("job", origin="literal")
    assert run is not None and run.start_cpu == 0.0
    basic.end(run)
    enhanced.end(enhanced.begin("job", origin="literal"))
    b, e = basic.drain(), enhanced.drain()
    assert b is not None and "cpu" not in b["commands"][0] and "mem" not in b["commands"][0]
    cmd = e["commands"][0] if e is not None else {}
    assert cmd["cpu"] >= 0.0 and isinstance(cmd["mem"], int) and cmd["mem"] > 0


def test_peak_rss_is_the_kernels_high_water_mark_without_importing_resource(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On Linux the peak is ``VmHWM`` of /proc/self/status (no ``resource`` import on the CLI path); it
    never exceeds getrusage's, which also keeps the peak of an image replaced by exec."""
    import resource

    def vm_hwm() -> int:
        with open("/proc/self/status", "rb") as f:
            line = next(x for x in f if x.startswith(b"VmHWM:"))
        return int(line.split()[1]) * 1024

    monkeypatch.setattr(performance, "_rusage", [])
    low = vm_hwm()
    first = performance.peak_rss_bytes()
    high = vm_hwm()
    assert first is not None and low <= first <= high
    assert first <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert performance._rusage == []  # resource.getrusage was never needed


def test_peak_rss_falls_back_to_getrusage_without_procfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc/self/status is missing (macOS, a sandbox), ``resource`` is bound once and used."""
    import resource

    monkeypatch.setattr(performance, "_PROC_STATUS", "/nonexistent/status")
    monkeypatch.setattr(performance, "_rusage", [])
    first = performance.peak_rss_bytes()
    assert performance._rusage[0] is resource.getrusage
    assert first is not None and first >= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_lock_free_appends_lose_nothing_to_a_concurrent_drain() -> None:
    """Recording takes no lock (drain takes items by count): with a drain looping on another thread,
    every command and feature lands in exactly one body."""
    r = make(Level.BASIC)
    r.max_commands = 10**9
    done = threading.Event()
    bodies = []

    def drain_loop() -> None:
        while not done.is_set():
            body = r.drain()
            if body is not None:
                bodies.append(body)

    thread = threading.Thread(target=drain_loop)
    thread.start()
    try:
        for i in range(20_000):
            run = r.begin("job", origin="literal")
            r.feature("step")
            r.end(run, exit_code=i % 2)
    finally:
        done.set()
        thread.join()
    last = r.drain()
    if last is not None:
        bodies.append(last)
    assert sum(len(b["commands"]) for b in bodies) == 20_000
    assert sum(len(b["features"]) for b in bodies) == 20_000
    assert sum(c["exit"] for b in bodies for c in b["commands"]) == 10_000


def test_handle_methods_judge_the_apps_own_code() -> None:
    """``t.command(...)``/``t.feature(...)`` on the handle: a name written in the calling code is kept, one
    computed at run time is the placeholder (the frame handed down is the app's, not the package's)."""
    from otel_expansion._runtime import Telemetry

    t = Telemetry(Settings(service_name="t", home="/nonexistent", level=Level.ENHANCED))
    typed = json.loads('["jsmith"]')[0]  # as if typed by the user
    with t.command("deploy"):
        t.feature("export")
        t.feature(typed)
    with t.command(typed):
        pass
    body = t.recorder.drain()
    assert body is not None
    assert [c["name"] for c in body["commands"]] == ["deploy", DYNAMIC]
    assert [f["name"] for f in body["features"]] == ["export", DYNAMIC]


def test_a_long_running_program_reads_its_peak_with_one_system_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service records every command's peak memory: one getrusage call, never the CLI's read of
    /proc/self/status (open, read, close: ~18 us a command, which doubled the host path when it was used
    there); a CLI's single command still reads VmHWM (no ``resource`` import on its path)."""
    from otel_expansion.collect.usage import Usage

    opened: list[object] = []
    real_proc = performance._proc_peak

    def proc_peak() -> int | None:
        opened.append(1)
        return real_proc()

    monkeypatch.setattr(performance, "_proc_peak", proc_peak)
    service = make(Level.ENHANCED)
    service.usage = Usage()
    for _ in range(3):
        service.end(service.begin("job", origin="literal"))
    body = service.drain()
    assert body is not None and all(c["mem"] > 0 for c in body["commands"])
    assert opened == []
    cli = make(Level.ENHANCED)
    cli.end(cli.begin("job", origin="literal"))
    assert opened == [1]
