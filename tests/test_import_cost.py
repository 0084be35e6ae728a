"""What a CLI's own process imports: pins the startup diet that keeps the overhead in milliseconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, clean_env

PROBE = """
import json, sys
before = set(sys.modules)
import otel_expansion
otel_expansion.init("m")
with otel_expansion.command("deploy"):
    otel_expansion.feature("export", fmt="csv")
otel_expansion.shutdown()
print(json.dumps(sorted(set(sys.modules) - before)))
"""

HEAVY = ("opentelemetry", "google.protobuf", "sqlite3", "psutil", "logging", "subprocess", "threading", "uuid",
         "platform", "dataclasses", "typing", "enum", "re", "json", "http", "ssl", "socket", "importlib.abc")


STDLIB_ON_THE_CLI_PATH = {"__future__", "atexit", "binascii", "fcntl"}
"""Every standard-library module a recorded run may add to what the bare interpreter has loaded: the
``annotations`` future (the package's modules use it), ``atexit`` (the exit hook), ``binascii`` (the
journal record's CRC) and ``fcntl`` (the drop counter's lock, the first run of a home only). Everything
else a CLI's process imports is the package's own, or heavier than the budget allows."""


def test_cli_process_imports_nothing_heavy(tmp_path: Path) -> None:
    """init + a recorded command + exit load no OTel, SQLite, logging, threading, typing or regex modules:
    of the standard library, only the few named in STDLIB_ON_THE_CLI_PATH, on the first run and later."""
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")
    for run in range(2):  # the first run creates the home; the second is the steady state
        result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                                timeout=30, cwd=ROOT, check=True)
        loaded = json.loads(result.stdout)
        assert len(list((tmp_path / "home").glob("journal*/*.rec"))) == run + 1  # the probe recorded
        offenders = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
        assert offenders == []
        assert {m for m in loaded if not m.startswith("otel_expansion")} <= STDLIB_ON_THE_CLI_PATH


IMPORT_PROBE = """
import json, sys
before = set(sys.modules)
import otel_expansion
after = set(sys.modules) - before
public = vars(otel_expansion).keys() & set(otel_expansion.__all__)
print(json.dumps({"loaded": sorted(after), "public": sorted(public)}))
"""


def test_importing_the_package_loads_no_other_module(tmp_path: Path) -> None:
    """``import otel_expansion`` adds exactly one module: none of the package's others and nothing of the
    standard library (no dataclasses, typing, enum, re, json, threading, not even ``__future__``); its
    public names load on first use."""
    env = clean_env(tmp_path / "home")
    result = subprocess.run([sys.executable, "-c", IMPORT_PROBE], env=env, capture_output=True, text=True,
                            timeout=30, cwd=ROOT, check=True)
    found = json.loads(result.stdout)
    assert found["loaded"] == ["otel_expansion"]
    assert found["public"] == []  # nothing resolved at import: each name is loaded by its first use


FIRST_USE_PROBE = """
import otel_expansion
for name in otel_expansion.__all__:
    value = getattr(otel_expansion, name)
    assert vars(otel_expansion)[name] is value, name
