"""Where state lives, and the only ways the package creates or opens files there.

Stdlib ``os`` only: this runs in every instrumented CLI. Every write goes through :func:`ensure_dir`,
:func:`write_private` or :func:`open_private`, which never follow a link, never reuse a predictable temp
name, and refuse a state directory that is not a real directory owned by the current user (a planted
link or another user's home makes telemetry stand down instead of touching files it does not own).
"""

from __future__ import annotations

import os
import sys

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
TEMP_SUFFIX = ".tmp"
"""Temp files are ``<target>.<random>.tmp``: unpredictable, created with O_EXCL, swept when stale."""


class UnsafePath(PermissionError):
    """A state path that is a link, not ours, or of the wrong type: the package will not write there."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(1, f"{why}: {path} (telemetry stands down)")
        self.filename = path
        self.why = why


SERVICE_DIR_MAX = 60
"""The longest directory name a service maps to, in characters (at most 240 bytes in UTF-8, under every
file system's 255): longer names keep a prefix and a hash of the whole name, so they stay distinct."""


_WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                              *(f"{d}{i}" for d in ("COM", "LPT") for i in "123456789")})
"""Names Windows gives its devices in every directory (``NUL.txt`` too): never a directory of ours there."""


def _safe(name: str, windows: bool = sys.platform == "win32") -> str:
    """The service name as one safe path component, by construction: letters, digits, ``-``, ``_`` and
    non-leading ``.`` only (``/``, ``\\``, NUL and control characters become ``_``; leading dots too, so
    ``.``, ``..`` and hidden names cannot be made), never empty, at most :data:`SERVICE_DIR_MAX` characters.
    On Windows also never a device name (``con``, ``nul.app``) nor a trailing dot, which Windows drops."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    stripped = out.lstrip(".")
    out = "_" * (len(out) - len(stripped)) + stripped
    if windows:
        kept = out.rstrip(".")
        out = kept + "_" * (len(out) - len(kept))
        if out.partition(".")[0].upper() in _WINDOWS_DEVICES:
            out = "_" + out
    if len(out) > SERVICE_DIR_MAX:
        import hashlib  # only for over-long names: not on any ordinary run's path

        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        out = out[:SERVICE_DIR_MAX - 13] + "-" + digest
    return out or "app"


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


def _uid() -> int | None:
    geteuid = getattr(os, "geteuid", None)
    return geteuid() if geteuid is not None else None


def check_owned(path: str, st: os.stat_result, kind: int) -> None:
    """Raise UnsafePath unless ``st`` (from lstat/fstat of ``path``) is a ``kind`` owned by us."""
    if st.st_mode & _S_IFMT == 0o120000:
        raise UnsafePath(path, "is a symbolic link")
    if st.st_mode & _S_IFMT != kind:
        raise UnsafePath(path, "is not a " + ("directory" if kind == _S_IFDIR else "regular file"))
    uid = _uid()
    if uid is not None and st.st_uid != uid:
        raise UnsafePath(path, f"belongs to uid {st.st_uid}, not the current user ({uid})")
    if kind == _S_IFREG and st.st_nlink > 1:
        raise UnsafePath(path, "has other hard links")


def make_private_dirs(path: str) -> None:
    """Create ``path`` and its missing parents 0700 whatever the umask (never world-writable parents)."""
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    uid = _uid()
    if missing and uid is not None:
        # Creating inside someone else's tree (root running a CLI with another user's HOME) would leave
        # root-owned folders in their home: the nearest existing folder must be ours or root's (/, /tmp).
        owner = os.stat(current).st_uid
        if owner not in (uid, 0):
            raise UnsafePath(current, f"belongs to uid {owner}, not the current user ({uid})")
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue  # another process won the race; checked below like any existing directory
        if sys.platform != "win32":
            os.chmod(d, 0o700)  # we just made it (mkdir never follows a link); umask may have cut bits


def check_dir(path: str) -> None:
    """OSError unless ``path`` is an existing real directory of ours (not a link): checked before use."""
    if sys.platform != "win32":
        check_owned(path, os.lstat(path), _S_IFDIR)


def ensure_dir(path: str) -> str:
    """Create ``path`` (0700) if needed; OSError when it is a link, not ours, or cannot be made private."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        make_private_dirs(path)
        st = os.lstat(path)
    if sys.platform == "win32":  # pragma: no cover - no uid or O_NOFOLLOW semantics to check
        return path
    check_owned(path, st, _S_IFDIR)
    if st.st_mode & 0o077:
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | NOFOLLOW | CLOEXEC)
        try:
            check_owned(path, os.fstat(fd), _S_IFDIR)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    return path


