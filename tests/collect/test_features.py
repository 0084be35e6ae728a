"""Declared features: undeclared features and attributes dropped and counted at basic and enhanced."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_expansion.collect import Recorder, features
from otel_expansion.collect.features import Feature
from otel_expansion.config import Level, Settings
from otel_expansion.config.warn_once import _said as _warned
from tests.conftest import ROOT, clean_env, journal_records
from tests.export.servers import otlp_server


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    features._reset_for_tests()
    _warned.clear()
    yield
    features._reset_for_tests()


def record(level: Level, *calls: tuple[str, dict[str, object]]) -> dict[str, object]:
    r = Recorder(Settings(service_name="t", home="/nonexistent", level=level))
    for name, attrs in calls:
        r.feature(name, attrs)
    return r.drain() or {}


def test_without_a_registry_features_count_and_attributes_never_leave() -> None:
    """No declarations: every feature written in the code is counted; its attributes are dropped, counted."""
    r = Recorder(Settings(service_name="t", home="/nonexistent", level=Level.FULL))
    r.feature("anything", {"x": 1})  # a name written in the code (a computed one is a placeholder anyway)
    body = r.drain() or {}
    assert [f["name"] for f in body["features"]] == ["anything"]  # type: ignore[attr-defined]
    assert "attrs" not in body["features"][0] and body["undeclared"] == 1  # type: ignore[index]


@pytest.mark.parametrize("level", [Level.BASIC, Level.ENHANCED])
def test_undeclared_features_and_attributes_are_dropped_and_counted(level: Level) -> None:
    """At basic/enhanced: undeclared features vanish, bad or unknown attributes are counted, each once."""
    features.declare(Feature("export.csv", "Exports CSV.", {"rows": int, "fmt": "string"}, level="basic"))
    body = record(level, ("export.csv", {"rows": 3}), ("export.csv", {"rows": "3", "who": "bob"}),
                  ("secret.feature", {}), ("export.csv", {}))
    assert [f["name"] for f in body["features"]] == ["export.csv"] * 3  # type: ignore[attr-defined]
    assert body["undeclared"] == 3  # 'rows' of the wrong type, 'who' undeclared, 'secret.feature'
    assert all("attrs" not in f for f in body["features"])  # type: ignore[attr-defined]


def test_a_feature_declared_for_a_higher_level_waits_for_it() -> None:
    """A feature declared at enhanced is not recorded at basic (counted as withheld)."""
    features.declare(Feature("deep", level="enhanced"))
    assert record(Level.BASIC, ("deep", {})) == {"commands": [], "features": [], "exceptions": [], "undeclared": 1}
    assert [f["name"] for f in record(Level.ENHANCED, ("deep", {}))["features"]] == ["deep"]  # type: ignore[attr-defined]


def test_full_filters_by_the_registry_too() -> None:
    """At full the registry filters as at every level: undeclared features and attributes (numbers too)
    are dropped and counted; declared ones keep only the program's own text."""
    features.declare(Feature("known", attributes={"mail": str, "n": int, "when": ("float", "full")}))
    r = Recorder(Settings(service_name="t", home="/nonexistent", level=Level.FULL))
    r.feature("other", {"mail": "alice@example.com"})
    r.feature("known", {"mail": json.loads('"alice@example.com"'), "n": 7, "when": 1.5, "account": 4402817733})
    body = r.drain() or {}
    (feat,) = body["features"]  # type: ignore[misc]
    assert feat["name"] == "known" and "alice" not in json.dumps(feat["attrs"])
    assert feat["attrs"]["n"] == 7 and feat["attrs"]["when"] == 1.5 and "account" not in feat["attrs"]
    assert body["undeclared"] == 2  # the undeclared feature, the undeclared number


def test_an_attribute_declared_for_full_never_leaves_below_it() -> None:
    """An attribute's own level: below it the attribute is withheld and counted."""
    spec = Feature("f", attributes={"n": ("int", "full"), "m": "int"}, level="basic")
    assert spec.accepts("n", 1, Level.FULL) and not spec.accepts("n", 1, Level.ENHANCED)
    assert spec.accepts("m", 1, Level.BASIC)