print("ok")
"""


def test_public_names_load_on_first_use_and_stay(tmp_path: Path) -> None:
    """Every name in ``__all__`` resolves through the lazy table and is then a plain module attribute (in a
    process of its own: resolving ``wrap`` imports a submodule, which would show in this one's package)."""
    result = subprocess.run([sys.executable, "-c", FIRST_USE_PROBE], env=clean_env(tmp_path / "home"),
                            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.stdout == "ok\n", result.stderr


CLICK_PROBE = """
import atexit, json, sys
def report():  # registered first, so it runs last: after the exit path has written the journal record
    sys.stderr.write("MODULES " + json.dumps(sorted(m for m in sys.modules if m.startswith("otel_expansion"))) + "\\n")
atexit.register(report)
import click
import otel_expansion
otel_expansion.init("hello-cli", "1.0")

@click.command()
@click.argument("name")
def hello(name):
    click.echo(f"hello {name}")

hello()
"""

MAX_CLI_MODULES = 7
"""Package modules (packages included) a one-command click run loads, init to exit, in a home that has
recorded before and is not due a send; the budget is 20 (DESIGN.md, CLI path). Round 3 brought it from 28
to 19 by folding what every recorded run loads together (the environment, installation id and session into
collect/resource.py, CPU and memory readings into collect/recorder.py, CI detection into config/settings.py)
and importing the rest where it is needed (config/warn.py on the first problem, _version.py when
``__version__`` is asked for, export/launcher.py only to start a sender: whether one is due is decided in
the journal package); then to 17: privacy/vocabulary.py loads with the first name it must admit (a program
named by its executable needs none) and privacy/names.py only for declared names, allow-listed resource
attributes or a version that is not a plain release; then to 16: the journal's version and directories live
in the package ``otel_expansion.journal`` and the run's record is put together by the runtime, so
journal/record.py (the reading side: types, check, upgrades) stays in the sender. Then to 13: the journal's
whole write side lives in the package (journal/store.py, the reading side, stays in the sender and the
tools), and a home that proved the service name plain (collect/resource.py, ``plain-name``) loads neither
``otel_expansion.privacy`` nor its patterns. Then to 8: what every recorded run loaded as a module beside
its package is the package itself (the levels and the settings are ``otel_expansion.config``, the recorder,
resource and session ``otel_expansion.collect``, the exit-status observer is in
``otel_expansion.collect.integrations``). Then to 7: where state lives and how its files are opened is
``otel_expansion.config`` too (config/paths.py only gives those names under its old module name, for the
sender and the tools). A new module on this path must push another out."""

CLICK_STDLIB: set[str] = set()
"""Standard-library modules a one-command click run loads beyond the same run without telemetry: none (the
journal record's CRC is computed without ``binascii``, a shared library: ~0.35 ms). (click itself brings
``__future__``, ``contextlib``, ``enum``, ``re``, ``typing``...; none of them is loaded on the package's
behalf, by the pure-Python probe above.)"""

BARE_CLICK_PROBE = """
import atexit, json, sys
def report():
    sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
atexit.register(report)
import click

@click.command()
@click.argument("name")
def hello(name):
    click.echo(f"hello {name}")

hello()
"""


def test_one_command_click_run_module_budget(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")
    loaded: list[str] = []
    for _ in range(2):  # the first run also creates the home; the second is the steady state
        result = subprocess.run([sys.executable, "-c", CLICK_PROBE, "you"], env=env, capture_output=True, text=True,
                                timeout=60, cwd=ROOT, check=True)
        assert result.stdout == "hello you\n"
        line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES "))
        loaded = json.loads(line.removeprefix("MODULES "))
    assert len(list((tmp_path / "home").glob("journal*/*.rec"))) == 2  # both runs were recorded
    assert "otel_expansion.journal" in loaded and "otel_expansion.journal.store" not in loaded
    assert not any(m.startswith("otel_expansion.privacy") for m in loaded)  # the service name's proof held
    assert "otel_expansion.config.file" not in loaded and "otel_expansion.privacy.consent" not in loaded
    assert "otel_expansion.export.launcher" not in loaded and "otel_expansion.config.warn_once" not in loaded
    assert "otel_expansion.privacy.vocabulary" not in loaded and "otel_expansion.privacy.names" not in loaded
    assert "otel_expansion.journal.record" not in loaded
    assert "otel_expansion.config.paths" not in loaded  # its code is otel_expansion.config's
    assert len(loaded) <= MAX_CLI_MODULES, loaded


def test_one_command_click_run_adds_no_stdlib_module(tmp_path: Path) -> None:
    """The standard-library modules of a click run with telemetry on, less those of the same run without
    it, are exactly CLICK_STDLIB, in a home's steady state."""
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")

    def modules(probe: str) -> set[str]:
        result = subprocess.run([sys.executable, "-c", probe, "you"], env=env, capture_output=True, text=True,
                                timeout=60, cwd=ROOT, check=True)
        assert result.stdout == "hello you\n"
        line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES "))
        return set(json.loads(line.removeprefix("MODULES ")))

    ours_probe = CLICK_PROBE.replace('m.startswith("otel_expansion")', "True")
    modules(ours_probe)  # creates the home
    ours, bare = modules(ours_probe), modules(BARE_CLICK_PROBE)
    assert {m for m in ours - bare if not m.startswith("otel_expansion")} == CLICK_STDLIB


SPEC_PROBE = """
import importlib.machinery, json, pkgutil, sys
import otel_expansion
finder = next(f for f in sys.meta_path if getattr(f, "otel_expansion_finder", False) is True)
out = []
for info in pkgutil.walk_packages(otel_expansion.__path__, "otel_expansion.", onerror=lambda name: None):
    name = info.name
    parent = sys.modules[name.rpartition(".")[0]] if name.rpartition(".")[0] in sys.modules else None
    if parent is None:
        continue
    ours = finder.find_spec(name, list(parent.__path__))
    std = importlib.machinery.PathFinder.find_spec(name, list(parent.__path__))
    out.append([name, [ours.origin, type(ours.loader).__name__, ours.submodule_search_locations, ours.cached,
                       ours.has_location],
                [std.origin, type(std.loader).__name__, std.submodule_search_locations, std.cached, std.has_location]])
collect = list(sys.modules["otel_expansion.collect"].__path__)
print(json.dumps({"specs": out, "foreign": finder.find_spec("json", None) is None
                  and finder.find_spec("otel_expansion.collect.nothing_here", collect) is None
                  and finder.find_spec("otel_expansion.collect", ["/elsewhere/collect"]) is None}))
"""


def test_the_package_finder_gives_the_specs_pathfinder_gives(tmp_path: Path) -> None:
    """The finder ``import otel_expansion`` installs finds each of the package's modules and packages at the
    very file, with the same standard loader, search locations and cache path, as Python's own PathFinder;
    it finds nothing outside the package, nothing that is not there, and nothing for a parent whose
    ``__path__`` is not the package's own (the standard finders then decide)."""
    result = subprocess.run([sys.executable, "-c", SPEC_PROBE], env=clean_env(tmp_path / "home"),
                            capture_output=True, text=True, timeout=120, cwd=ROOT, check=True)
    found = json.loads(result.stdout)
    assert len(found["specs"]) > 100  # walk_packages imported every package: all their modules compared
    for name, ours, std in found["specs"]:
        assert ours == std, name
    assert found["foreign"] is True


def test_a_recorded_cli_run_hands_the_finder_back(tmp_path: Path) -> None:
    """Once a CLI run is recorded, the package's finder is off ``sys.meta_path`` (it would keep the package
    reachable into the interpreter's finalization); a later import of the package's modules still works."""
    probe = ("import sys, otel_expansion\n"
             "assert any(getattr(f, 'otel_expansion_finder', False) for f in sys.meta_path)\n"
             "otel_expansion.init('m')\n"
             "otel_expansion.shutdown()\n"
             "assert not any(getattr(f, 'otel_expansion_finder', False) for f in sys.meta_path)\n"
             "import otel_expansion.config.file\n"
             "print('ok')\n")
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.stdout == "ok\n", result.stderr


def test_an_import_hook_put_ahead_still_sees_the_package_modules_first(tmp_path: Path) -> None:
    """The finder goes just before PathFinder: a hook the program or a tool installed ahead of it (typeguard,
    beartype's claw, pytest's assertion rewriting) is still asked about every module of the package."""
    probe = ("import sys\n"
             "asked = []\n"
             "class Hook:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        asked.append(name)\n"
             "sys.meta_path.insert(0, Hook())\n"
             "import otel_expansion.config.paths\n"
             "import importlib.machinery as m\n"
             "i = next(i for i, f in enumerate(sys.meta_path) if getattr(f, 'otel_expansion_finder', False))\n"
             "print(sys.meta_path[i + 1] is m.PathFinder, [n for n in asked if n.startswith('otel_expansion')])\n")
    result = subprocess.run([sys.executable, "-c", probe], env=clean_env(tmp_path / "home"), capture_output=True,
                            text=True, timeout=60, cwd=ROOT, check=True)
    assert result.stdout.strip() == "True ['otel_expansion', 'otel_expansion.config', 'otel_expansion.config.paths']"
