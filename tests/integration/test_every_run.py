"""Every run recorded, end to end in real subprocesses: programs on optparse, python-fire and docopt (console
scripts as pip writes them) and on no framework at all, with init() and under opentelemetry-instrument;
runs that exec another program; a real third-party CLI whose library raises SystemExit itself (pyflakes);
the entry-point wrapper; and CLI runs under opentelemetry-instrument batching like init()'s."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, journal_records, settled, wait_until
from tests.export.servers import otlp_server
from tests.export.test_sender import spans_of

BIN = Path(sys.executable).parent
INSTRUMENT = str(BIN / "opentelemetry-instrument")
LOCAL = {"OTEL_EXPANSION_SEND": "false"}
OURS = {"OTEL_PYTHON_DISTRO": "otel_expansion", "OTEL_PYTHON_CONFIGURATOR": "otel_expansion"}


def commands(home: Path) -> list[tuple[str, int | None, str | None, str | None]]:
    return [(c["name"], c.get("exit"), c.get("error"), c.get("outcome"))  # type: ignore[index, union-attr]
            for r in journal_records(home) for c in r.get("commands") or ()]  # type: ignore[attr-defined]


def console_script(tmp_path: Path, name: str, module_source: str, init: bool = True) -> Path:
    """A program installed the way pip installs one: a module, and a console script calling its main()."""
    pkg = tmp_path / "site"
    pkg.mkdir(parents=True, exist_ok=True)
    head = f"import otel_expansion\notel_expansion.init({name!r})\n" if init else ""
    (pkg / f"{name}_cli.py").write_text(head + textwrap.dedent(module_source))
    script = tmp_path / "bin" / name
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!{sys.executable}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
                      f"from {name}_cli import main\nif __name__ == '__main__':\n"
                      "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                      "    sys.exit(main())\n")
    script.chmod(0o755)
    return script


def run(tmp_path: Path, argv: list[str], instrument: bool = False, telemetry: bool = True,
        **env: str) -> subprocess.CompletedProcess[bytes]:
    extra = {**LOCAL, **env}
    if not telemetry:
        extra["DO_NOT_TRACK"] = "1"
    e = clean_env(tmp_path / "home", **extra)
    e["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), e["PYTHONPATH"]])
    if instrument:
        e.update(OURS)
        script = Path(argv[1]).name if len(argv) > 1 else "-"
        if not script.startswith("-"):
            # these console scripts live in a temp folder, published by no installed distribution: the
            # deployer names the service, as opentelemetry-instrument's configuration (privacy.vocabulary)
            e.setdefault("OTEL_SERVICE_NAME", script.removesuffix(".py"))
        argv = [INSTRUMENT, *argv]
    return subprocess.run(argv, env=e, capture_output=True, timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL)


FIRE = """
import sys

import fire

class Calc:
    def add(self, a, b):
        return a + b

    def fail(self):
        raise ValueError("no")

    class admin:
        def purge(self):
            return "purged"

def main():
    if sys.argv[1:2] == ["--as-dict"]:
        del sys.argv[1]
        commands = {"add": Calc().add, "admin": Calc.admin}
        commands.setdefault(sys.argv[1], print)  # a key the user typed
        fire.Fire(commands)
    else:
        fire.Fire(Calc)
"""

DOCOPT = '''
USAGE = """Usage:
  ship remote add <name> [--force]
  ship send <x>
  ship (-h | --help)
"""
from docopt import docopt

def main():
    args = docopt(USAGE)
    if args["send"] and args["<x>"] == "bad":
        raise RuntimeError("boom")
    print("ok", args["remote"], args["add"], args["send"])
'''

OPTPARSE = """
import optparse
import sys

def main():
    parser = optparse.OptionParser(prog="opty")
    parser.disable_interspersed_args()
    parser.add_option("--count", type="int", default=0)
    opts, args = parser.parse_args()
    if args[:1] == ["check"]:
        sub = optparse.OptionParser(prog="opty check")
        sub.add_option("--deep", action="store_true")
        sub.parse_args(args[1:])
    return opts.count
