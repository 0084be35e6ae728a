"""The conformance venv: the real CLIs added in round 3 (optparse, getopt, plain sys.argv, docopt, fire,
invoke, plumbum, and click's python-dotenv for its exec), pinned here rather than in pyproject's test
extra: they and their dependencies stay out of the main environment (copier alone brings ~20 packages),
and CI builds the venv once per pin list (~/.cache/otel-expansion/venvs/conformance-*).

The package is installed into it editable from this checkout, so a change to the package needs no rebuild.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.shipping.cache import ROOT, cached_build

PINS = (
    "coverage==7.18.0",  # optparse, and its own command dispatch
    "docutils==0.23.1",  # rst2html: optparse
    "tabulate==0.10.0",  # getopt
    "tqdm==4.70.1",  # plain sys.argv
    "pipreqs==0.5.0", "docopt==0.6.2",  # docopt
    "fire==0.7.1",  # python-fire: its own `python -m fire` CLI, as the console script below
    "invoke==3.0.3",  # invoke's own parser
    "copier==9.19.1", "plumbum==2.0.2",  # plumbum.cli
    "python-dotenv[cli]==1.2.4", "click==8.5.1",  # click; `dotenv run` execs the command
    "opentelemetry-distro",
)

FIRE_SCRIPT = """#!{python}
# the `python -m fire` CLI of the fire package, as a console script: fire ships no script of its own
import sys
from fire.__main__ import main
if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


def conformance_bin() -> Path:
    """The venv's bin folder (made on first use), holding the pinned CLIs and the package."""

    def build(folder: Path) -> None:
        import sys

        venv = folder / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *PINS, "-e", str(ROOT)], check=True, timeout=1800)
        script = venv / "bin" / "fire"
        script.write_text(FIRE_SCRIPT.format(python=venv / "bin" / "python"))
        script.chmod(0o755)

    inputs = [*(p.encode() for p in PINS), str(ROOT).encode(), (ROOT / "pyproject.toml").read_bytes(),
              FIRE_SCRIPT.encode()]
    return cached_build("venvs/conformance", inputs, build) / "venv" / "bin"
