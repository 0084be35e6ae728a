"""Where the embedded backend keeps its database, and how the file is created private.

One default, defined here only: ``<data dir>/otel-expansion/backend/telemetry.sqlite`` where the data
dir is ``$XDG_DATA_HOME`` (``~/.local/share``) on Linux, ``~/Library/Application Support`` on macOS and
``%LOCALAPPDATA%`` on Windows. The folder is made 0700 and the file 0600 (SQLite gives its -wal/-shm
files the database file's mode), and neither may be a symbolic link: telemetry is other people's data.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

__all__ = ["BackendPathError", "default_db_path", "prepare_db_path"]


class BackendPathError(Exception):
    """The database path cannot be used safely (a link, someone else's file, not writable)."""


def default_db_path(environ: dict[str, str] | None = None) -> Path:
    """The one default database path (see the module docstring)."""
    env = dict(os.environ) if environ is None else environ
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support")
    else:
        base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "otel-expansion" / "backend" / "telemetry.sqlite"


def prepare_db_path(db_path: Path, *, create: bool = True) -> Path:
    """Make ``db_path`` safe to open: private folder (when we create it or it is the default), 0600 file.

    With ``create=False`` (readers such as ``report``) nothing is created: a missing file raises.
    """
    db_path = Path(db_path).expanduser()
    folder = db_path.parent
    ours = db_path == default_db_path()
    if not folder.exists():
        if not create:
            raise BackendPathError(f"no backend database at {db_path}")
        from otel_expansion.config.paths import make_private_dirs

        try:  # every missing folder 0700 whatever the umask (os.makedirs applies the mode to the last only)
            make_private_dirs(str(folder))
        except OSError as exc:
            raise BackendPathError(f"cannot create {folder}: {exc.strerror or exc}") from None
        ours = True
    if folder.is_symlink() and ours:
        raise BackendPathError(f"{folder} is a symbolic link; refusing to store telemetry through it")
    if ours and hasattr(os, "getuid"):
        st = os.stat(folder)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(folder, 0o700)
    try:
        st = os.lstat(db_path)
    except FileNotFoundError:
        if not create:
            raise BackendPathError(f"no backend database at {db_path}") from None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            os.close(os.open(db_path, flags, 0o600))
        except FileExistsError:  # a concurrent creator won the race: check what it made
            st = os.lstat(db_path)
        else:
            return db_path
    if stat.S_ISLNK(st.st_mode):
        raise BackendPathError(f"{db_path} is a symbolic link; refusing to open it")
    if not stat.S_ISREG(st.st_mode):
        raise BackendPathError(f"{db_path} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid == os.getuid() and st.st_mode & 0o077 and create:
        os.chmod(db_path, 0o600)
    return db_path
