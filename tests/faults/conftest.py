"""Helpers of the fault-injection suite: fast scratch filesystems, and counting what a receiver got."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root; the suite's disk-full cases need it anyway)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A RAM-backed directory when we may mount one (journal-heavy tests), else plain tmp_path."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    with tmpfs(tmp_path / "ram", "512m") as path:
        yield path


def metric_total(requests: list[Any], name: str) -> float:
    """Sum of every data point of metric ``name`` over the OTLP metrics requests a receiver recorded."""
    total = 0.0
    for req in requests:
        if req.signal != "metrics":
            continue
        for rm in req.message().resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        total += sum(dp.as_int or dp.as_double for dp in metric.sum.data_points)
    return total


def processes_for(home: Path) -> list[tuple[int, list[str]]]:
    """(pid, argv) of live processes whose command line names ``home`` (the package's senders)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if str(home) in argv:
            found.append((int(entry), argv))
    return found


def wait_for_senders(home: Path, timeout_s: float = 60.0) -> None:
    """Block (bounded) until no process started for ``home`` is alive any more."""
    import time

    deadline = time.monotonic() + timeout_s
    while processes_for(home):
        assert time.monotonic() < deadline, f"senders still running: {processes_for(home)}"
        time.sleep(0.05)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Everything under ``root`` that a write could change: type+mode, owner, mtime and content."""
    import hashlib

    state: dict[str, tuple[int, int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = b""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).digest()
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_mtime_ns, content)
    st = os.lstat(root)
    state["."] = (st.st_mode, st.st_uid, st.st_mtime_ns, b"")
    return state


# The real collector built from collector-config/ (fixtures shared with tests/collector).
from tests.collector.conftest import _stop_collectors_of_each_test, collector  # noqa: F401
