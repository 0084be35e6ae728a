"""The settings file: the tiny TOML reader, validation warnings, malformed files, and precedence by layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomllib

from otel_expansion import config
from otel_expansion.config import Level, resolve
from otel_expansion.config import file as settings_file
from otel_expansion.config.file import ParseError, parse, parse_simple
from otel_expansion.config.warn_once import _said as _warned
from otel_expansion.privacy import consent
from tests.conftest import RunCli, journal_records


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    _warned.clear()  # warnings are once per process; each test looks for its own


SUBSET = [
    'level = "basic"\ndebug = true\nsend = false\n',
    "# comment\n\nlevel = 'full'   # trailing comment\n",
    'a = "x \\"quoted\\" \\\\ \\n"\nb = 12_000\nc = -3\nd = 1.5e3\ne = false\n',
    '[features."export.csv"]\ndescription = "Exports # not a comment"\nattributes.rows = "int"\n',
    '[a.b]\nc.d = 1\n[e]\n"quoted key" = "v"\n',
]


@pytest.mark.parametrize("text", SUBSET)
def test_tiny_reader_agrees_with_tomllib(text: str) -> None:
    """Whatever the import-free reader accepts, it reads exactly as tomllib does."""
    assert parse_simple(text)[0] == tomllib.loads(text)


@pytest.mark.parametrize("text", ['x = [1, 2]\n', 'x = {a = 1}\n', 'x = """a\nb"""\n', "[[t]]\nx = 1\n",
                                  "x = 1979-05-27\n", 'x = "\\u00e9"\n', "x = 1\nx = 2\n", "x\n"])
def test_tiny_reader_declines_what_it_does_not_know(text: str) -> None:
    """Arrays, inline tables, multi-line strings, dates, unicode escapes, duplicates: handed to tomllib."""
    with pytest.raises(ParseError):
        parse_simple(text)


def test_full_toml_goes_to_tomllib_with_key_lines() -> None:
    """A document beyond the subset is still read (by tomllib), and its keys keep their lines."""
    doc, where = parse('level = "basic"\n\nextra = [1, 2]\n')
    assert doc == {"level": "basic", "extra": [1, 2]} and where == {"level": 1, "extra": 3}


def test_malformed_toml_reports_its_line() -> None:
    """A syntax error names the line tomllib found it on."""
    with pytest.raises(ParseError) as info:
        parse('level = "basic"\ndebug = \n')
    assert info.value.line == 2


def write(home: Path, text: str | bytes) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "settings.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_each_bad_entry_warns_with_key_and_line_and_the_rest_applies(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown keys, wrong types and bad levels each get one warning naming file:line (and a known key, never
    the file's own text); valid keys apply."""
    path = write(tmp_path, 'level = "basic"\nlevle = "full"\ndebug = "yes"\nsend = false\n')
    assert settings_file.load(str(tmp_path), Level.parse) == {"level": Level.BASIC, "send": False}
    err = capsys.readouterr().err
    assert f"{path}:2: unknown key ignored" in err and "levle" not in err
    assert f"{path}:3: debug must be true or false" in err and "yes" not in err
    write(tmp_path, 'level = "loud"\n')
    assert settings_file.load(str(tmp_path), Level.parse) == {}
    err = capsys.readouterr().err
    assert f"{path}:1: level is not off|basic|enhanced|full; ignored" in err and "loud" not in err


