"""Configuration, in one module: the telemetry levels and what each one allows, every environment
variable and init() option, named, documented, parsed and defaulted in one table, read once into a frozen
:class:`Settings`, and where state lives with the only ways the package creates or opens files there. The
app's settings file (``file``) and the OTLP variables (``otlp``) are submodules; ``paths`` gives the state
names under their former module name.

One module, not four (it was ``config.levels``, ``config.settings``, ``config.paths`` and this package):
every instrumented CLI loads all of it, and each module more costs its process ~0.3 M instructions and
~75 us. The levels are pure data,
the single source for every level decision; ``Level`` is a small ``int`` subclass rather than an
``enum.IntEnum`` (``enum`` costs ~2 ms to import). Comparisons read naturally: ``level >= ENHANCED``. A bad
setting warns once on stderr and falls back to the safe default; nothing here ever raises into the host
program. Stdlib ``os``/``sys`` only (hot path).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings anyway
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from otel_expansion.config.file import FileValues

_NAMES = ("off", "basic", "enhanced", "full")


class Level(int):
    """An ordered telemetry level: OFF < BASIC < ENHANCED < FULL."""

    __slots__ = ()
    OFF: Level
    BASIC: Level
    ENHANCED: Level
    FULL: Level

    def __new__(cls, value: int | str = 0) -> Level:
        if isinstance(value, str):
            return cls.parse(value)
        number = int(value)
        if not 0 <= number < len(_NAMES):
            raise ValueError(f"{value!r} is not a telemetry level (0-3)")
        return _ALL[number] if _ALL else super().__new__(cls, number)

    @classmethod
    def parse(cls, value: str) -> Level:
        """Parse a level name (case-insensitive); raises ValueError with the accepted names."""
        name = value.strip().lower()
        if name in _NAMES:
            return _ALL[_NAMES.index(name)]
        raise ValueError(f"unknown telemetry level {value!r} (expected {'|'.join(_NAMES)})")

    @property
    def name(self) -> str:
        return _NAMES[self].upper()

    def __str__(self) -> str:
        return _NAMES[self]

    def __repr__(self) -> str:
        return f"Level.{_NAMES[self].upper()}"


_ALL: tuple[Level, ...] = ()
_ALL = tuple(int.__new__(Level, i) for i in range(len(_NAMES)))
Level.OFF, Level.BASIC, Level.ENHANCED, Level.FULL = _ALL
LEVELS = _ALL
"""Every level, lowest first."""

# What each level may collect. Checked by the recorder (before anything is stored) and again inside the
# SDK pipeline (level-filter span processor and metric views), so a bug in one layer cannot leak.
SPANS = Level.ENHANCED
SESSIONS = Level.ENHANCED
PERFORMANCE = Level.ENHANCED
ACTIVITY = Level.ENHANCED
FEATURES = Level.BASIC
FEATURE_ATTRIBUTES = Level.FULL
EXCEPTION_DETAILS = Level.FULL
ARGUMENT_SHAPES = Level.FULL


# -- where state lives, and the only ways the package creates or opens files there ---------------------
# Every write goes through ensure_dir, write_private or open_private, which never follow a link, never reuse
# a predictable temp name, and refuse a state directory that is not a real directory owned by the current
# user (a planted link or another user's home makes telemetry stand down instead of touching files it does
# not own). Here, not in a submodule (it was config/paths.py, which now only gives these names under its
# old name): every recorded run uses them, and each module a CLI loads costs its process ~75 us before its
# first line runs (round 3, seventh session).
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


# -- settings ---------------------------------------------------------------------------------------

__all__ = [
    "ACTIVITY",
    "ARGUMENT_SHAPES",
    "CI_PROVIDERS",
    "EXCEPTION_DETAILS",
    "FEATURES",
    "FEATURE_ATTRIBUTES",
    "HOST",
    "LEVELS",
    "PERFORMANCE",
    "SESSIONS",
    "SPANS",
    "VARIABLES",
    "Level",
    "Settings",
    "Stored",
    "Variable",
    "detect_ci",
    "endpoint_problem",
    "home_of",
    "load",
    "opt_out_set",
    "opted_out",
    "parse_bool",
    "parse_resource_attributes",
    "read_stored",
    "resolve",
    "set_debug_choice",
    "speak_for",
    "variable",
    "variables_markdown",
    "warn",
]


HOST: list[str] = []
"""The host program's name once ``init()`` (or opentelemetry-instrument) has named it: warnings then speak
for that program (config/warn_once.py). Empty in the package's own CLI and the sender."""


