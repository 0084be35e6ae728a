"""The anonymous installation id: random bytes, persisted, never derived from the machine or the user."""

from __future__ import annotations

import os

from otel_expansion.config.paths import INSTALL_ID_FILE, ensure_dir, random_id, read_small, write_private


def installation_id(home: str) -> str:
    """Read the id, creating it on first use. Only hex survives a tampered file."""
    path = os.path.join(home, INSTALL_ID_FILE)
    raw = read_small(path, 128)
    if raw:
        text = raw.decode("ascii", "replace").strip()
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
            return text
    return reset(home)


def reset(home: str) -> str:
    """Forget the old id and start a new, unlinkable one."""
    ensure_dir(home)
    new = random_id(16)
    write_private(os.path.join(home, INSTALL_ID_FILE), new.encode("ascii"))
    return new
