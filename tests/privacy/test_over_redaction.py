"""Over-redaction of the negative corpus (ordinary program text), measured per category and reported.

Four ways a value can reach telemetry, each measured on every negative value:
- ``patterns``: the redactor over free text (span attributes, the program's own text at ``full``);
- ``own text``: written in the program (a literal exception message at ``full``): kept unless a pattern fires;
- ``interpolated``: computed or typed, interpolated into a message: replaced by design (provenance unknown);
- ``literal names``: ``command("v")``/``feature("v")`` written in the program's code, and a framework's
  command name written there: kept whatever their shape (a name computed at run time is ``<dynamic>``
  unless declared in ``init(commands=..., features=...)``).
The table is written to tests/privacy/OVER_REDACTION.md and printed.
"""

from __future__ import annotations

import importlib
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import otel_expansion
from otel_expansion.collect.recorder import Recorder
from otel_expansion.config.levels import Level
from otel_expansion.config.settings import Settings
from otel_expansion.privacy import vocabulary
from otel_expansion.privacy.redaction import Redactor
from tests.privacy.corpus import negative

REPORT = Path(__file__).with_name("OVER_REDACTION.md")


def program_module(tmp_path: Path, values: list[str]) -> ModuleType:
    """A real module file of the program (imported, not exec'd), writing every value as a literal: a
    raised message, a ``command()`` and a ``feature()`` name, a framework command name."""
    lines = ["import otel_expansion", ""]
    for i, value in enumerate(values):
        lines += [f"def fail_{i}():", f"    raise RuntimeError({value!r})", "",
                  f"def run_{i}():", f"    with otel_expansion.command({value!r}):",
                  f"        otel_expansion.feature({value!r})", ""]
    path = tmp_path / "negative_program.py"
    path.write_text("\n".join(lines), encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop("negative_program", None)
        return importlib.import_module("negative_program")
    finally:
        sys.path.remove(str(tmp_path))


def own_text_message(recorder: Recorder, program: ModuleType, i: int) -> str:
    """The recorded message of an exception whose text is a literal of the raising code."""
    try:
        getattr(program, f"fail_{i}")()
    except RuntimeError as exc:
        return str(recorder._exception_details(exc)["message"])
    raise AssertionError("unreachable")


def interpolated_message(recorder: Recorder, value: str) -> str:
    try:
        raise RuntimeError(f"step failed: {value}")
    except RuntimeError as exc:
        return str(recorder._exception_details(exc)["message"])


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from otel_expansion import _runtime
    from otel_expansion.collect import integrations

    monkeypatch.setenv("OTEL_EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OTEL_EXPANSION_SEND", "false")
    for var in ("DO_NOT_TRACK", "OTEL_SDK_DISABLED", "OTEL_EXPANSION_LEVEL"):
        monkeypatch.delenv(var, raising=False)
    _runtime._reset_for_tests()
    yield
    integrations.uninstall_all()
    _runtime._reset_for_tests()


def test_over_redaction_per_category(capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated: None) -> None:
    """Ordinary text survives the patterns and, as the program's own text, the provenance check; names
    written literally in the program's code are kept whatever their shape."""
    redactor = Redactor()
    recorder = Recorder(Settings(service_name="t", home="/nonexistent", level=Level.FULL))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    examples: dict[str, list[str]] = defaultdict(list)
    corpus = negative()
    program = program_module(tmp_path, [v.text for v in corpus])
    t = otel_expansion.init("negative", instrument=False, level="full")
    for i in range(len(corpus)):
        getattr(program, f"run_{i}")()
    body = t.recorder.drain()
    assert body is not None
    recorded = [(c["name"], f["name"]) for c, f in zip(body["commands"], body["features"], strict=True)]
    for i, v in enumerate(corpus):
        row = counts[v.category]
        row[0] += 1
        if redactor.redact(v.text) != v.text:
            row[1] += 1
            examples[v.category].append(f"{v.text!r} -> {redactor.redact(v.text)!r}")
        if own_text_message(recorder, program, i) != v.text:
            row[2] += 1
        if interpolated_message(recorder, v.text) != f"step failed: {v.text}":
            row[3] += 1
        fn = getattr(program, f"run_{i}")
        if recorded[i] != (v.text, v.text) or vocabulary.command_word(v.text, functions=[fn]) != v.text:
            row[4] += 1
    lines = ["# Over-redaction of the negative corpus (generated by tests/privacy/test_over_redaction.py)", "",
             "| category | values | patterns | own text | interpolated (by design) | literal names |",
             "|---|---|---|---|---|---|"]
    total = [0, 0, 0, 0, 0]
    for cat, row in sorted(counts.items()):
        total = [a + b for a, b in zip(total, row, strict=True)]
        lines.append(f"| {cat} | {row[0]} | " + " | ".join(f"{n} ({n / row[0]:.0%})" for n in row[1:]) + " |")
    lines.append(f"| **all** | {total[0]} | " + " | ".join(f"{n} ({n / total[0]:.0%})" for n in total[1:]) + " |")
    lines += ["", "Values changed by the patterns:", ""]
    lines += [f"- {cat}: {', '.join(ex)}" for cat, ex in sorted(examples.items())]
    text = "\n".join(lines) + "\n"
    REPORT.write_text(text, encoding="utf-8")
    with capsys.disabled():
        print("\n" + text)
    assert total[1] == total[2]  # the program's own text loses only what a pattern takes
    assert total[1] / total[0] < 0.08 and total[3] / total[0] > 0.9
    assert total[4] == 0  # every name written literally in the program's code is kept as written
