"""Regenerate every generated document: TELEMETRY.md, the docs site's configuration
reference (docs/configuration.md, from the variable table), the privacy rule (docs/privacy.md), the examples' docs.

Run after changing signals, variables or declared features: `.venv/bin/python scripts/regenerate_docs.py`.
Tests (tests/sdk/test_docs.py, tests/config/test_variables.py, tests/sdk/test_app_docs.py) fail until the
committed documents equal what the code generates.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DOCS = {"democli.py": "democli-TELEMETRY.md", "typer_cli.py": "typercli-TELEMETRY.md"}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from otel_expansion.config import variables_markdown
    from otel_expansion.sdk.docs import telemetry_markdown

    (ROOT / "TELEMETRY.md").write_text(telemetry_markdown())
    reference = ROOT / "docs" / "configuration.md"
    text = re.sub(r"(<!-- variables:[^\n]*-->\n)(.*?)(\n<!-- /variables -->)",
                  lambda m: m.group(1) + variables_markdown() + m.group(3), reference.read_text(), flags=re.S)
    reference.write_text(text)
    from otel_expansion.privacy.vocabulary import rules_markdown

    privacy = ROOT / "docs" / "privacy.md"
    text = re.sub(r"(<!-- privacy-rule:[^\n]*-->\n)(.*?)(<!-- /privacy-rule -->)",
                  lambda m: m.group(1) + rules_markdown() + m.group(3), privacy.read_text(), flags=re.S)
    privacy.write_text(text)
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(OTEL_EXPANSION_HOME=home, PYTHONPATH=str(ROOT))
        for script, doc in EXAMPLE_DOCS.items():
            out = subprocess.run([sys.executable, str(ROOT / "examples" / script), "telemetry", "docs"],
                                 env=env, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
            (ROOT / "examples" / doc).write_text(out.stdout)
    print("regenerated TELEMETRY.md, docs/configuration.md's variable table, docs/privacy.md's rule and",
          ", ".join(EXAMPLE_DOCS.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
