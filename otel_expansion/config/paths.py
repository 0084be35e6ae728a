"""Where state lives. Stdlib ``os`` only: this runs in every instrumented CLI."""

from __future__ import annotations

import os
import sys


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "app"


def default_home(service_name: str, environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """Per-user state directory per service, following each platform's convention."""
    env = os.environ if environ is None else environ
    service = _safe(service_name)
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        return os.path.join(base, "otel-expansion", service)
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~/Library/Application Support"), "otel-expansion", service)
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "otel-expansion", service)


def ensure_dir(path: str) -> str:
    """Create ``path`` (0700) if needed; raises OSError when it cannot be made private and writable."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


# File names inside the home directory, in one place.
JOURNAL_DIR = "journal"
SPOOL_FILE = "spool.sqlite"
SESSION_FILE = "session"
INSTALL_ID_FILE = "installation-id"
CONSENT_FILE = "consent"
SENDER_LOCK = "sender.lock"
SENDER_STATE = "sender.state"
SENDER_LOG = "sender.log"
ENDPOINT_FILE = "endpoint"  # init(endpoint=...), remembered for the sender and `otel-expansion flush`
DEBUG_FILE = "debug"  # `otel-expansion debug on|off [--dry-run]`: "on", "off" or "on dry-run"
OPT_OUT_ENV_FILE = "opt-out-env"  # the app's own opt-out variable, so tools can name it
LAST_SEND_FILE = "last-send.json"  # the last sender round's result, for `status` and the inspector
SENT_DIR = "sent"  # recently sent requests (bounded), for `show --sent` and the inspector
SERVICE_FILE = "service"  # the app's name, so tools can label a home whatever its directory is called


def write_private(path: str, data: bytes) -> None:
    """Write ``data`` atomically (temp file + rename) with mode 0600: readers never see half a file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:  # noqa: SIM105 - a full disk must not leave temp files behind (contextlib: an import)
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_small(path: str, limit: int = 65536) -> bytes | None:
    """Read a small state file; None when absent or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def random_id(nbytes: int = 16) -> str:
    """Random hex id from the OS CSPRNG (``uuid`` costs ~20 ms to import; this costs nothing)."""
    return os.urandom(nbytes).hex()
