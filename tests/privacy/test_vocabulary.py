"""The closed vocabulary: literal and declared names pass whatever their shape; nothing else does."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from otel_expansion.privacy import vocabulary
from otel_expansion.privacy.vocabulary import DYNAMIC

MODULE = '''
class ProbeError(Exception):
    pass


NAMES = ("GET", ".csv", "1.2.0", "application/json")
ALIASES = "list | ls"


def sync_all():
    return "remote add"


def make(name):
    return type(name, (ValueError,), {})
'''


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A real module file, imported: the program's own code."""
    (tmp_path / "vocab_probe.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("vocab_probe", None)
    module = importlib.import_module("vocab_probe")
    yield module
    sys.modules.pop("vocab_probe", None)


@pytest.mark.parametrize("text", ["GET", ".csv", "1.2.0", "application/json", "Not Found", "remote add"])
def test_literal_names_keep_any_printable_shape(text: str) -> None:
    """A name proved literal is kept as written: no identifier-shape rule over-redacts it."""
    assert vocabulary.admit(text, literal=True) == text


@pytest.mark.parametrize("text", ["a\nb", "\x1b[31m", "x" * 129, "", 42])
def test_unprintable_or_unbounded_names_never_pass(text: object) -> None:
    """Even a literal must be printable and bounded."""
    assert vocabulary.admit(text, literal=True) == DYNAMIC


def test_run_time_names_need_declaration() -> None:
    """Neither shape nor look admits a run-time name: only membership in the declared set."""
    assert vocabulary.admit("deploy") == DYNAMIC
    assert vocabulary.admit("deploy", frozenset({"deploy"})) == "deploy"


def test_in_code_finds_constants_and_def_names_of_module_files(probe: object) -> None:
    """Tuple constants, function bodies' strings and click/typer's name for a def all count."""
    for text in ("GET", "application/json", "remote add", "list", "ls"):  # an alias table's parts too
        assert vocabulary.in_code(text, modules=["vocab_probe"])
    assert vocabulary.in_code("sync-all", functions=[probe.sync_all])  # type: ignore[attr-defined]
    assert not vocabulary.in_code("jane.doe", functions=[probe.sync_all], modules=["vocab_probe"])  # type: ignore[attr-defined]


def test_code_compiled_from_a_string_or_another_file_is_not_the_programs(tmp_path: Path) -> None:
    """exec of a settings.py (or of a string) admits none of its literals."""
    settings = tmp_path / "settings.py"
    settings.write_text("def f():\n    return 'Zofia Wójcik'\n", encoding="utf-8")
    namespace: dict[str, object] = {}
    exec(compile(settings.read_text(encoding="utf-8"), str(settings), "exec"), namespace)
    fn = namespace["f"]
    assert not vocabulary.own_code(fn.__code__)  # type: ignore[attr-defined]
    assert not vocabulary.in_code("Zofia Wójcik", functions=[fn])
    assert not vocabulary.in_code("f", functions=[fn])


def test_own_code_by_the_frames_module_agrees_with_the_file_list(probe: object, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the running frame's module, a code object compiled from that module's file is the program's
    without listing every module's file (the first command's cost); anything else is decided by the list,
    so the answer is the list's either way."""
    own = probe.sync_all.__code__  # type: ignore[attr-defined]
    settings = tmp_path / "settings.py"
    settings.write_text("def f():\n    return 'x'\n", encoding="utf-8")
    scope: dict[str, object] = {"__name__": "vocab_probe"}  # exec'd into the module's own namespace
    exec(compile(settings.read_text(encoding="utf-8"), str(settings), "exec"), scope)
    foreign = scope["f"].__code__  # type: ignore[attr-defined]
    scope = {"__name__": "vocab_probe"}
    exec(compile("def g():\n    return 'y'\n", "<string>", "exec"), scope)
    string = scope["g"].__code__  # type: ignore[attr-defined]
    for code, expected in ((own, True), (foreign, False), (string, False)):
        assert vocabulary.own_code(code) is expected
        assert vocabulary.own_code(code, "vocab_probe") is expected
        assert vocabulary.own_code(code, "no_such_module") is expected

    def unlisted() -> frozenset[str]:
        raise AssertionError("the module file list was built")

    monkeypatch.setattr(vocabulary, "_module_files", unlisted)
    assert vocabulary.own_code(own, "vocab_probe")


def test_command_word_frame_search_sees_the_callers_literals() -> None:
    """A literal written in the calling function is found on the stack."""
    word = "db:migrate"
    assert vocabulary.command_word(word, frame=sys._getframe()) == word
    typed = "".join(chr(c) for c in (106, 97, 110, 101))  # built at run time, in no code
    assert vocabulary.command_word(typed + "x", frame=sys._getframe()) == DYNAMIC


def test_error_type_of_a_class_statement_is_qualified(probe: object) -> None:
    """A class made by a class statement of an importable module keeps module and qualname."""
    assert vocabulary.error_type(probe.ProbeError("x")) == "vocab_probe.ProbeError"  # type: ignore[attr-defined]
    assert vocabulary.error_type(KeyError("x")) == "KeyError"


def test_error_type_of_a_run_time_class_is_its_static_base(probe: object) -> None:
    """type(code, (ValueError,), {}) reports ValueError, even when stored under the module's name."""
    made = probe.make("IBAN_DE44500105175407324931")  # type: ignore[attr-defined]
    assert vocabulary.error_type(made("x")) == "ValueError"
    probe.Joaquín = probe.make("Joaquín")  # type: ignore[attr-defined]
    assert vocabulary.error_type(probe.Joaquín("x")) == "ValueError"  # type: ignore[attr-defined]

    class Local(RuntimeError):
        pass

    assert vocabulary.error_type(Local()) == "RuntimeError"  # <locals>: not importable


def test_executable_name_is_a_published_console_script_or_the_service() -> None:
    """A script file's name never becomes process.executable.name; an installed console script does."""
    assert vocabulary.executable_name("/home/ana.souza/bin/ana_backup.py", "acme") == "acme"
    assert vocabulary.executable_name("/home/ana.souza/bin/ana-backup", "acme") == "acme"
    assert vocabulary.executable_name("", "acme") == "acme"
    bindir = Path(sys.executable).parent
    assert vocabulary.executable_name(str(bindir / "otel-expansion"), "acme") == "otel-expansion"


def test_script_files_are_never_scanned_and_console_scripts_are_remembered(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A script file is the service name at once; a console script proved published is remembered in the
    state directory (a public name), so later runs skip the scan of sys.path."""
    from otel_expansion import collect as recorder
    from otel_expansion.config import Level, Settings

    def fresh() -> recorder.Recorder:
        return recorder.Recorder(Settings(service_name="acme", home=str(tmp_path), level=Level.ENHANCED))

    calls: list[str] = []
    scan = vocabulary.published
    monkeypatch.setattr(vocabulary, "published", lambda text: calls.append(text) or scan(text))
    monkeypatch.setattr(sys, "argv", ["/home/łukasz/bin/Łukasz Żółć.py"])
    assert fresh().executable_name(recorder.default_executable()) == "acme" and calls == []
    monkeypatch.setattr(sys, "argv", [str(Path(sys.executable).with_name("otel-expansion"))])
    assert fresh().executable_name(recorder.default_executable()) == "otel-expansion" and calls
    assert (tmp_path / "published").read_text(encoding="utf-8") == "otel-expansion"
    calls.clear()
    assert fresh().executable_name(recorder.default_executable()) == "otel-expansion" and calls == []
