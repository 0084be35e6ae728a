"""The placeholders the documentation names are the ones the code records."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from otel_expansion.privacy import patterns, provenance, vocabulary
from tests.conftest import ROOT, clean_env, journal_records

PAGES = [ROOT / "README.md", ROOT / "TELEMETRY.md", *sorted((ROOT / "docs").rglob("*.md"))]
NOT_PLACEHOLDERS = {"<service>", "<arguments>"}  # a path template's part; docopt's own word for positionals


def _emitted() -> set[str]:
    """Every placeholder a value can become: the vocabulary's, the redaction patterns', provenance's."""
    found = {vocabulary.DYNAMIC, provenance.VALUE, provenance.NUMBER}
    found |= {v for v in vars(patterns).values() if isinstance(v, str) and re.fullmatch(r"<[a-z-]+>", v)}
    return found


def test_every_documented_placeholder_is_one_the_code_records() -> None:
    """A `<placeholder>` written in the docs, README or TELEMETRY.md exists in the code (none retired)."""
    documented = {(page.relative_to(ROOT).as_posix(), p) for page in PAGES
                  for p in re.findall(r"`(<[a-z][a-z-]*>)`", page.read_text(encoding="utf-8"))}
    unknown = sorted((page, p) for page, p in documented if p not in _emitted() | NOT_PLACEHOLDERS)
    assert not unknown, unknown


def test_run_time_names_are_recorded_as_the_documented_placeholder(tmp_path: Path) -> None:
    """A command and a feature named at run time are recorded as `<dynamic>`, as troubleshooting.md says."""
    script = tmp_path / "tool.py"
    script.write_text("import sys\nimport otel_expansion\notel_expansion.init('phtool', '1.0')\n"
                      "with otel_expansion.command(sys.argv[1]):\n    otel_expansion.feature(sys.argv[2])\n")
    home = tmp_path / "home"
    subprocess.run([sys.executable, str(script), "zzqname", "wwfeature"], check=True, timeout=60,
                   env=clean_env(home, OTEL_EXPANSION_SEND="false"), capture_output=True)
    (record,) = journal_records(home)
    names = {c["name"] for c in record["commands"]} | {f["name"] for f in record["features"]}  # type: ignore[attr-defined]
    assert names == {vocabulary.DYNAMIC}
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    bullet = text[text.index("A command name the program does not declare"):]
    bullet = re.split(r"\n\* |\n\n", bullet)[0]
    assert set(re.findall(r"`(<[a-z][a-z-]*>)`", bullet)) == {vocabulary.DYNAMIC}, bullet