MAIN: list[tuple[object, object, tuple[object, ...], str]] = []
"""The host's main script file, ``-m`` module name, ``sys.path`` and working directory as ``init()`` saw them:
which code is the program's (privacy.vocabulary) is decided later, at a failure or at the exit, when
``__main__`` may be gone and a plugin's folder may have been added to ``sys.path``."""


def speak_for(program: str) -> None:
    """Let warnings name ``program``, the host they appear in, and note its main module (called by ``init()``)."""
    HOST[:] = [program] if isinstance(program, str) and program.strip() else []
    if not MAIN:
        import sys  # a builtin, loaded already

        main = sys.modules.get("__main__")
        # under opentelemetry-instrument this runs before the main script is loaded: nothing to note yet
        if getattr(main, "__file__", None) is not None or getattr(main, "__spec__", None) is not None:
            try:
                cwd = os.getcwd()
            except OSError:
                cwd = ""
            MAIN.append((getattr(main, "__file__", None), getattr(getattr(main, "__spec__", None), "name", None),
                         tuple(sys.path), cwd))


def warn(message: str, *, logger: str | None = None) -> None:
    """Say a problem once (config/warn_once.py), imported on the first problem: a run without one never loads it."""
    from otel_expansion.config.warn_once import warn as say_once

    say_once(message, logger=logger)


# -- is this run inside CI? Read from the environment alone. Two stages ask: privacy (never prompt or
# notify in CI) and collect (the ``ci.detected`` resource flag), so it lives with the settings. --------
# Environment variables that identify a CI provider, checked in order.
CI_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("GITHUB_ACTIONS", "github_actions"),
    ("GITLAB_CI", "gitlab"),
    ("CIRCLECI", "circleci"),
    ("TRAVIS", "travis"),
    ("JENKINS_URL", "jenkins"),
    ("BUILDKITE", "buildkite"),
    ("TF_BUILD", "azure_pipelines"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("CODEBUILD_BUILD_ID", "aws_codebuild"),
    ("DRONE", "drone"),
    ("APPVEYOR", "appveyor"),
)


def detect_ci(environ: Mapping[str, str]) -> str | None:
    """The CI provider's name, "generic" for a bare ``CI=true``, or None outside CI."""
    for var, name in CI_PROVIDERS:
        if environ.get(var):
            return name
    ci = environ.get("CI", "").strip().lower()
    if ci and ci not in ("0", "false", "no"):
        return "generic"
    return None


TRUTHY = frozenset({"1", "true", "yes", "on"})
FALSY = frozenset({"0", "false", "no", "off", ""})


def parse_bool(raw: str) -> bool | None:
    """The package's one reading of a boolean variable: True, False, or None when it is neither."""
    value = raw.strip().lower()
    if value in TRUTHY:
        return True
    if value in FALSY:
        return False
    return None


class Variable:
    """One environment variable: its name, default (as you would write it), kind, meaning and the setting
    it fills. The README's table, ``otel-expansion debug`` and :class:`Settings`' defaults all come from
    :data:`VARIABLES`; a test keeps the README in sync."""

    __slots__ = ("default", "doc", "field", "kind", "minimum", "name", "scale")

    def __init__(self, name: str, default: str, kind: str, doc: str, field: str | None = None,
                 scale: float = 1.0, minimum: float = 0) -> None:
        self.name, self.default, self.kind, self.doc, self.field = name, default, kind, doc, field
        self.scale, self.minimum = scale, minimum

    @property
    def secret(self) -> bool:
        """Values that must never be printed (credentials, salts)."""
        return self.name.endswith(("HEADERS", "SALT"))


