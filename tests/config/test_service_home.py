"""A service name becomes exactly one directory inside ``<state>/otel-expansion/``, whatever the name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion.config.paths import SERVICE_DIR_MAX, _safe, default_home
from tests.conftest import ROOT, clean_env

HOSTILE = ["..", ".", "", "...", "....", ".hidden", "../../escape", "a/b", "a\\b", "a\x00b", "tab\there",
           "new\nline", "\x1b[1m", "x" * 300, "\u00e9" * 200, "/", "./x", "..\x00"]


@pytest.mark.parametrize("name", HOSTILE)
def test_every_name_maps_to_one_safe_component(name: str) -> None:
    """No name escapes, hides, or names the base: one component, not '.'/'..', no leading dot, capped."""
    part = _safe(name)
    assert part and os.sep not in part and "/" not in part and "\\" not in part
    assert not part.startswith(".") and part not in (".", "..")
    assert all(c.isprintable() and c not in "\x00" for c in part)
    assert len(part) <= SERVICE_DIR_MAX and len(part.encode()) <= 255
    base = os.path.join("/s", "otel-expansion")
    home = default_home(name, {"XDG_STATE_HOME": "/s"})
    assert os.path.dirname(os.path.normpath(home)) == base and os.path.normpath(home) == home


def test_windows_device_names_and_trailing_dots_are_never_made() -> None:
    """On Windows ``con``, ``nul.app`` or ``com1`` name a device in every folder, and a trailing dot is
    dropped (``app.`` would be ``app``); elsewhere those names are ordinary and keep their homes."""
    assert [_safe(n, windows=True) for n in ("con", "Nul.app", "com1", "LPT9", "app.", "console")] == [
        "_con", "_Nul.app", "_com1", "_LPT9", "app_", "console"]
    assert [_safe(n, windows=False) for n in ("con", "app.")] == ["con", "app."]


def test_long_names_stay_distinct_and_plain_names_unchanged() -> None:
    """Truncation keeps a hash of the whole name; ordinary names keep their directory (no migration)."""
    assert _safe("a" * 100 + "1") != _safe("a" * 100 + "2")
    assert [_safe(n) for n in ("democli", "my-app_2.0", "a/b")] == ["democli", "my-app_2.0", "a_b"]


def _files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, dirs, files in os.walk(root) for f in files + dirs]


def _env(tmp_path: Path) -> dict[str, str]:
    env = clean_env(tmp_path / "unused")
    env.pop("OTEL_EXPANSION_HOME")
    env.update(HOME=str(tmp_path / "user"), XDG_STATE_HOME=str(tmp_path / "user" / "state"),
               OTEL_EXPANSION_SEND="false")
    return env


@pytest.mark.parametrize("name", ["..", ".", "", "../../escape", ".hidden", "x" * 300, "a\x01b"])
def test_init_writes_only_inside_one_service_directory(tmp_path: Path, name: str) -> None:
    """A real program calling init(NAME) with the default home writes only into <state>/otel-expansion/<one>/."""
    (tmp_path / "user" / "state").mkdir(parents=True)
    script = tmp_path / "app.py"
    script.write_text(f"import otel_expansion\notel_expansion.init({name!r}, '1.0')\nprint('ok')\n")
    proc = subprocess.run([sys.executable, str(script), "run"], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
    base = tmp_path / "user" / "state" / "otel-expansion"
    written = _files_under(tmp_path / "user")
    homes = {p.relative_to(base).parts[0] for p in written if base in p.parents}
    assert len(homes) == 1, written
    (one,) = homes
    assert one == _safe(name or "unknown_service") and not one.startswith(".")  # init("") is unnamed
    inside = [p for p in written if base / one in p.parents]
    assert any(p.name == "journal" for p in inside), written  # the run was recorded, in its own home
    assert set(written) == {*inside, base / one, base, tmp_path / "user" / "state"}


@pytest.mark.parametrize("name", ["..", "."])
def test_cli_service_option_resolves_inside_the_base(tmp_path: Path, name: str) -> None:
    """`otel-expansion level off --service ..` stores the choice in <state>/otel-expansion/<one>/, not above."""
    (tmp_path / "user" / "state").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "otel_expansion", "level", "off", "--service", name],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    base = tmp_path / "user" / "state" / "otel-expansion"
    written = _files_under(tmp_path / "user")
    assert written and all(p in (base, tmp_path / "user" / "state") or base / _safe(name) in p.parents
                           or p == base / _safe(name) for p in written), written
