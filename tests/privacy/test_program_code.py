"""Whose code is it: the program's files, not the files it imports from the user's folder at run time.

Real programs in subprocesses (nothing declared for the suite there, see tests/conftest.py): a task runner
that imports the user's task file from the current directory, one that turns the user's functions into
commands, a plain argparse script whose failure is seen only at the exit, and a script with a sibling
module of its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env, journal_records

SECRET_WORDS = ("jane", "payroll", "acme", "Hunter2")

TASKS = '''
def migrate_jane_payroll_db():
    raise RuntimeError("cannot connect to payroll-db.acme-secret.internal with password Hunter2Secret!")

def deploy_jane_payroll_to_prod():
    print("deployed")
'''

RUNNER = '''
import importlib, os, sys
import click
import otel_expansion
otel_expansion.init("taskrunner", "1.0.0")

@click.group()
def cli():
    """Runs the user's task file (like invoke or fabric)."""

@cli.command()
@click.argument("task")
@click.option("--file", "taskfile", default="tasks")
def run(task, taskfile):
    sys.path.insert(0, os.getcwd())
    getattr(importlib.import_module(taskfile), task)()

if os.environ.get("AS_COMMANDS"):
    sys.path.insert(0, os.getcwd())
    tasks = importlib.import_module("jane_tasks")
    for name in dir(tasks):
        if not name.startswith("_"):
            cli.add_command(click.Command(name, callback=getattr(tasks, name)))
cli()
'''

PLAIN = '''
import argparse
import helpers
import otel_expansion
otel_expansion.init("plaincli", "1.0.0")

def main():
    p = argparse.ArgumentParser(prog="plaincli")
    p.add_argument("order")
    a = p.parse_args()
    helpers.check(a.order)

main()
'''

HELPERS = '''
def check(order):
    raise RuntimeError(f"order rejected for {order}")
'''


def _run(script: Path, args: list[str], cwd: Path, home: Path, level: str, **env: str) -> list[dict[str, object]]:
    result = subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, env=clean_env(home, OTEL_EXPANSION_SEND="false",
                                                      OTEL_EXPANSION_LEVEL=level, **env))
    assert "telemetry" not in result.stderr  # no warning of ours: the host's own output only
    return [cmd for record in journal_records(home) for cmd in record["commands"]]  # type: ignore[attr-defined]


@pytest.fixture
def runner(tmp_path: Path) -> tuple[Path, Path]:
    app = tmp_path / "app"
    work = tmp_path / "work"
    app.mkdir()
    work.mkdir()
    (app / "runner.py").write_text(RUNNER, encoding="utf-8")
    (work / "jane_tasks.py").write_text(TASKS, encoding="utf-8")
    return app / "runner.py", work


@pytest.mark.parametrize("level", ["basic", "full"])
def test_a_task_file_from_the_users_folder_is_not_the_programs(runner: tuple[Path, Path], tmp_path: Path,
                                                               level: str) -> None:
    """Its module and function names are ``<dynamic>`` in the signature, its literals are not the
    program's text (the message is a placeholder), at every level."""
    script, work = runner
    home = tmp_path / f"home-{level}"
    [cmd] = _run(script, ["run", "migrate_jane_payroll_db", "--file", "jane_tasks"], work, home, level)
    assert cmd["exit"] == 1 and cmd["error"] == "RuntimeError"
    assert cmd["sig"] == "__main__:<module> > __main__:run > <dynamic>"
    text = repr(cmd)
    assert not [w for w in SECRET_WORDS if w.lower() in text.lower()]
    if level == "full":
        assert cmd["exception"]["message"] == "<value>"  # type: ignore[index]


def test_commands_made_from_the_users_functions_are_dynamic(runner: tuple[Path, Path], tmp_path: Path) -> None:
    """click derives a command's name from a function's name: the user's function, the user's name."""
    script, work = runner
    [cmd] = _run(script, ["deploy_jane_payroll_to_prod"], work, tmp_path / "home", "basic", AS_COMMANDS="1")
    assert cmd["exit"] == 0
    assert cmd["name"] == "<dynamic>"


@pytest.mark.parametrize("level", ["basic", "full"])
def test_the_programs_own_files_are_its_code_also_when_the_failure_is_seen_at_exit(tmp_path: Path,
                                                                                 level: str) -> None:
    """A plain argparse script (no subcommand: the run ends at the exit) with a sibling module: both are
    the program's files, so the signature names their frames and the message keeps its template."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "plain.py").write_text(PLAIN, encoding="utf-8")
    (app / "helpers.py").write_text(HELPERS, encoding="utf-8")
    [cmd] = _run(app / "plain.py", ["jane-order-4711"], tmp_path, tmp_path / "home", level)
    assert cmd["exit"] == 1
    assert cmd["sig"] == "__main__:<module> > __main__:main > helpers:check"
    if level == "full":
        assert cmd["exception"]["message"] == "order rejected for <value>"  # type: ignore[index]
    assert "jane" not in repr(cmd)


AUTH_APP = '''
import click
import otel_expansion
import auth
otel_expansion.init("authapp", "1.0.0")

@click.group()
def cli():
    pass

@cli.command("auth:login")
@click.argument("user")
def login(user):
    auth.login(user)

cli()
'''

AUTH = '''
def login(user):
    raise RuntimeError("login refused")
'''


def test_names_with_a_secret_word_before_a_colon_arrive_whole(tmp_path: Path) -> None:
    """A heroku-style command ``auth:login`` failing in the program's module ``auth``: on the wire the
    command and the signature are the names the code fixes (the free-text rule for ``password: x`` once
    made them ``auth:<secret>``), and the user's argument is nowhere."""
    from tests.export.servers import otlp_server
    from tests.export.test_sender import flush, metric_values, spans_of

    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text(AUTH_APP, encoding="utf-8")
    (app / "auth.py").write_text(AUTH, encoding="utf-8")
    home = tmp_path / "home"
    [cmd] = _run(app / "main.py", ["auth:login", "jane.doe"], tmp_path, home, "enhanced")
    assert cmd["name"] == "auth:login" and cmd["sig"] == "__main__:<module> > __main__:login > auth:login"
    with otlp_server() as srv:
        assert flush(home, srv.url).ok
        spans = spans_of(srv.requests)
        values = metric_values(srv.requests)
    [span] = spans
    attrs = {kv.key: kv.value.string_value for kv in span.attributes}
    assert span.name == "authapp auth:login" and attrs["cli.command.name"] == "auth:login"
    assert attrs["cli.error.signature"] == "__main__:<module> > __main__:login > auth:login"
    errors = [dict(a) for (name, a) in values if name == "cli.command.errors"]
    assert errors and all(e["cli.error.signature"] == "__main__:<module> > __main__:login > auth:login" for e in errors)
    assert "jane" not in repr(spans) + repr(values)