@pytest.mark.parametrize("content", ['level = \n', b"\xff\xfe\x00garbage\x00", 'level = "basic\n', "[unclosed\n"])
def test_malformed_file_is_ignored_with_one_warning(tmp_path: Path, content: str | bytes,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not TOML is ignored as a whole, with one warning naming it (and the line when known)."""
    path = write(tmp_path, content)
    assert settings_file.load(str(tmp_path), Level.parse) == {}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}" in err and "settings file ignored" in err


def test_oversized_directory_and_symlinked_files_are_ignored(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The file is read only if it is a small regular file in the state directory (never through a link)."""
    write(tmp_path / "big", "# " + "x" * 70000 + "\n")
    assert settings_file.load(str(tmp_path / "big"), Level.parse) == {}
    (tmp_path / "dir" / "settings.toml").mkdir(parents=True)
    assert settings_file.load(str(tmp_path / "dir"), Level.parse) == {}
    target = write(tmp_path / "elsewhere", 'level = "full"\n')
    (tmp_path / "link").mkdir()
    os.symlink(target, tmp_path / "link" / "settings.toml")
    assert settings_file.load(str(tmp_path / "link"), Level.parse) == {}
    assert settings_file.load(str(tmp_path / "absent"), Level.parse) == {}


class TestPrecedence:
    """App defaults in code < settings file < environment < the user's explicit command; opt-out above all."""

    def settings(self, home: Path, env: dict[str, str], **init: object) -> tuple[object, ...]:
        s = resolve("app", environ={"OTEL_EXPANSION_HOME": str(home), **env},
                    stored_choice=consent.stored_choice(str(home)), **init)  # type: ignore[arg-type]
        return s.level, s.level_source, s.debug, s.send

    def test_level_layer_by_layer(self, tmp_path: Path) -> None:
        """Each layer overrides the one below it, and only that."""
        home = tmp_path / "home"
        assert self.settings(home, {}, level="basic")[:2] == (Level.BASIC, "app")
        write(home, 'level = "full"\n')
        assert self.settings(home, {}, level="basic")[:2] == (Level.FULL, "file")
        env = {"OTEL_EXPANSION_LEVEL": "enhanced"}
        assert self.settings(home, env, level="basic")[:2] == (Level.ENHANCED, "env")
        consent.grant(str(home), Level.BASIC)  # `mycli telemetry level basic`
        assert self.settings(home, env, level="full")[:2] == (Level.BASIC, "user")
        assert self.settings(home, {**env, "DO_NOT_TRACK": "1"}, level="full")[:2] == (Level.OFF, "opt-out")

    def test_enable_without_a_level_keeps_the_configured_level(self, tmp_path: Path) -> None:
        """`telemetry enable` (consent without a level) lifts a denial but keeps the file's/variable's level."""
        home = tmp_path / "home"
        write(home, 'level = "basic"\n')
        consent.deny(str(home))
        assert self.settings(home, {"OTEL_EXPANSION_LEVEL": "full"})[:2] == (Level.OFF, "user")
        consent.grant(str(home))
        assert self.settings(home, {})[:2] == (Level.BASIC, "file")
        assert self.settings(home, {"OTEL_EXPANSION_LEVEL": "full"})[:2] == (Level.FULL, "env")

    def test_debug_and_send_layer_by_layer(self, tmp_path: Path) -> None:
        """debug: init < file < `debug on|off` < OTEL_EXPANSION_DEBUG (the variable silences a switch left on,
        as the debugging docs promise); send: init < file < env."""
        home = tmp_path / "home"
        assert self.settings(home, {}, debug=True, send=False)[2:] == (True, False)
        write(home, "debug = false\nsend = true\n")
        assert self.settings(home, {}, debug=True, send=False)[2:] == (False, True)
        env = {"OTEL_EXPANSION_DEBUG": "true", "OTEL_EXPANSION_SEND": "false"}
        assert self.settings(home, env, debug=False, send=True)[2:] == (True, False)
        config.set_debug_choice(str(home), False)
        assert self.settings(home, env)[2:] == (True, False)  # the variable still wins
        assert self.settings(home, {}, debug=True)[2] is False  # the stored switch beats init() and the file
        config.set_debug_choice(str(home), True)
        assert self.settings(home, {"OTEL_EXPANSION_DEBUG": "false"})[2] is False

    def test_a_file_level_counts_as_a_choice_under_ask(self, tmp_path: Path) -> None:
        """An opt-in app stays off until asked, unless the user configured a level in the file."""
        home = tmp_path / "home"
        assert self.settings(home, {}, consent="ask")[:2] == (Level.OFF, "consent-pending")
        write(home, 'level = "basic"\n')
        assert self.settings(home, {}, consent="ask")[:2] == (Level.BASIC, "file")


def test_layers_end_to_end_in_a_real_cli(run_cli: RunCli, home: Path) -> None:
    """In a real run: the file sets basic, the variable full, then the user's command enhanced wins."""
    write(home, 'level = "basic"\n')
    assert run_cli("hello", "a", OTEL_EXPANSION_SEND="false").returncode == 0
    assert run_cli("hello", "b", OTEL_EXPANSION_SEND="false", OTEL_EXPANSION_LEVEL="full").returncode == 0
    assert run_cli("telemetry", "level", "enhanced", OTEL_EXPANSION_SEND="false").returncode == 0
    assert run_cli("hello", "c", OTEL_EXPANSION_SEND="false", OTEL_EXPANSION_LEVEL="full").returncode == 0
    levels = [r["level"] for r in journal_records(home) if r["commands"][0]["name"] == "hello"]  # type: ignore[index]
    assert levels == [1, 3, 2]


def test_malformed_file_never_breaks_the_host(run_cli: RunCli, home: Path) -> None:
    """A broken settings file: same output and exit status, one warning, telemetry at its default."""
    bare = run_cli("hello", "a", DO_NOT_TRACK="1")
    write(home, '[broken\nlevel = "full\n')
    result = run_cli("hello", "a", OTEL_EXPANSION_SEND="false")
    assert (result.returncode, result.stdout) == (bare.returncode, bare.stdout) == (0, "hello a\n")
    assert result.stderr.count("warning") == 1 and "settings.toml:1" in result.stderr
    assert journal_records(home)[0]["level"] == 2


def test_the_settings_file_name_is_the_configs() -> None:
    """config/file.py spells the file names it reads (it imports nothing of its package, which imports it):
    they are the package's one set of state names."""
    assert settings_file.SETTINGS_FILE == config.SETTINGS_FILE == "settings.toml"
    assert settings_file.DEBUG_CHOICE_FILE == config.DEBUG_FILE