def test_bool_is_not_an_int_and_bad_declarations_are_rejected() -> None:
    """Types are checked strictly; a declaration with an unknown type or level off is an error at once."""
    spec = Feature("f", attributes={"n": "int", "ok": bool})
    assert spec.accepts("n", 3) and not spec.accepts("n", True) and spec.accepts("ok", False)
    with pytest.raises(ValueError, match="unknown attribute type"):
        Feature("f", attributes={"n": "list"})
    with pytest.raises(ValueError, match="level off"):
        Feature("f", level="off")


def test_registry_file_with_bad_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A registry file declares features; a bad entry is skipped with a warning naming it and its line."""
    path = tmp_path / "features.toml"
    path.write_text('[features."export.csv"]\ndescription = "CSV"\nattributes.rows = "int"\n\n'
                    '[features.bad]\nlevel = "loud"\n\n[features.worse]\nattributes.x = "list"\n')
    features.declare(str(path))
    registry = features.registry()
    assert registry is not None and list(registry) == ["export.csv"]
    assert registry["export.csv"].attributes == {"rows": "int"} and registry["export.csv"].level == Level.BASIC
    err = capsys.readouterr().err
    assert f"{path}:5: feature 'bad'" in err and f"{path}:8: feature 'worse'" in err


def test_undeclared_count_reaches_the_spool_counters(tmp_path: Path) -> None:
    """End to end: the drop is visible after ingest as spool counter dropped.undeclared."""
    app = tmp_path / "app.py"
    app.write_text("import otel_expansion\notel_expansion.init('featapp')\n"
                   "otel_expansion.declare_features(otel_expansion.Feature('ok'))\n"
                   "with otel_expansion.command('go'):\n"
                   "    otel_expansion.feature('ok')\n    otel_expansion.feature('nope', x=1)\n")
    home = tmp_path / "home"
    subprocess.run([sys.executable, str(app)], env=clean_env(home, OTEL_EXPANSION_SEND="false"), check=True,
                   timeout=60)
    (rec,) = journal_records(home)
    assert [f["name"] for f in rec["features"]] == ["ok"] and rec["undeclared"] == 1  # type: ignore[attr-defined]
    with otlp_server() as srv:
        ox = [sys.executable, "-m", "otel_expansion"]
        subprocess.run([*ox, "flush", "--home", str(home)], env=clean_env(home, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url),
                       check=True, timeout=60, capture_output=True, cwd=ROOT)
    status = subprocess.run([*ox, "status", "--json", "--home", str(home)], env=clean_env(home), check=True,
                            timeout=60, capture_output=True, text=True, cwd=ROOT)
    assert json.loads(status.stdout)["counters"].get("dropped.undeclared") == 1


def test_undeclared_count_in_a_long_running_program(tmp_path: Path) -> None:
    """Service mode counts the same drops into the same spool counter at its commit."""
    app = tmp_path / "svc.py"
    app.write_text("import otel_expansion\notel_expansion.init('featsvc', mode='service', send=False)\n"
                   "otel_expansion.declare_features(otel_expansion.Feature('ok'))\n"
                   "with otel_expansion.command('go'):\n"
                   "    otel_expansion.feature('ok')\n    otel_expansion.feature('nope')\n"
                   "    otel_expansion.feature('ok', extra=1)\n")
    home = tmp_path / "home"
    subprocess.run([sys.executable, str(app)], env=clean_env(home), check=True, timeout=60)
    # a short program hands its last commands to the journal at exit; the sender's ingest counts them
    subprocess.run([sys.executable, "-m", "otel_expansion.workers.sender", "--home", str(home), "--no-send"],
                   env=clean_env(home), check=True, timeout=60, cwd=ROOT)
    status = subprocess.run([sys.executable, "-m", "otel_expansion", "status", "--json", "--home", str(home)],
                            env=clean_env(home), check=True, timeout=60, capture_output=True, text=True, cwd=ROOT)
    assert json.loads(status.stdout)["counters"].get("dropped.undeclared") == 2