# kinds: flag | number | integer | lines | text | name | level | opt-out | resource | otlp; each is parsed by
# ``_parse`` (name: stripped text), except otlp, whose family (with its per-signal variants) config/otlp.py reads
VARIABLES: tuple[Variable, ...] = (
    Variable("OTEL_SDK_DISABLED", "false", "opt-out", "true turns all telemetry off (standard OTel variable)."),
    Variable("DO_NOT_TRACK", "unset", "opt-out",
             "Any value but 0/false turns all telemetry off (consoledonottrack.com)."),
    Variable("OTEL_SERVICE_NAME", "init() argument", "name",
             "Ignored unless the app opts in with `init(service_name_env=True)` (and under "
             "`opentelemetry-instrument`); then names the service when identifier-shaped."),
    Variable("OTEL_RESOURCE_ATTRIBUTES", "unset", "resource",
             "Resource attributes k=v,k2=v2: taken over only for keys in `init(resource_keys=...)`; "
             "identifying keys never."),
    Variable("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318", "otlp",
             "Collector base URL (also `*_TRACES_`/`*_METRICS_`; init(endpoint=) wins)."),
    Variable("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "otlp", "http/protobuf or http/json (also per signal)."),
    Variable("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", "otlp", "gzip or none (also per signal)."),
    Variable("OTEL_EXPORTER_OTLP_HEADERS", "unset", "otlp",
             "Headers k=v,k2=v2 sent with every export (also per signal)."),
    Variable("OTEL_EXPORTER_OTLP_TIMEOUT", "10000", "otlp", "Per-request timeout in milliseconds (also per signal)."),
    Variable("OTEL_EXPORTER_OTLP_INSECURE", "false", "otlp", "true: an endpoint without a scheme uses http://."),
    Variable("OTEL_EXPORTER_OTLP_CERTIFICATE", "unset", "otlp",
             "CA bundle for TLS (also `_CLIENT_KEY`/`_CLIENT_CERTIFICATE`, and per signal)."),
    Variable("OTEL_TRACES_EXPORTER", "otlp", "otlp", "none keeps spans off the wire (dropped and counted)."),
    Variable("OTEL_METRICS_EXPORTER", "otlp", "otlp", "none keeps metrics off the wire (dropped and counted)."),
    Variable("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512", "integer", "Most spans in one export request.",
             "span_batch_size", minimum=1),
    Variable("OTEL_BSP_SCHEDULE_DELAY", "5000", "number",
             "ms between a long-running program's commits to the local spool.", "span_interval_s",
             scale=0.001, minimum=0.01),
    Variable("OTEL_METRIC_EXPORT_INTERVAL", "60000", "number",
             "ms between sends: long-running programs' thread, and how often CLI runs start a sender.",
             "metric_interval_s", scale=0.001, minimum=0.01),
    Variable("OTEL_EXPANSION_HOME", "per-user state dir", "name",
             "State directory: journal, spool, ids, consent (`~/.local/state/otel-expansion/<service>`, below)."),
    Variable("OTEL_EXPANSION_LEVEL", "app's level, else enhanced", "level",
             "off, basic, enhanced, full; beats the app and settings.toml, not `telemetry level` (but `off` "
             "beats everything: an opt-out)."),
    Variable("OTEL_EXPANSION_DEBUG", "false", "flag",
             "true/false: the debug stream, every recorded signal as it will be sent, on stderr and the "
             "`otel_expansion` logger (wins over `otel-expansion debug on\\|off`).", "debug"),
    Variable("OTEL_EXPANSION_DEBUG_JSON", "false", "flag",
             "true: the debug stream prints each record in full as OTLP/JSON, not one readable summary per run "
             "(wins over `debug on --otlp`).", "debug_json"),
    Variable("OTEL_EXPANSION_DRY_RUN", "false", "flag",
             "true records and shows but never sends (wins over `debug on --dry-run`).", "dry_run"),
    Variable("OTEL_EXPANSION_SENT_MAX_BATCHES", "50", "integer",
             "Recently sent requests kept locally for `show --sent` and `ui` (0: none).", "sent_max_batches"),
    Variable("OTEL_EXPANSION_SENT_MAX_BYTES", "2097152", "integer",
             "Byte bound of that history; the oldest go first.", "sent_max_bytes"),
    Variable("OTEL_EXPANSION_SEND", "true", "flag", "false keeps data local (spool only); `flush` sends it later.",
             "send"),
    Variable("OTEL_EXPANSION_SPOOL_MAX_BYTES", "20971520", "integer",
             "Cap on pending data in the spool (the file adds ~80 KiB of structure); the oldest data is dropped "
             "first, and counted.", "spool_max_bytes", minimum=65536),
    Variable("OTEL_EXPANSION_SPOOL_MAX_AGE", "604800", "number", "Seconds pending data is kept before it is dropped.",
             "spool_max_age_s", minimum=1),
    Variable("OTEL_EXPANSION_SENDER_TIMEOUT", "60", "number",
             "Seconds a background sender may live (a hard alarm backs it up).", "sender_timeout_s", minimum=1),
    Variable("OTEL_EXPANSION_SESSION_IDLE", "1800", "number", "Seconds of inactivity that end a CLI session.",
             "session_idle_s", minimum=1),
    Variable("OTEL_EXPANSION_REDACT_PATTERNS", "unset", "lines", "Extra regexes to redact, one per line.",
             "redact_patterns"),
    Variable("OTEL_EXPANSION_REDACT_ALLOW", "unset", "lines", "Exact strings never redacted, one per line.",
             "redact_allow"),
    Variable("OTEL_EXPANSION_HASH_SALT", "unset", "text", "Salt for hashing identifiers passed to feature().",
             "hash_salt"),
)


_ROWS = {v.name: v for v in VARIABLES}


def variables_markdown() -> str:
    """The configuration reference's table (docs/configuration.md), generated from :data:`VARIABLES`."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default} | {v.doc} |" for v in VARIABLES]
    return "\n".join(rows)


def _parse(var: Variable, raw: str | None) -> object:
    """``raw`` read as ``var``'s kind; a bad value warns once and gives the default."""
    default_raw = var.default
    if var.kind == "flag":
        fallback = parse_bool(default_raw)
        if raw is None:
            return fallback
        value = parse_bool(raw)
        if value is None:
            warn(f"{var.name} is not a boolean (use true/false); using {default_raw}")
            return fallback
        return value
    if var.kind in ("number", "integer"):
        fallback_n = float(default_raw) * var.scale
        if raw is None or not raw.strip():
            number = fallback_n
        else:
            try:
                number = float(raw) * var.scale
            except ValueError:
                number = float("nan")
            if not number >= var.minimum or number == float("inf"):
                warn(f"{var.name} is not a valid number (>= {var.minimum:g}); using {default_raw}")
                number = fallback_n
        return int(number) if var.kind == "integer" else number
    if var.kind == "lines":
        return tuple(line for line in (raw or "").splitlines() if line.strip())
    if var.kind == "name":
        return (raw or "").strip() or None
    if var.kind == "level":  # None when unset; BAD_VALUE is said by resolve(), with the level in effect
        text = (raw or "").strip()
        if not text:
            return None
        try:
            return Level.parse(text)
        except ValueError:
            return BAD_VALUE
    if var.kind == "opt-out":  # OTEL_SDK_DISABLED is a standard boolean; DO_NOT_TRACK is set by any value but
        if var.name == "OTEL_SDK_DISABLED":  # empty, 0, false, no, off
            return bool(parse_bool(raw or ""))
        return opt_out_set({var.name: raw or ""}, var.name)
    if var.kind == "resource":
        return parse_resource_attributes(raw or "")
    if var.kind == "otlp":
        raise ValueError(f"{var.name} is read with its per-signal variants by config/otlp.py")
    return raw if raw else None


BAD_VALUE = object()
"""What :func:`variable` gives for a value its row cannot read and whose warning needs more context."""


def _from_environment(env: Mapping[str, str]) -> dict[str, object]:
    """Every setting a variable fills, read from ``env``."""
    return {v.field: _parse(v, env.get(v.name)) for v in VARIABLES if v.field}


_DEFAULTS: dict[str, object] = {
    "service_name": "unknown_service",
    "service_version": None,
    "home": "",
    "level": Level.ENHANCED,
    "level_source": "default",
    "opt_out_reason": None,
    "consent_policy": "notify",
    "instrument": True,
    "mode": "auto",
    "endpoint": None,
    "resource_attributes": (),
    "opt_out_env": None,
    "debug_source": "default",
    **_from_environment({}),  # every variable-backed setting defaults to its variable's documented default
}


class Settings:
    """Everything the library needs to know, resolved once per init(). Immutable after construction.

    A plain slotted class (not a dataclass): ``dataclasses`` costs ~8 ms to import in a CLI's process.
    """

    __slots__ = tuple(_DEFAULTS)
    service_name: str
    service_version: str | None
    home: str
    level: Level
    level_source: str  # default | app | file | env | user | consent-pending | opt-out
    opt_out_reason: str | None
    consent_policy: str  # notify (opt-out) | ask (opt-in)
    debug: bool
    debug_source: str  # default | app | user (`otel-expansion debug on|off`) | env
    debug_json: bool  # the debug stream as full OTLP/JSON instead of a summary
    dry_run: bool
    send: bool
    instrument: bool
    mode: str  # auto | cli | service
    endpoint: str | None
    spool_max_bytes: int
    spool_max_age_s: float
    sender_timeout_s: float
    session_idle_s: float
    span_batch_size: int
    span_interval_s: float
    metric_interval_s: float
    resource_attributes: tuple[tuple[str, str], ...]
    redact_patterns: tuple[str, ...]
    redact_allow: tuple[str, ...]
    hash_salt: str | None
    opt_out_env: str | None
    sent_max_batches: int
    sent_max_bytes: int

    def __init__(self, service_name: str, **values: Any) -> None:
        unknown = set(values) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        object.__setattr__(self, "service_name", service_name)
        for key, default in _DEFAULTS.items():
            if key != "service_name":
                object.__setattr__(self, key, values.get(key, default))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Settings are immutable")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in _DEFAULTS)
        return f"Settings({fields})"

    @property
    def enabled(self) -> bool:
        return self.level > Level.OFF


def opt_out_set(env: Mapping[str, str], name: str) -> bool:
    """An opt-out variable (``DO_NOT_TRACK``, the app's own) is set: any value but empty, 0, false, no, off."""
    raw = env.get(name, "").strip().lower()
    return bool(raw) and raw not in FALSY


def opted_out(env: Mapping[str, str], opt_out_env: str | None = None) -> str | None:
    """The variable that opts this run out, if any. Opt-out wins over every other setting."""
    for name in ("OTEL_SDK_DISABLED", "DO_NOT_TRACK"):  # the table's opt-out rows
        if variable(name, env):
            return name
    if opt_out_env and opt_out_set(env, opt_out_env):
        return opt_out_env
    return None


def variable(name: str, environ: Mapping[str, str] | None = None) -> object:
    """One table-backed variable read from the environment by its row in :data:`VARIABLES` (its kind's
    parser, its default, its warning): for code that needs a single setting without a whole resolve."""
    return _parse(_ROWS[name], (os.environ if environ is None else environ).get(name))


def parse_resource_attributes(raw: str) -> tuple[tuple[str, str], ...]:
    """OTEL_RESOURCE_ATTRIBUTES: ``k=v,k2=v2`` with percent-encoding; bad members warn and are skipped."""
    out: list[tuple[str, str]] = []
    for member in raw.split(","):
        if not member.strip():
            continue
        key, sep, value = member.partition("=")
        if not sep or not key.strip():
            warn(f"OTEL_RESOURCE_ATTRIBUTES member {len(out) + 1} is not key=value; ignored")  # never the value
            continue
        if "%" in value:
            from urllib.parse import unquote

            value = unquote(value)
        out.append((key.strip(), value.strip()))
    return tuple(out)


def home_of(service_name: str, home: str | None, env: Mapping[str, str]) -> str:
    """The app's state directory: OTEL_EXPANSION_HOME, else init(home=...), else the per-user default.

    It belongs to the app, not to whatever OTEL_SERVICE_NAME a developer exported for their own services."""
    return os.path.abspath(os.path.expanduser(str(variable("OTEL_EXPANSION_HOME", env) or home
                                                  or default_home(service_name))))


def state_name(service_name: object, env: Mapping[str, str], from_env: bool) -> str:
    """The name the app's state directory (its consent and level) is kept under: the app's own name, even
    when an opted-in OTEL_SERVICE_NAME renames its data; a program with no name of its own (a script under
    ``opentelemetry-instrument``, whose configuration is the environment) is the one the environment names."""
    app = service_name if isinstance(service_name, str) and service_name else "unknown_service"
    return service_name_of(app, env.get("OTEL_SERVICE_NAME", ""), True) if from_env and app == "unknown_service" \
        else app


def service_name_of(app_name: object, env_name: str, from_env: bool) -> str:
    """``service.name`` is the app's own: the end user's ``OTEL_SERVICE_NAME`` counts only when the app
    opted in (``init(service_name_env=True)``, and ``opentelemetry-instrument``, whose configuration is
    the environment), and then only an identifier-shaped value (lower-case first, ASCII letters, digits and
    ``-_.``, at most four digits); otherwise the app's name stands."""
    app = app_name if isinstance(app_name, str) and app_name else "unknown_service"
    candidate = env_name.strip() if from_env and isinstance(env_name, str) else ""
    if (candidate and len(candidate) <= 64 and candidate.isascii() and candidate[0].islower()
            and candidate.replace("-", "").replace("_", "").replace(".", "").isalnum()
            and sum(c.isdigit() for c in candidate) <= 4):
        return candidate
    return app


def resolve(
    service_name: str,
    service_version: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    level: str | Level | None = None,
    home: str | None = None,
    consent: str = "notify",
    opt_out_env: str | None = None,
    debug: bool | None = None,
    send: bool | None = None,
    instrument: bool = True,
    mode: str = "auto",
    endpoint: str | None = None,
    redact_patterns: Sequence[str] = (),
    redact_allow: Sequence[str] = (),
    hash_salt: str | None = None,
    stored_choice: str | None = None,
    file_values: FileValues | None = None,
    stored_debug: str | None = None,
    service_name_env: bool = False,
) -> Settings:
    """Build Settings from init() options and the environment (standard OTEL_* first, then ours).

    ``stored_choice`` is the user's persisted consent ("granted:<level>", "granted<=<level>" (a yes to
    the first-run question: a ceiling, not a choice of level), "denied"), read by the caller
    so that this function stays free of I/O. ``file_values`` are the settings file's (config/file.py) and
    ``stored_debug`` the app's debug switch (``off``, ``on`` [``dry-run``] [``json``], written by ``otel-expansion
    debug`` and ``<prog> telemetry debug``); both are read from the state directory when None.
    Precedence, lowest first: init() options < settings file < environment < the user's stored choice;
    opt-out variables win over all of them. For debug the variable wins over the stored switch (so that
    ``OTEL_EXPANSION_DEBUG=0`` silences a switch left on).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    name = service_name_of(service_name, env.get("OTEL_SERVICE_NAME", ""), service_name_env)
    if consent not in ("notify", "ask"):
        warn("init(consent=...) is not 'notify' or 'ask'; using 'ask' (the stricter policy)")
        consent = "ask"
    if mode not in ("auto", "cli", "service"):
        warn("init(mode=...) is not auto|cli|service; using auto")
        mode = "auto"

    # The state directory (and with it the user's consent and level) belongs to the app, not to whatever
    # OTEL_SERVICE_NAME a developer exported for their own services.
    home_dir = home_of(state_name(service_name, env, service_name_env), home, env)
    if file_values is None:  # the parser is imported only when there is a file (most homes have none)
        file_values = {}
        if os.path.lexists(os.path.join(home_dir, SETTINGS_FILE)):
            from otel_expansion.config import file as settings_file

            file_values = settings_file.load(home_dir, Level.parse)
    if stored_debug is None:
        stored_debug = read_debug(home_dir)

    app_level = Level.ENHANCED
    if level is not None:
        try:
            app_level = level if isinstance(level, Level) else Level.parse(str(level))
        except ValueError:
            warn("init(level=...) is not off|basic|enhanced|full; using enhanced")
    resolved, source = app_level, ("app" if level is not None else "default")
    if "level" in file_values:
        resolved, source = Level(file_values["level"]), "file"
    env_level = variable("OTEL_EXPANSION_LEVEL", env)
    bad_level = env_level is BAD_VALUE  # said below, with the level that is in effect once everything is applied
    if isinstance(env_level, Level):
        resolved, source = env_level, "env"
    if stored_choice == "denied":
        resolved, source = Level.OFF, "user"
    elif stored_choice and stored_choice.startswith("granted<="):  # a yes to the first-run question
        try:  # its level caps the app's and the file's level; the user's own variable still applies
            ceiling = Level.parse(stored_choice[len("granted<="):])
        except ValueError:
            ceiling = Level.OFF  # a damaged answer allows nothing more than off
        if source != "env" and resolved > ceiling:
            resolved = ceiling
        if source in ("default", "app"):
            source = "user"  # the user answered: nothing more to ask (consent.first_run_due)
    elif stored_choice and stored_choice.startswith("granted"):
        _, _, lvl = stored_choice.partition(":")
        try:
            if lvl:
                resolved, source = Level.parse(lvl), "user"
            elif source in ("default", "app"):  # consent without a level: the level configured below
                source = "user"
        except ValueError:
            source = "user" if source in ("default", "app") else source
    elif consent == "ask" and source in ("default", "app"):  # a file or variable level counts as a choice
        resolved, source = Level.OFF, "consent-pending"
    if isinstance(env_level, Level) and env_level == Level.OFF:  # the user's own variable says off: that wins
        resolved, source = Level.OFF, "env"                       # over a level they stored too, as an opt-out
    reason = opted_out(env, opt_out_env)
    if reason:
        resolved, source = Level.OFF, "opt-out"
    if bad_level:
        warn(f"OTEL_EXPANSION_LEVEL is not off|basic|enhanced|full; ignored (level in effect: {resolved})")
    if endpoint is not None and (problem := endpoint_problem(endpoint)):
        warn(f"the collector endpoint (init(endpoint=...) or a stored one) {problem}; nothing will be sent until "
             "it is fixed")
    elif (raw_endpoint := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()) and (
            problem := endpoint_problem(raw_endpoint if "://" in raw_endpoint else "http://" + raw_endpoint)):
        warn(f"OTEL_EXPORTER_OTLP_ENDPOINT {problem}; nothing will be sent until it is fixed")
    values = _from_environment(env)
    # debug: init(debug=) < settings file < stored switch < OTEL_EXPANSION_DEBUG
    given_debug = file_values.get("debug", debug)
    debug_on, values["debug_source"] = bool(given_debug), ("default" if given_debug is None else
                                                          "file" if "debug" in file_values else "app")
    stored_dry = False
    if stored_debug:
        words = stored_debug.split()
        debug_on, values["debug_source"], stored_dry = words[:1] == ["on"], "user", "dry-run" in words
        if "json" in words and not env.get("OTEL_EXPANSION_DEBUG_JSON", "").strip():
            values["debug_json"] = True
    if env.get("OTEL_EXPANSION_DEBUG", "").strip():
        debug_on, values["debug_source"] = bool(values["debug"]), "env"
    values["debug"] = debug_on
    if not env.get("OTEL_EXPANSION_DRY_RUN", "").strip():
        values["dry_run"] = stored_dry
    # send: init(send=) < settings file < OTEL_EXPANSION_SEND; dry-run never sends
    given_send = file_values.get("send", send)
    if given_send is not None and not env.get("OTEL_EXPANSION_SEND", "").strip():
        values["send"] = given_send
    values["send"] = bool(values["send"]) and not values["dry_run"]
    values["redact_patterns"] = tuple(redact_patterns) + values["redact_patterns"]  # type: ignore[operator]
    values["redact_allow"] = tuple(redact_allow) + values["redact_allow"]  # type: ignore[operator]
    values["hash_salt"] = values["hash_salt"] or hash_salt
    return Settings(
        service_name=name,
        service_version=service_version,
        home=home_dir,
        level=resolved,
        level_source=source,
        opt_out_reason=reason,
        consent_policy=consent,
        instrument=instrument,
        mode=mode,
        endpoint=endpoint,
        resource_attributes=variable("OTEL_RESOURCE_ATTRIBUTES", env),
        opt_out_env=opt_out_env,
        **values,
    )


def endpoint_problem(value: str) -> str | None:
    """Why ``value`` cannot be a collector base URL (None when it can): an http(s) scheme and a host, no
    spaces. String operations only (``urllib.parse`` would cost a CLI's process its import); the sender
    checks the URL fully again (config/otlp.py). The reason never quotes the value: it may hold a token."""
    v = value.strip()
    scheme, sep, rest = v.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return "is not an http(s) URL (scheme://host[:port][/path])"
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if not host or host.startswith(":") or any(c.isspace() for c in v):
        return "is not an http(s) URL with a host"
    port = host.rpartition("]")[2].partition(":")[2] if host.startswith("[") else host.partition(":")[2]
    if ":" in host and not (port.isdigit() and int(port) <= 65535):
        return "has an invalid port"
    return None


class Stored:
    """The user's and the app's choices stored in one state directory, read once by :func:`read_stored`.

    ``choice``: consent (``granted``, ``granted:<level>``, ``denied``) or None; ``debug``: the debug switch
    (``on``, ``off``, ``on dry-run``) or None; ``endpoint``: init(endpoint=...) as remembered for the sender
    and ``flush``; ``opt_out_env``: the app's own opt-out variable, remembered so tools can honour it.
    """

    __slots__ = ("choice", "debug", "endpoint", "opt_out_env")

    def __init__(self, choice: str | None = None, debug: str | None = None, endpoint: str | None = None,
                 opt_out_env: str | None = None) -> None:
        self.choice, self.debug, self.endpoint, self.opt_out_env = choice, debug, endpoint, opt_out_env


def _read_text(home: str, name: str, limit: int) -> str | None:
    raw = read_small(os.path.join(home, name), limit)
    return raw.decode("utf-8", "replace").strip() or None if raw else None


def read_choice(home: str) -> str | None:
    """The stored consent: ``granted``, ``granted:<level>``, ``granted<=<level>``, ``denied``; None when the
    user never chose."""
    text = _read_text(home, CONSENT_FILE, 64)
    return text if text and (text == "denied" or text.startswith("granted")) else None


def read_debug(home: str) -> str | None:
    """The stored debug switch (``on``, ``off`` or ``on dry-run``): the one reader of the debug file."""
    return _read_text(home, DEBUG_FILE, 64)


def set_debug_choice(home: str, on: bool, dry_run: bool = False, json: bool = False) -> None:
    """Store the app's debug switch: the one writer behind ``otel-expansion debug`` and ``telemetry debug``.

    Written as words: ``off``, or ``on`` followed by ``dry-run`` and/or ``json`` (full OTLP/JSON output).
    """
    words = ["on", *(["dry-run"] if dry_run else []), *(["json"] if json else [])] if on else ["off"]
    ensure_dir(home)
    write_private(os.path.join(home, DEBUG_FILE), " ".join(words).encode())


def read_stored(home: str) -> Stored:
    """Every stored choice of ``home``, each file read once (absent, unreadable or linked files: None)."""
    return Stored(read_choice(home), read_debug(home), _read_text(home, ENDPOINT_FILE, 4096),
                  _read_text(home, OPT_OUT_ENV_FILE, 256))


def load(service_name: str, service_version: str | None = None, *, environ: Mapping[str, str] | None = None,
         home: str | None = None, endpoint: str | None = None, opt_out_env: str | None = None,
         stored: Stored | None = None, **options: Any) -> Settings:
    """The one settings loader: the library (``init``), the sender and the CLI all call it.

    It finds the state directory, reads the stored choices there once (:func:`read_stored`; nothing when an
    opt-out variable is set, so an opted-out run touches no file), and resolves them with the options and
    the environment (:func:`resolve`). The app's own endpoint and opt-out variable win over the stored ones
    (which remember them for the tools). A caller that must leave some stored choice out passes ``stored``
    (the library: its own endpoint and opt-out variable come from init(); the sender: each record carries
    the level it was recorded at, so the consent is not its level).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    if stored is None:
        stored = Stored()
        if opted_out(env, opt_out_env) is None:
            stored = read_stored(home_of(service_name or str(variable("OTEL_SERVICE_NAME", env) or "unknown_service"),
                                         home, env))
    return resolve(service_name, service_version, environ=env, home=home, endpoint=endpoint or stored.endpoint,
                   opt_out_env=opt_out_env or stored.opt_out_env,
                   stored_choice=stored.choice, stored_debug=stored.debug or "",
                   **options)
