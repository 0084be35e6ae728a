"""A full recorder buffer: every command is either stored or counted in ``dropped.overflow``, exactly.

Features are counted apart (the body's ``overflow_features``), and those recorded during a command that
was not kept go with it: otherwise they would count as use of a command that never reached the spool.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from otel_expansion.collect import Recorder
from otel_expansion.config import Level, Settings
from tests.conftest import clean_env
from tests.integration.test_service import invocations, stored


def recorder(max_commands: int, level: Level = Level.ENHANCED) -> Recorder:
    return Recorder(Settings(service_name="t", home="/nonexistent", level=level), max_commands=max_commands)


def test_stored_plus_dropped_is_every_command() -> None:
    """Ten commands of two features each into a buffer of three: 3 stored + 7 dropped, and the 14
    features of the dropped ones are counted apart, not as dropped commands."""
    r = recorder(3)
    for _ in range(10):
        run = r.begin("job", origin="literal")
        r.feature("step")
        r.feature("step")
        r.end(run)
    body = r.drain()
    assert body is not None
    assert len(body["commands"]) + body["overflow"] == 10 and body["overflow"] == 7
    assert len(body["features"]) == 6 and body["overflow_features"] == 14
    assert r.drain() is None  # the counters were handed on with the body


def test_features_outside_a_dropped_command_are_kept() -> None:
    """Only what was recorded while the dropped command ran goes with it."""
    r = recorder(1)
    r.end(r.begin("first", origin="literal"))
    r.feature("before")
    run = r.begin("second", origin="literal")
    r.feature("during")
    r.end(run)
    r.feature("after")
    body = r.drain()
    assert body is not None
    assert [c["name"] for c in body["commands"]] == ["first"] and body["overflow"] == 1
    assert [f["name"] for f in body["features"]] == ["before", "after"] and body["overflow_features"] == 1


def test_a_drain_during_the_command_keeps_what_it_took() -> None:
    """Features already handed on (drained) while the command ran stay stored; later ones go with it."""
    r = recorder(5)
    run = r.begin("job", origin="literal")
    r.feature("early")
    first = r.drain()
    assert first is not None and [f["name"] for f in first["features"]] == ["early"]
    r.feature("late")
    r.max_commands = 0  # the buffer is full by the time the command ends
    r.end(run)
    body = r.drain()
    assert body is not None
    assert body["commands"] == [] and body["features"] == []
    assert body["overflow"] == 1 and body["overflow_features"] == 1


def test_full_feature_buffer_counts_features_not_commands() -> None:
    """Past the feature bound, features are counted as features; no command was lost."""
    r = recorder(2, Level.BASIC)
    for _ in range(10):
        r.feature("f")
    body = r.drain()
    assert body is not None and len(body["features"]) == 4 and body["overflow_features"] == 6
    assert "overflow" not in body


def test_full_exception_buffer_is_counted() -> None:
    """Handled exceptions past their bound are counted too (they used to vanish)."""
    r = recorder(1, Level.BASIC)
    for _ in range(5):
        r.exception(ValueError("x"))
    body = r.drain()
    assert body is not None and len(body["exceptions"]) == 2 and body["overflow_exceptions"] == 3
    assert "overflow" not in body


BUSY_TINY_BUFFER = """
import json, sys
import otel_expansion
from otel_expansion.workers import service
service.WAKE_AT = 10**9  # no early wake-up: the tiny buffer fills
t = otel_expansion.init("busy", mode="service", send=False, level="enhanced")
t.recorder.max_commands = 4
for i in range(300):
    with otel_expansion.command("tick"):
        otel_expansion.feature("step")
        otel_expansion.feature("step")
print(json.dumps({"overflow": t.recorder.overflow, "features": t.recorder.overflow_features}))
"""


def test_service_spool_counts_each_lost_command_once(tmp_path: Path) -> None:
    """End to end (service mode, real spool): the buffer overflows, yet every command and feature is in
    the stored metrics (aggregated as they ended); spans stored + ``dropped.overflow`` == commands run."""
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-c", BUSY_TINY_BUFFER], env=clean_env(home), check=True, timeout=120,
                         capture_output=True, text=True).stdout
    pending = json.loads(out)
    assert pending["overflow"] > 0 and pending["features"] == 0  # features were counted in the aggregate
    points, spans, counters = stored(home)
    assert invocations(points) == 300
    assert 0 < len(spans) < 300
    assert len(spans) + counters.get("dropped.overflow", 0) == 300
    uses = sum(p.value for p in points if p.key.name == "cli.feature.usage")
    assert uses == 600