"""

FRAMEWORK_CASES = [
    ("calc", FIRE, ["add", "1", "2"], 0, ("add", 0, None, None)),
    ("calc", FIRE, ["admin", "purge"], 0, ("admin purge", 0, None, None)),
    ("calc", FIRE, ["nope"], 2, ("calc", 2, "fire.core.FireError", None)),
    ("calc", FIRE, ["fail"], 1, ("fail", 1, "ValueError", None)),
    ("calc", FIRE, ["--help"], 0, ("calc", 0, None, None)),
    ("calc", FIRE, ["--as-dict", "admin", "purge"], 0, ("admin purge", 0, None, None)),  # literal keys
    ("calc", FIRE, ["--as-dict", "jane", "x"], 0, ("<dynamic>", 0, None, None)),  # a key from argv
    ("ship", DOCOPT, ["remote", "add", "x", "--force"], 0, ("remote add", 0, None, None)),
    ("ship", DOCOPT, ["send", "bad"], 1, ("send", 1, "RuntimeError", None)),
    ("ship", DOCOPT, ["wrong"], 1, ("ship", 1, "docopt.DocoptExit", None)),
    ("ship", DOCOPT, ["--help"], 0, ("ship", 0, None, None)),
    ("opty", OPTPARSE, ["--count", "3"], 3, ("opty", 3, "3", None)),
    ("opty", OPTPARSE, ["--count", "x"], 2, ("opty", 2, "optparse.OptionValueError", None)),
    ("opty", OPTPARSE, ["check", "--deep"], 0, ("check", 0, None, None)),
    ("opty", OPTPARSE, ["check", "--nope"], 2, ("check", 2, "optparse.BadOptionError", None)),
]


@pytest.mark.parametrize("mode", ["init", pytest.param("instrument", marks=pytest.mark.slow)])
def test_fire_docopt_optparse_programs(tmp_path: Path, mode: str) -> None:
    """Command names and usage errors like click's, exit status as the shell saw it, output untouched."""
    for i, (name, source, args, code, expected) in enumerate(FRAMEWORK_CASES):
        where = tmp_path / str(i)
        script = console_script(where, name, source, init=mode == "init")
        bare = run(where, [sys.executable, str(script), *args], telemetry=False)
        result = run(where, [sys.executable, str(script), *args], instrument=mode == "instrument")
        assert (result.returncode, result.stdout, result.stderr) == (bare.returncode, bare.stdout, bare.stderr)
        assert result.returncode == code, (args, result.stderr)
        recorded = commands(where / "home")
        assert recorded == [expected], (name, args)


PLAIN = """
import sys

def main():
    if sys.argv[1:] == ["fail"]:
        raise KeyError("k")
    return len(sys.argv) - 1
"""


@pytest.mark.parametrize("mode", ["init", "instrument"])
def test_plain_argv_program(tmp_path: Path, mode: str) -> None:
    """No framework: one invocation named after the console script, exit and error exact."""
    script = console_script(tmp_path, "plainy", PLAIN, init=mode == "init")
    for args, code, expected in (([], 0, ("plainy", 0, None, None)), (["a", "b"], 2, ("plainy", 2, "2", None)),
                                 (["fail"], 1, ("plainy", 1, "KeyError", None))):
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
        result = run(tmp_path, [sys.executable, str(script), *args], instrument=mode == "instrument")
        assert result.returncode == code
        assert commands(tmp_path / "home") == [expected]


def test_python_c_under_instrument_records_nothing(tmp_path: Path) -> None:
    """No program, no record: ``opentelemetry-instrument python -c ...``."""
    result = run(tmp_path, [sys.executable, "-c", "print(1)"], instrument=True)
    assert result.returncode == 0 and result.stdout == b"1\n"
    assert commands(tmp_path / "home") == []


EXECS = """
import os
import sys

import otel_expansion

def main():
    otel_expansion.set_command("run")
    print("before", flush=True)
    os.execv(sys.executable, [sys.executable, "-c", "import sys; print('after'); sys.exit(7)"])
"""


@pytest.mark.parametrize("mode", ["init", "instrument"])
def test_exec_is_recorded_before_the_image_is_replaced(tmp_path: Path, mode: str) -> None:
    """os.exec*: the run is journaled first (outcome unknown: the new program owns the exit status)."""
    script = console_script(tmp_path, "execy", EXECS, init=mode == "init")
    bare = run(tmp_path, [sys.executable, str(script)], telemetry=False)
    result = run(tmp_path, [sys.executable, str(script)], instrument=mode == "instrument")
    assert (result.returncode, result.stdout, result.stderr) == (bare.returncode, bare.stdout, bare.stderr)
    assert result.returncode == 7 and result.stdout == b"before\nafter\n"
    assert commands(tmp_path / "home") == [("run", None, None, "unknown")]


