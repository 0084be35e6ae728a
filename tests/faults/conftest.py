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
