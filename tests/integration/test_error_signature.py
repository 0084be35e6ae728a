"""``cli.error.signature`` end to end: real click and argparse programs, installed the way pip installs them
(a console script calling the program's module), fail in a nested function of their own module; their
journal records are flushed by the real ``otel-expansion flush`` to an OTLP/HTTP server on 127.0.0.1, and the
attribute is read off the wire (metrics at every level, spans from enhanced, exception events at full)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.export.servers import otlp_server
from tests.export.test_sender import metric_values, spans_of
from tests.integration.test_every_run import BIN, console_script, run

STORE = '''
import json


def load(text):
    return _parse(text)


def _parse(text):
    return json.loads(text)


def check(path):
    return _validate(path)


def _validate(path):
    raise ValueError("no such volume: " + path)
'''

CLICK = '''
import click

from sigstore import load


@click.group()
def cli():
    pass


@cli.command()
@click.argument("text")
def sync(text):
    load(text)


def main():
    cli()
'''

ARGPARSE = '''
import argparse

from sigstore import check


def main():
    parser = argparse.ArgumentParser(prog="sigarg")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sync = sub.add_parser("sync")
    sync.add_argument("path")
    args = parser.parse_args()
    if args.cmd == "sync":
        check(args.path)
    return 0
'''

USER_VALUE = "/home/zoë.okonkwo/Documents/payroll-2026.xlsx"
"""What the user typed: it is in the exception's message, never in a signature."""

OWN_CLICK = "__main__:<module> > sigclick_cli:main > sigclick_cli:sync > sigstore:load > sigstore:_parse"
OWN_ARGPARSE = "__main__:<module> > sigarg_cli:main > sigstore:check > sigstore:_validate"
EXPECTED = {
    # click re-raises what is not its own, so for both programs the console script (the main module) ends
    # the process; click's and argparse's frames are never shown. basic: the program's own frames; enhanced
    # and full: also the standard library, as its bare module (json)
    ("sigclick", "basic"): OWN_CLICK,
    ("sigclick", "enhanced"): OWN_CLICK + " > json",
    ("sigclick", "full"): OWN_CLICK + " > json",
    ("sigarg", "basic"): OWN_ARGPARSE,
    ("sigarg", "enhanced"): OWN_ARGPARSE,
    ("sigarg", "full"): OWN_ARGPARSE,
}
ERROR_TYPE = {"sigclick": "json.decoder.JSONDecodeError", "sigarg": "ValueError"}


def attributes(items: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in items}


@pytest.mark.parametrize("level", ["basic", "enhanced", "full"])
@pytest.mark.parametrize("program", ["sigclick", "sigarg"])
def test_the_signature_arrives_on_the_wire(tmp_path: Path, program: str, level: str) -> None:
    """Two failing runs and one successful run: cli.command.errors counts both failures under one
    signature and error type; cli.command.invocations never carries a signature; from enhanced the failed
    spans carry it (the successful one does not), at full their exception events too; nothing the user
    typed, no path and no line number is in it."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sigstore.py").write_text(STORE)
    script = console_script(tmp_path, program, CLICK if program == "sigclick" else ARGPARSE)
    for argv in (["sync", USER_VALUE], ["sync", USER_VALUE + "2"]):
        result = run(tmp_path, [str(script), *argv], OTEL_EXPANSION_LEVEL=level)
        assert result.returncode == 1, result.stderr
    ok = run(tmp_path, [str(script), "sync", "[]" if program == "sigclick" else "--help"],
             OTEL_EXPANSION_LEVEL=level)
    assert ok.returncode == 0, ok.stderr
    home = tmp_path / "home"
    with otlp_server() as srv:
        flush = subprocess.run([str(BIN / "otel-expansion"), "flush", "--home", str(home)],
                               env=clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url), capture_output=True,
                               text=True, timeout=120)
        assert flush.returncode == 0, flush.stderr
        values = metric_values(srv.requests)
        spans = [s for s in spans_of(srv.requests) if s.name.startswith(program)]
    expected = EXPECTED[(program, level)]
    errors = {dict(k[1]).get("cli.error.signature"): v for k, v in values.items() if k[0] == "cli.command.errors"}
    assert errors == {expected: 2}
    assert {dict(k[1])["error.type"] for k in values if k[0] == "cli.command.errors"} == {ERROR_TYPE[program]}
    invocations = [dict(k[1]) for k in values if k[0] == "cli.command.invocations"]
    assert invocations and all("cli.error.signature" not in a for a in invocations)
    if level == "basic":
        assert spans == []
    else:
        sigs = sorted(str(attributes(s.attributes).get("cli.error.signature")) for s in spans)
        assert sigs == sorted([expected, expected, "None"])
        events = [attributes(e.attributes).get("cli.error.signature") for s in spans for e in s.events
                  if e.name == "exception"]
        assert events == ([expected, expected] if level == "full" else [])
    wire = b"".join(r.body for r in srv.requests)
    assert b"zo\xc3\xab.okonkwo" not in wire and b"payroll" not in wire
    assert ".py" not in expected and "/" not in expected and not any(c.isdigit() for c in expected)


def test_python_and_script_paths_do_not_change_it(tmp_path: Path) -> None:
    """The same program installed under two different prefixes gives the same signature."""
    sigs = []
    for prefix in ("a", "b/c"):
        root = tmp_path / prefix
        (root / "site").mkdir(parents=True)
        (root / "site" / "sigstore.py").write_text(STORE)
        script = console_script(root, "sigarg", ARGPARSE)
        run(root, [str(script), "sync", "x"], OTEL_EXPANSION_LEVEL="basic")
        from tests.conftest import journal_records

        sigs += [c.get("sig") for r in journal_records(root / "home") for c in r["commands"]]  # type: ignore[attr-defined]
    assert sigs == [EXPECTED[("sigarg", "basic")]] * 2

