"""A CLI shipped as a zipapp (stdlib zipapp, shiv, pex), or installed with pipx, delivers its telemetry: the
sender the exiting CLI starts imports the package and its dependencies from where the CLI did.

The tools (shiv, pipx, a build backend) come from PyPI into a cached venv, and the wheels, the shiv app
and the pipx install are cached under ~/.cache/otel-expansion keyed by the package's sources and the pins.
The user's machine is a bare venv of this interpreter: nothing of ours installed in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipapp
from pathlib import Path

import pytest

from tests.export.servers import otlp_server
from tests.shipping.cache import ROOT, cached_build, cached_venv, source_inputs
from tests.shipping.delivery import wait_delivered

pytestmark = pytest.mark.slow

TOOLS = ["shiv==1.0.8", "pex==2.73.1", "pipx==1.8.0", "setuptools==80.9.0", "wheel==0.45.1"]
PEX_PINS = ["opentelemetry-api==1.45.1", "opentelemetry-sdk==1.45.1", "opentelemetry-proto==1.45.1",
            "opentelemetry-exporter-otlp-proto-common==1.45.1", "opentelemetry-semantic-conventions==0.66b1",
            "opentelemetry-instrumentation==0.66b1"]
"""pex resolves each distribution on its own and can pick an API release newer than the SDK allows: pinned."""

APP = '''"""shipcli: a tiny CLI with telemetry in one line."""
import argparse
import sys

import otel_expansion

otel_expansion.init("shipcli", "1.0.0")


def main() -> int:
    parser = argparse.ArgumentParser(prog="shipcli")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("greet").add_argument("name")
    args = parser.parse_args()
    print(f"hello {args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

APP_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "shipcli"
version = "1.0.0"
dependencies = ["otel-expansion"]

[project.scripts]
shipcli = "shipcli:main"
'''


def _inputs() -> list[bytes]:
    return [*(t.encode() for t in TOOLS + PEX_PINS), APP.encode(), APP_PYPROJECT.encode(),
            *source_inputs(ROOT / "otel_expansion", ROOT / "pyproject.toml")]


def _build(out: Path) -> None:
    """Wheels of the package and of the app; the app as a shiv zipapp; the app installed with pipx."""
    tools = cached_venv("shipping-tools", TOOLS)
    py = str(tools / "bin" / "python")
    src = out / "src"
    (src / "shipcli").mkdir(parents=True)
    (src / "shipcli" / "__init__.py").write_text(APP)
    (src / "pyproject.toml").write_text(APP_PYPROJECT)
    wheels = out / "wheels"
    for project in (ROOT, src):
        subprocess.run([py, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-build-isolation", "-w", str(wheels), str(project)], check=True, timeout=600, cwd=out)
    shutil.rmtree(src)
    subprocess.run([str(tools / "bin" / "shiv"), "-q", "-o", str(out / "shipcli-shiv.pyz"), "-c", "shipcli",
                    "--find-links", str(wheels), "--disable-pip-version-check", "shipcli"],
                   check=True, timeout=1800)
    subprocess.run([str(tools / "bin" / "pex"), "shipcli", *PEX_PINS, "--find-links", str(wheels), "-c", "shipcli",
                    "-o", str(out / "shipcli.pex"), "--pex-root", str(out / "pex-root")], check=True, timeout=1800)
    shutil.rmtree(out / "pex-root")
    env = dict(os.environ, PIPX_HOME=str(out / "pipx"), PIPX_BIN_DIR=str(out / "pipx-bin"),
               PIPX_MAN_DIR=str(out / "pipx-man"))
    app_wheel = next(wheels.glob("shipcli-*.whl"))
    subprocess.run([str(tools / "bin" / "pipx"), "install", "--quiet", str(app_wheel),
                    "--pip-args", f"--find-links {wheels}"], check=True, timeout=1800, env=env)


@pytest.fixture(scope="module")
def built() -> Path:
    return cached_build("shipping", _inputs(), _build)


@pytest.fixture(scope="module")
def bare_python() -> str:
    """The user's interpreter: a venv with nothing installed in it."""
    return str(cached_venv("bare", []) / "bin" / "python")


def _env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PYTHON", "SHIV_", "PEX_")) and k not in ("DO_NOT_TRACK", "CI")}
    env.update(OTEL_EXPANSION_HOME=str(tmp_path / "state"), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
               HOME=str(tmp_path), SHIV_ROOT=str(tmp_path / "shiv"))
    return env


def _stdlib_zipapp(tmp_path: Path) -> Path:
    """python -m zipapp of the app with the package inside; its dependencies from the interpreter's site."""
    app = tmp_path / "app"
    (app / "shipcli").mkdir(parents=True)
    (app / "shipcli" / "__init__.py").write_text(APP)
    (app / "__main__.py").write_text("import sys\nimport shipcli\nsys.exit(shipcli.main())\n")
    shutil.copytree(ROOT / "otel_expansion", app / "otel_expansion",
                    ignore=shutil.ignore_patterns("__pycache__", "_pyinstaller", "backend"))
    target = tmp_path / "shipcli.pyz"
    zipapp.create_archive(app, target)
    return target


def _deliver(argv: list[str], tmp_path: Path, **extra: str) -> None:
    with otlp_server() as srv:
        result = subprocess.run([*argv, "greet", "bob"], env={**_env(tmp_path, srv.url), **extra}, capture_output=True,
                                timeout=120, cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"hello bob\n", b""), result.stderr
        spans = wait_delivered(srv, 1)
    log = (tmp_path / "state" / "sender.log").read_text()
    assert spans == [("shipcli", "greet", 0)], log
    assert "Traceback" not in log


def test_stdlib_zipapp(tmp_path: Path) -> None:
    """The package inside the .pyz, its dependencies in the interpreter's environment (the test venv)."""
    import sys

    _deliver([sys.executable, str(_stdlib_zipapp(tmp_path))], tmp_path)


def test_shiv(built: Path, bare_python: str, tmp_path: Path) -> None:
    """Everything inside the .pyz, unpacked by shiv on first run; the interpreter has nothing installed."""
    _deliver([bare_python, str(built / "shipcli-shiv.pyz")], tmp_path)


def test_pex(built: Path, bare_python: str, tmp_path: Path) -> None:
    """Everything inside the .pex, each wheel unpacked to its own folder under PEX_ROOT on first run: the
    sender must get every one of them on its path, not only the package's."""
    _deliver([bare_python, str(built / "shipcli.pex")], tmp_path, PEX_ROOT=str(tmp_path / "pex"))


def test_pipx(built: Path, tmp_path: Path) -> None:
    """Installed from a local wheel with pipx (its own venv); run through the command pipx put on PATH."""
    _deliver([str(built / "pipx-bin" / "shipcli")], tmp_path)