def ensure_own_dir(path: str) -> str:
    """:func:`ensure_dir` for a folder inside a checked state directory, where a regular file, FIFO or
    socket of ours at its name (a hand's mistake, a tool's stray output) would otherwise stop every run
    from recording for good: such a file is renamed aside (``<name>.moved-<random>``, kept, never
    deleted) and the folder made. A link or someone else's file is refused as by ensure_dir."""
    try:
        return ensure_dir(path)
    except UnsafePath:
        try:
            st = os.lstat(path)
        except OSError:
            raise
        uid = _uid()
        if st.st_mode & _S_IFMT in (_S_IFDIR, 0o120000) or (uid is not None and st.st_uid != uid):
            raise
        os.rename(path, f"{path}.moved-{random_id(4)}")
        return ensure_dir(path)


def open_dir(path: str) -> int:
    """An fd on an existing state directory (not a link, ours), for listing and ``dir_fd`` unlinks."""
    fd = os.open(path, os.O_RDONLY | _DIRECTORY | NOFOLLOW | CLOEXEC)
    if sys.platform != "win32":
        try:
            check_owned(path, os.fstat(fd), _S_IFDIR)
        except OSError:
            os.close(fd)
            raise
    return fd


def open_private(path: str, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """Open (creating 0600) a file we update in place: never through a link, only a regular file of ours."""
    fd = os.open(path, flags | NOFOLLOW | CLOEXEC, 0o600)
    if sys.platform != "win32":
        try:
            st = os.fstat(fd)
            check_owned(path, st, _S_IFREG)
            if st.st_mode & 0o777 != 0o600:  # umask-proof: neither wider nor narrower than 0600
                os.fchmod(fd, 0o600)
        except OSError:
            os.close(fd)
            raise
    return fd


# File names inside the home directory, in one place.
JOURNAL_DIR = "journal"
SPOOL_FILE = "spool.sqlite"
SESSION_FILE = "session"
INSTALL_ID_FILE = "installation-id"
CONSENT_FILE = "consent"
SETTINGS_FILE = "settings.toml"  # the app's settings file (config/file.py)
NOTICE_FILE = "notice-shown"  # the first-run notice was shown (notify policy)
LEVEL_CHOICE_FILE = "level-choice"  # the last level the user chose (`telemetry level X`); kept across disable
SENDER_LOCK = "sender.lock"
SENDER_STATE = "sender.state"
SENDER_LOG = "sender.log"
ENDPOINT_FILE = "endpoint"  # init(endpoint=...), remembered for the sender and `otel-expansion flush`
DEBUG_FILE = "debug"  # `otel-expansion debug on|off [--dry-run] [--json]`: "off", or "on" [dry-run] [json]
OPT_OUT_ENV_FILE = "opt-out-env"  # the app's own opt-out variable, so tools can name it
LAST_SEND_FILE = "last-send.json"  # the last sender round's result, for `status` and the inspector
SENT_DIR = "sent"  # recently sent requests (bounded), for `show --sent` and the inspector
PUBLISHED_FILE = "published"  # console script names proved published by entry points (public; see recorder)
SERVICE_FILE = "service"  # the app's name, so tools can label a home whatever its directory is called
PLAIN_NAME_FILE = "plain-name"  # proof that the service name passed redaction unchanged (see collect/__init__.py)


def write_private(path: str, data: bytes, *, token: str | None = None) -> None:
    """Write ``data`` atomically (temp file + rename) with mode 0600: readers never see half a file.

    The temp name is random and created with O_EXCL | O_NOFOLLOW, so a planted file or link at any
    predictable name is never opened; the rename replaces a link at ``path`` rather than following it.
    ``token``: the caller checked the directory already (``check_dir``) and gives the random part of the
    temp name (a fresh ``random_id`` per batch of writes to distinct paths).
    """
    if token is None:
        check_dir(os.path.dirname(path) or ".")  # never into a directory that is a link or not ours
        token = os.urandom(6).hex()
    tmp = f"{path}.{token}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
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
    """Read a small state file; None when absent, unreadable or a link."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def sweep_temp(directory: str, older_than_s: float, now_s: float) -> int:
    """Delete our ``<name>.<random>.tmp`` leftovers of processes killed mid-write; returns how many."""
    removed = 0
    try:
        fd = open_dir(directory)
    except OSError:
        return 0
    try:
        for name in os.listdir(fd):
            if not name.endswith(TEMP_SUFFIX):
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if now_s - st.st_mtime > older_than_s:
                    os.unlink(name, dir_fd=fd)  # unlinking a link removes only the link
                    removed += 1
            except OSError:
                pass
    finally:
        os.close(fd)
    return removed


def random_id(nbytes: int = 16) -> str:
    """Random hex id from the OS CSPRNG (``uuid`` costs ~20 ms to import; this costs nothing)."""
    return os.urandom(nbytes).hex()
