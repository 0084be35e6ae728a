"""The documentation site builds with warnings as errors (``mkdocs build --strict``): every page is in
the navigation, every link and anchor resolves, every API page's docstrings parse.

The build takes tens of seconds on a busy box, so a successful build is remembered under
``~/.cache/otel-expansion/docs/`` keyed by the hash of everything it reads (the pages, mkdocs.yml, the
included TELEMETRY.md and collector-config/README.md, the package's sources for the API pages) and the
installed mkdocs versions: an unchanged site is not rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("mkdocs", "mkdocs-material", "mkdocstrings", "mkdocstrings-python", "griffe")


def _inputs_digest() -> str:
    h = hashlib.sha256()
    files = [ROOT / "mkdocs.yml", ROOT / "TELEMETRY.md", ROOT / "collector-config" / "README.md",
             *sorted((ROOT / "docs").rglob("*")), *sorted((ROOT / "otel_expansion").rglob("*.py"))]
    for f in files:
        if f.is_file():
            h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    for tool in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            h.update(f"{tool}={metadata.version(tool)}".encode())
    return h.hexdigest()[:24]


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds (warnings are errors)."""
    try:
        metadata.version("mkdocs-material")
        metadata.version("mkdocstrings-python")
    except metadata.PackageNotFoundError:
        pytest.fail("the docs tools are missing: pip install -e '.[docs]' (scripts/test.sh installs them)")
    stamp = Path(os.path.expanduser("~/.cache/otel-expansion/docs")) / f"built-{_inputs_digest()}"
    if stamp.exists():
        return
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode == 0, result.stderr[-4000:]
    built = tmp_path / "site"
    for page in ("index.html", "quickstart/click/index.html", "configuration/index.html", "api/index.html"):
        assert (built / page).is_file(), page
    assert "otel_expansion.init" in (built / "api" / "index.html").read_text() or \
        'id="otel_expansion._runtime.init"' in (built / "api" / "index.html").read_text()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text("ok\n")