def test_pyflakes_raises_systemexit_itself(tmp_path: Path) -> None:
    """pyflakes ends with ``raise SystemExit(warnings > 0)`` inside main(): never recorded as success.
    Exact on 3.12+ (sys.monitoring) and with the entry-point wrapper everywhere; else ``unknown``."""
    (tmp_path / "bad.py").write_text("import os\n")
    (tmp_path / "site").mkdir()
    pyflakes = BIN / "pyflakes"
    wrapped = tmp_path / "pyflakes_init"
    lines = pyflakes.read_text().splitlines(keepends=True)
    lines[1] = "import otel_expansion; otel_expansion.init('pyflakes'); " + lines[1]
    wrapped.write_text("".join(lines))
    bare = run(tmp_path, [sys.executable, str(pyflakes), "bad.py"], telemetry=False)
    assert bare.returncode == 1
    exact = sys.version_info >= (3, 12)
    expected = ("pyflakes", 1, "1", None) if exact else ("pyflakes", None, None, "unknown")
    for argv, instrument in (([sys.executable, str(wrapped), "bad.py"], False),
                             ([sys.executable, str(pyflakes), "bad.py"], True)):
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
        result = run(tmp_path, argv, instrument=instrument)
        assert (result.returncode, result.stdout, result.stderr) == (bare.returncode, bare.stdout, bare.stderr)
        # the wrapped copy's file name is no published console script: the service name stands for it
        assert commands(tmp_path / "home") == [expected], argv
    # the console-script form of the wrapper: exact on every Python, no code change
    shutil.rmtree(tmp_path / "home", ignore_errors=True)
    result = run(tmp_path, [str(BIN / "otel-expansion-run"), "pyflakes.api:main", "bad.py"])
    assert (result.returncode, result.stdout) == (1, bare.stdout)
    assert commands(tmp_path / "home") == [("pyflakes", 1, "1", None)]


def test_decorated_entry_point_is_exact(tmp_path: Path) -> None:
    """``@otel_expansion.wrap`` on main: a SystemExit raised by hand inside it is the recorded exit."""
    source = """
    import sys
    import otel_expansion

    @otel_expansion.wrap
    def main():
        if sys.argv[1:] == ["raise"]:
            raise SystemExit(True)
        return 4
    """
    script = console_script(tmp_path, "wrapped", source)
    for args, code, expected in ((["raise"], 1, ("wrapped", 1, "1", None)), ([], 4, ("wrapped", 4, "4", None))):
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
        assert run(tmp_path, [sys.executable, str(script), *args]).returncode == code
        assert commands(tmp_path / "home") == [expected]


def _spans(requests: list[Any]) -> int:
    return len([s for s in spans_of(requests) if s.name.startswith("plainy")])


def test_instrumented_cli_runs_batch_like_init_runs(tmp_path: Path) -> None:
    """Five CLI runs under opentelemetry-instrument: one send round (the first run's), the rest wait for
    the export interval and leave together; before, every run forced its own round of requests."""
    script = console_script(tmp_path, "plainy", PLAIN, init=False)
    home = tmp_path / "home"
    with otlp_server() as srv:
        for _ in range(5):
            result = run(tmp_path, [sys.executable, str(script), "a"], instrument=True,
                         OTEL_EXPANSION_SEND="true", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
            assert result.returncode == 1
            wait_until(lambda: not _sender_running(home), what="sender finished")
        first_round = len(srv.requests)
        assert 1 <= first_round <= 3  # spans, metrics, self-health of the first run's round only
        assert _spans(srv.requests) == 1
        flush = subprocess.run([str(BIN / "otel-expansion"), "flush", "--home", str(home)],
                               env=clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url), capture_output=True,
                               timeout=120)
        assert flush.returncode == 0, flush.stderr
        wait_until(lambda: settled(home), what="all sent")
        assert _spans(srv.requests) == 5  # nothing lost: the other four runs in one batch
        assert len(srv.requests) - first_round <= 3


def _sender_running(home: Path) -> bool:
    from otel_expansion.export import launcher

    return launcher.sender_running(str(home))


def test_console_script_form_of_the_wrapper(tmp_path: Path) -> None:
    """A console script pointed at ``otel_expansion.entry:main``, its real entry point named in the
    ``otel_expansion.entry`` group: no code change, every exit exact, the distribution's version."""
    site = tmp_path / "site"
    (site / "mytool-1.2.dist-info").mkdir(parents=True)
    (site / "mytool-1.2.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: mytool\nVersion: 1.2\n")
    (site / "mytool-1.2.dist-info" / "entry_points.txt").write_text(
        "[console_scripts]\nmytool = otel_expansion.entry:main\n\n[otel_expansion.entry]\nmytool = mytool_cli:main\n")
    (site / "mytool_cli.py").write_text(textwrap.dedent("""
        import sys

        def main():
            print("argv0", sys.argv[0].rsplit("/", 1)[-1], sys.argv[1:])
            if sys.argv[1:] == ["raise"]:
                raise SystemExit(5)
        """))
    script = tmp_path / "bin" / "mytool"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport re\nimport sys\nfrom otel_expansion.entry import main\n"
                      "if __name__ == '__main__':\n    sys.exit(main())\n")
    for args, code, expected in ((["raise"], 5, ("mytool", 5, "5", None)), (["x"], 0, ("mytool", 0, None, None))):
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
        result = run(tmp_path, [sys.executable, str(script), *args])
        assert result.returncode == code, result.stderr
        assert result.stdout == f"argv0 mytool {args}\n".encode()
        assert commands(tmp_path / "home") == [expected]
        record = journal_records(tmp_path / "home")[0]
        assert record["resource"]["service.version"] == "1.2"  # type: ignore[index]
