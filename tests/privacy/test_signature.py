"""``cli.error.signature``: the traceback frames a level allows, named only by what the program's code fixes."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from otel_expansion.config import Level
from otel_expansion.privacy import vocabulary
from otel_expansion.privacy.vocabulary import DYNAMIC, signature

HERE = __name__
P = f"{HERE}:catch > {HERE}:<lambda>"  # where the tests catch: catch(lambda: ...)

APP = '''
import json


def outer(n=0):
    return middle(n)


def middle(n):
    return inner(n)


def inner(n):
    if n:
        return inner(n - 1)
    raise RuntimeError("/home/alice.smith/secret.txt alice@example.org")


def through_lambda():
    f = lambda: [x for x in [json.loads("{not json")]]
    return f()


def through_library(fn):
    return fn()


def chained():
    try:
        inner(0)
    except RuntimeError as err:
        raise ValueError("wrapped") from err
'''

THIRD = '''
def call(fn):
    return helper(fn)


def helper(fn):
    return fn()


def boom():
    raise KeyError("token=ghp_secret")
'''


def catch(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("no exception")


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, object]]:
    """``sig_app`` (the program's own module, beside the program) and ``sig_third`` (an installed
    distribution's module, in a ``site-packages`` folder), both real files, imported."""
    own, site = tmp_path / "src", tmp_path / "lib" / "site-packages"
    own.mkdir()
    site.mkdir(parents=True)
    (own / "sig_app.py").write_text(APP, encoding="utf-8")
    (site / "sig_third.py").write_text(THIRD, encoding="utf-8")
    monkeypatch.syspath_prepend(str(own))
    monkeypatch.syspath_prepend(str(site))
    for name in ("sig_app", "sig_third"):
        sys.modules.pop(name, None)
    yield importlib.import_module("sig_app"), importlib.import_module("sig_third")
    for name in ("sig_app", "sig_third"):
        sys.modules.pop(name, None)


def sig(exc: BaseException, level: Level = Level.BASIC) -> str | None:
    return signature(exc, level)


def test_own_frames_outermost_first_without_lines_paths_or_values(modules: tuple[object, object]) -> None:
    """The program's own frames as ``module:function``, outermost (where it was caught) first; nothing of
    the message, the files' paths or the line numbers."""
    app, _ = modules
    exc = catch(lambda: app.outer())  # type: ignore[attr-defined]
    expected = f"{P} > sig_app:outer > sig_app:middle > sig_app:inner"
    for level in (Level.BASIC, Level.ENHANCED, Level.FULL):
        assert sig(exc, level) == expected
    assert sig(exc, Level.OFF) is None
    assert "alice" not in expected and "/" not in expected


def test_recursion_is_collapsed(modules: tuple[object, object]) -> None:
    """Consecutive repeats of a frame (recursion) are one frame: the depth reached is not a new group."""
    app, _ = modules
    shallow, deep = catch(lambda: app.outer(0)), catch(lambda: app.outer(50))  # type: ignore[attr-defined]
    assert sig(shallow) == sig(deep) == f"{P} > sig_app:outer > sig_app:middle > sig_app:inner"


def test_deep_stacks_keep_the_outermost_two_and_the_innermost_six() -> None:
    """More than 8 frames: the outermost 2, ``…``, the innermost 6."""
    def f0() -> None:
        f1()

    def f1() -> None:
        f2()

    def f2() -> None:
        f3()

    def f3() -> None:
        f4()

    def f4() -> None:
        f5()

    def f5() -> None:
        f6()

    def f6() -> None:
        f7()

    def f7() -> None:
        f8()

    def f8() -> None:
        raise OSError("x")

    names = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"]
    got = sig(catch(f0))
    assert got is not None
    parts = got.split(" > ")
    assert len(parts) == 9 and parts[2] == "…"
    assert parts[:2] == [f"{HERE}:catch", f"{HERE}:f0"]
    assert parts[3:] == [f"{HERE}:{n}" for n in names[-6:]]


def test_third_party_frames_only_from_enhanced(modules: tuple[object, object]) -> None:
    """An installed distribution's module is not the program's: left out at basic, shown from enhanced."""
    app, third = modules
    exc = catch(lambda: third.call(app.outer))  # type: ignore[attr-defined]
    own = "sig_app:outer > sig_app:middle > sig_app:inner"
    assert sig(exc, Level.BASIC) == f"{P} > {own}"
    assert sig(exc, Level.ENHANCED) == f"{P} > sig_third:call > sig_third:helper > {own}"
    assert sig(exc, Level.FULL) == sig(exc, Level.ENHANCED)


def test_absent_when_no_frame_is_allowed(modules: tuple[object, object]) -> None:
    """Raised and caught inside third-party code only: no signature at basic (not an empty one); an
    exception never raised has no traceback and no signature."""
    _, third = modules
    try:
        third.boom()  # type: ignore[attr-defined]
    except KeyError as exc:
        exc.__traceback__ = exc.__traceback__.tb_next if exc.__traceback__ else None  # drop the test's frame
        assert sig(exc, Level.BASIC) is None
        assert sig(exc, Level.ENHANCED) == "sig_third:boom"
    assert sig(RuntimeError("never raised")) is None


def test_standard_library_is_its_bare_module_from_enhanced(modules: tuple[object, object]) -> None:
    """json's frames (decoder, scanner) become one ``json``; never at basic. The lambda keeps CPython's
    fixed name, and the comprehension frame (inlined on 3.12, not on 3.10/3.11) is dropped on every version."""
    app, _ = modules
    exc = catch(lambda: app.through_lambda())  # type: ignore[attr-defined]
    assert sig(exc, Level.BASIC) == f"{P} > sig_app:through_lambda > sig_app:<lambda>"
    assert sig(exc, Level.ENHANCED) == f"{P} > sig_app:through_lambda > sig_app:<lambda> > json"


def test_library_and_dispatch_frameworks_are_never_shown(modules: tuple[object, object]) -> None:
    """click's (a dispatch framework's) frames between the program's own are left out at every level."""
    import click

    app, _ = modules
    ctx = click.Context(click.Command("x"))
    exc = catch(lambda: app.through_library(lambda: ctx.invoke(app.outer)))  # type: ignore[attr-defined]
    for level in (Level.BASIC, Level.FULL):
        got = sig(exc, level)
        assert got == f"{P} > sig_app:through_library > {HERE}:<lambda> > sig_app:outer > sig_app:middle > " \
                      "sig_app:inner"
    tb, modules_on_stack = exc.__traceback__, set()
    while tb is not None:
        modules_on_stack.add(tb.tb_frame.f_globals.get("__name__"))
        tb = tb.tb_next
    assert "click.core" in modules_on_stack  # the frames left out were there


def test_chained_exceptions_use_the_one_that_ended_the_command(modules: tuple[object, object]) -> None:
    """``raise ... from err``: the signature is the raised exception's path, not its ``__cause__``'s."""
    app, _ = modules
    exc = catch(lambda: app.chained())  # type: ignore[attr-defined]
    assert exc.__cause__ is not None
    assert sig(exc) == f"{P} > sig_app:chained"
    assert sig(exc.__cause__) == "sig_app:chained > sig_app:inner"


SECRET = "_".join(["maria", "garcia", str(4111 * 1000)])  # made at run time: in no code


def test_exec_and_eval_code_is_a_placeholder(tmp_path: Path) -> None:
    """Code compiled from a string or from a file no module was imported from (``exec`` of a settings
    file) is ``<dynamic>``: its function names are the text's, not the program's."""
    namespace: dict[str, object] = {}
    exec(f"def {SECRET}():\n    raise ValueError('x')\n", namespace)
    exc = catch(namespace[SECRET])  # type: ignore[arg-type]
    assert sig(exc, Level.FULL) == f"{HERE}:catch > {DYNAMIC}"
    settings = tmp_path / f"{SECRET}.py"
    settings.write_text(f"def {SECRET}():\n    raise ValueError('x')\n", encoding="utf-8")
    exec(compile(settings.read_text(), str(settings), "exec"), namespace)
    got = sig(catch(namespace[SECRET]), Level.FULL)  # type: ignore[arg-type]
    assert got == f"{HERE}:catch > {DYNAMIC}" and SECRET not in got
    got = sig(catch(lambda: eval(f"(lambda {SECRET}: 1 / 0)(1)")), Level.FULL)
    assert got is not None and SECRET not in got


def test_names_made_at_run_time_are_placeholders(tmp_path: Path) -> None:
    """A module loaded from a path under a name made at run time, and code renamed at run time, are not
    named by the program's code: ``<dynamic>`` in their place."""
    plugin = tmp_path / "plugins" / "p.py"
    plugin.parent.mkdir()
    plugin.write_text("def run():\n    raise ValueError('x')\n", encoding="utf-8")
    spec = importlib.util.spec_from_file_location(SECRET, plugin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[SECRET] = module
    try:
        spec.loader.exec_module(module)
        got = sig(catch(module.run), Level.FULL)
        assert got == f"{HERE}:catch > {DYNAMIC}"

        def handler() -> None:
            raise ValueError("x")

        handler.__code__ = handler.__code__.replace(co_name=SECRET)
        got = sig(catch(handler), Level.FULL)
        assert got == f"{HERE}:catch > {HERE}:{DYNAMIC}"
    finally:
        sys.modules.pop(SECRET, None)


def test_the_program_package_installed_in_site_packages_is_its_own(modules: tuple[object, object],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The packages of the entry point the user ran are the program's own, wherever they are installed."""
    app, third = modules
    monkeypatch.setattr(vocabulary, "_program", [frozenset({"sig_third"})])
    exc = catch(lambda: third.call(app.outer))  # type: ignore[attr-defined]
    assert sig(exc, Level.BASIC) == f"{P} > sig_third:call > sig_third:helper > " \
                                    "sig_app:outer > sig_app:middle > sig_app:inner"


DETERMINISM = '''
import sys
sys.path.insert(0, {root!r})
from otel_expansion.privacy.vocabulary import signature
import tool

try:
    tool.main()
except Exception as exc:
    print(signature(exc, 1))
'''


def test_same_code_path_same_signature_wherever_it_is_installed(tmp_path: Path) -> None:
    """One program copied into two directories (different paths, users) and run in fresh interpreters
    gives one signature."""
    root = str(Path(__file__).resolve().parents[2])
    outputs = []
    for where in ("alice", "bob/deeper"):
        d = tmp_path / where
        d.mkdir(parents=True)
        (d / "tool.py").write_text(textwrap.dedent('''
            def main():
                return helper()

            def helper():
                raise OSError("/home/alice")
            '''), encoding="utf-8")
        (d / "run.py").write_text(DETERMINISM.format(root=root), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
        r = subprocess.run([sys.executable, str(d / "run.py")], capture_output=True, text=True, timeout=60,
                           env=env, cwd=d)
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout.strip())
    assert outputs == ["__main__:<module> > tool:main > tool:helper"] * 2


def test_the_console_script_the_user_ran_names_the_program_packages(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.argv[0]`` is a console script an installed distribution publishes: the top-level packages of
    its target are the program's own (read from ``entry_points.txt``, no importlib.metadata)."""
    dist = tmp_path / "mytool-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[console_scripts]\nmytool = mytool_pkg.cli:main\n"
                                           "other = elsewhere:main\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "bin" / "mytool"), "sync"])
    for name, empty in (("_program", []), ("_entry_points", []), ("_entry_targets", {})):
        monkeypatch.setattr(vocabulary, name, empty)
    tops = vocabulary._program_packages()  # (plus pytest's own package when run as ``python -m pytest``)
    assert "mytool_pkg" in tops and "elsewhere" not in tops


COMMAND_STRING = '''
import sys
sys.path.insert(0, {root!r})
from otel_expansion.privacy.vocabulary import signature

def outer():
    inner()

def inner():
    raise ValueError("x")

def renamed():
    raise ValueError("x")

renamed.__code__ = renamed.__code__.replace(co_name={secret!r})
for f in (outer, renamed):
    try:
        f()
    except Exception as exc:
        print(signature(exc, 1))
'''


def test_a_python_c_program_names_its_own_functions() -> None:
    """The ``python -c`` string is the program's own code: its ``def`` names are kept, as a file's are (they
    were ``<dynamic>`` when only files gave literals); a name made at run time still is not."""
    root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    r = subprocess.run([sys.executable, "-c", COMMAND_STRING.format(root=root, secret=SECRET)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["__main__:<module> > __main__:outer > __main__:inner",
                                     f"__main__:<module> > {DYNAMIC}"]
