"""Cached tool environments and builds for the shipping and conformance suites, under ~/.cache keyed by
their inputs: a CI run pays for a venv or a frozen build only when its pins (or its sources) change.

``cached_venv(name, pins)`` -> a venv with exactly those pins (``pip install`` from the registry once).
``cached_build(name, inputs, build)`` -> a folder made once by ``build(folder)`` for these inputs.
Both are safe to call from parallel test processes: a lock file serialises the making, and the result
appears under its final name only once complete (renamed into place).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "otel-expansion"
ROOT = Path(__file__).resolve().parents[2]


def _key(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


def python_tag() -> bytes:
    return f"{sys.implementation.name}-{sys.version}-{os.path.realpath(sys.executable)}".encode()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_build(name: str, inputs: Iterable[bytes], build: Callable[[Path], None]) -> Path:
    """The folder ``build`` made for exactly these inputs, made now if no earlier run made it.

    Made in place (venvs and frozen apps hold their own absolute paths), marked complete last: a run
    that died half-way leaves no marker, and the next one starts that folder again.
    """
    final = CACHE / name / _key([python_tag(), *inputs])
    if not (final / ".complete").exists():
        with _locked(final.with_suffix(".lock")):
            if not (final / ".complete").exists():
                shutil.rmtree(final, ignore_errors=True)
                final.mkdir(parents=True)
                build(final)
                (final / ".complete").write_text("")
        _prune(final.parent, keep=final)
    os.utime(final / ".complete")  # last used: what pruning goes by
    return final


def _prune(folder: Path, keep: Path, unused_s: float = 7 * 86400) -> None:
    """Remove builds of other inputs (older sources, other pins) not used for a week: every change of the
    package's sources makes a new frozen build, and checkouts sharing this cache may still use recent ones."""
    import time

    for entry in folder.iterdir():
        marker = entry / ".complete"
        if entry == keep or not entry.is_dir() or not marker.exists():
            continue
        if time.time() - marker.stat().st_mtime > unused_s:
            with _locked(entry.with_suffix(".lock")):
                shutil.rmtree(entry, ignore_errors=True)
            entry.with_suffix(".lock").unlink(missing_ok=True)


def cached_venv(name: str, pins: Iterable[str]) -> Path:
    """A venv (on this interpreter) holding exactly ``pins``; its ``bin/`` has their console scripts."""
    pins = sorted(pins)

    def build(folder: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
        pip = [str(folder / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        if pins:
            subprocess.run([*pip, *pins], check=True, timeout=1800)

    return cached_build(f"venvs/{name}", [p.encode() for p in pins], build) / "venv"


def source_inputs(*paths: Path) -> list[bytes]:
    """The bytes of every file under ``paths`` (sorted by name): the key of a build made from them."""
    out: list[bytes] = []
    for top in paths:
        files = sorted(p for p in (top.rglob("*") if top.is_dir() else [top])
                       if p.is_file() and "__pycache__" not in p.parts)
        for f in files:
            out += [str(f.relative_to(ROOT)).encode(), f.read_bytes()]
    return out
