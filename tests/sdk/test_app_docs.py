"""Per-app TELEMETRY.md: built-in signals plus the app's declared features, kept in sync for the examples."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_expansion.cli.main import main
from otel_expansion.collect import features
from otel_expansion.collect.features import Feature
from otel_expansion.sdk.docs import app_markdown
from tests.conftest import EXAMPLES, ROOT, clean_env

DOCUMENTS = {"democli.py": "democli-TELEMETRY.md", "typer_cli.py": "typercli-TELEMETRY.md"}


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    features._reset_for_tests()
    yield
    features._reset_for_tests()


@pytest.mark.parametrize("script", list(DOCUMENTS))
def test_example_documents_are_in_sync(script: str, tmp_path: Path) -> None:
    """The committed document is exactly what `<example> telemetry docs` prints (regenerate it if not)."""
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "telemetry", "docs"], capture_output=True,
                            text=True, timeout=60, env=clean_env(tmp_path / "home"), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (EXAMPLES / DOCUMENTS[script]).read_text(), (
        f"regenerate: python examples/{script} telemetry docs > examples/{DOCUMENTS[script]}")


def test_otel_expansion_docs_app_writes_the_same_document(tmp_path: Path) -> None:
    """`otel-expansion docs --app PROGRAM` runs the program's own `telemetry docs`, recording nothing."""
    out = tmp_path / "T.md"
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-m", "otel_expansion", "docs", "--app", str(EXAMPLES / "democli.py"),
                             "--output", str(out)], capture_output=True, text=True, timeout=60,
                            env=clean_env(home), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (EXAMPLES / "democli-TELEMETRY.md").read_text()
    assert not home.exists()  # generating the document recorded nothing


@pytest.mark.parametrize("form", ["name in the current directory", "executable with a shebang", "name without .py"])
def test_docs_app_accepts_a_script(tmp_path: Path, form: str) -> None:
    """`otel-expansion docs --app clkc` for a script that is not on PATH: its file, run directly when it has
    a shebang and is executable, else with this Python; `clkc` finds `clkc.py` too."""
    source = (EXAMPLES / "democli.py").read_text()
    name = "clkc"
    if form == "name in the current directory":
        (tmp_path / name).write_text(source)  # not executable, no .py: run with this Python
    elif form == "executable with a shebang":
        script = tmp_path / name
        script.write_text(f"#!{sys.executable}\n{source}")
        script.chmod(0o755)
    else:
        (tmp_path / f"{name}.py").write_text(source)
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-m", "otel_expansion", "docs", "--app", name, "--output", "-"],
                            capture_output=True, text=True, timeout=60, env=clean_env(home), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = (EXAMPLES / "democli-TELEMETRY.md").read_text()
    # the same document, naming the program as this script is called
    assert result.stdout.startswith("# What democli collects") and "`otel-expansion docs --app clkc`" in result.stdout
    assert result.stdout.splitlines()[3:] == [line.replace("democli telemetry", "clkc telemetry")
                                              for line in expected.splitlines()[3:]]
    assert not home.exists()


def test_docs_app_without_the_commands_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A program without `telemetry docs`, or none at all: exit 2 and what to do."""
    assert main(["docs", "--app", "no-such-program-xyz"]) == 2
    assert "no program 'no-such-program-xyz' on PATH and no script" in capsys.readouterr().err
    result = subprocess.run([sys.executable, "-m", "otel_expansion", "docs", "--app", str(EXAMPLES / "optin_cli.py"),
                             "--output", str(tmp_path / "T.md")], capture_output=True, text=True, timeout=60,
                            env=clean_env(tmp_path / "home"), cwd=ROOT)
    assert result.returncode == 2 and "add_telemetry_commands" in result.stderr
    assert not (tmp_path / "T.md").exists()


def test_document_lists_declared_features_and_the_apps_controls() -> None:
    """Declared features appear with level, typed attributes and description; controls use the program name."""
    features.declare(Feature("export.csv", "Exports a table.", {"rows": int, "fmt": str}, level="enhanced"))
    text = app_markdown("mycli", "mycli", version="2.0", level="basic", opt_out_env="MYCLI_NO_TELEMETRY")
    assert text.startswith("# What mycli collects\n") and "mycli 2.0 collects" in text and "level `basic`" in text
    assert "| `export.csv` | enhanced | `fmt` (string), `rows` (int) | Exports a table. |" in text
    assert "| `mycli telemetry disable` |" in text and "`MYCLI_NO_TELEMETRY=1`" in text
    assert "| `cli.command.invocations` |" in text  # the built-in signals follow
    features._reset_for_tests()
    ask = app_markdown("mycli", consent_policy="ask")
    assert "nothing until you agree" in ask and "declares no features" in ask
