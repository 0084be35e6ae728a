"""PyInstaller support, found through the ``pyinstaller40`` entry point when an app that uses the package
is frozen: the hook bundles the sender (imported lazily, so not found by analysis) and the runtime hook
lets the frozen app serve as its own sender (see ``otel_expansion.workers.frozen``)."""

from __future__ import annotations

import os


def get_hook_dirs() -> list[str]:
    return [os.path.dirname(os.path.abspath(__file__))]
