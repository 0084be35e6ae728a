"""Collection: the in-process recorder shared by every integration and the manual API, and who and where
this run is (the resource every signal carries and the CLI session its record belongs to). The features,
the usage aggregate and the framework integrations are submodules.

One module, not three (it was ``collect.recorder``, ``collect.resource`` and this package): every recorded
run needs all of it, and each module a CLI imports costs its process ~0.3 M instructions (DESIGN.md, CLI
path).

The recorder: a finished command becomes a small plain dict, already minimised for the level and redacted,
so nothing that leaves this module (journal file or SDK pipeline) can carry more than the level allows.
Recording costs a few microseconds and imports nothing; the heavy work happens in the sender.

The resource is computed once per process. Ambient resource attributes (OTEL_RESOURCE_ATTRIBUTES) are taken
over only for keys the app allow-lists, and those that identify a machine or a person never; a version is
sent as its public part.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import FrameType, ModuleType
    from typing import Any

    from otel_expansion.journal.record import (
        Body,
        CommandEntry,
        EndedSessionEntry,
        ExceptionDetails,
        FeatureEntry,
        HandledException,
        SessionPart,
    )

from otel_expansion import config as levels
from otel_expansion.config import CI_PROVIDERS as CI_PROVIDERS  # re-exported: the environment's CI detection
from otel_expansion.config import (
    INSTALL_ID_FILE,
    SESSION_FILE,
    Level,
    Settings,
    ensure_dir,
    open_private,
    random_id,
    read_small,
    write_private,
)
from otel_expansion.config import detect_ci as detect_ci

_cache: dict[str, dict[str, Any]] = {}

IDENTIFYING_RESOURCE_KEYS = (
    "host.name", "host.id", "host.ip", "host.mac", "enduser.", "user.", "client.", "net.", "network.",
    "device.id", "process.owner", "process.command", "process.pid", "process.executable.path",
    "k8s.pod.", "k8s.node.", "container.id", "container.name", "cloud.account.id",
)
"""OTEL_RESOURCE_ATTRIBUTES keys never taken over: they identify a machine or a person."""


def resource_for(settings: Settings, clean: Callable[[str], str],
                 allow: Sequence[str] | Mapping[str, frozenset[str] | None] = ()) -> dict[str, Any]:
    """Service identity, coarse environment and the anonymous installation id (computed once).

    ``clean`` is the recorder's redaction of free text, applied to every value taken from outside.
    ``allow``: the OTEL_RESOURCE_ATTRIBUTES keys the app takes over (init(resource_keys=...)); the
    variable belongs to the end user's own observability set-up, so by default nothing of it is used.
    """
    if "value" not in _cache:
        from otel_expansion.config import SERVICE_FILE

        s = settings
        attrs: dict[str, Any] = {}
        if s.resource_attributes and allow:  # else nothing is taken over: privacy.names is not needed
            from otel_expansion.privacy.names import ambient_resource

            for key, value in ambient_resource(s.resource_attributes, allow).items():
                if not key.startswith(IDENTIFYING_RESOURCE_KEYS):  # minimisation beats a stray variable
                    attrs[key] = clean(value)
        attrs.update(resource_attributes())
        attrs["service.name"] = clean_service_name(s, clean)
        version = public_version(s.service_version)  # 1.0+jane.laptop -> 1.0: a local label names a machine
        if version:
            attrs["service.version"] = version
        attrs["otel_expansion.installation.id"] = installation_id(s.home)
        service_file = os.path.join(s.home, SERVICE_FILE)
        if not os.path.exists(service_file):
            write_private(service_file, s.service_name.encode())
        if s.opt_out_env:  # so `otel-expansion status` can name the app's own opt-out variable
            from otel_expansion.config import OPT_OUT_ENV_FILE

            opt_file = os.path.join(s.home, OPT_OUT_ENV_FILE)
            if read_small(opt_file, 256) != s.opt_out_env.encode():
                write_private(opt_file, s.opt_out_env.encode())
        _cache["value"] = attrs
    return dict(_cache["value"])


def clean_service_name(settings: Settings, clean: Callable[[str], str]) -> str:
    """``clean(settings.service_name)``, or the name itself when this home holds the proof that it came
    through unchanged under the same inputs (:func:`plain_name_proof`): a steady-state run then loads no
    privacy module (two modules, ~1.2 M instructions). A name that redaction changes is never proved, so
    it is redacted on every run."""
    name = settings.service_name
    proof = plain_name_proof(settings)
    if proof is None:
        return clean(name)
    from otel_expansion.config import PLAIN_NAME_FILE

    path = os.path.join(settings.home, PLAIN_NAME_FILE)
    if read_small(path, 64) == proof:
        return name
    cleaned = clean(name)
    if cleaned == name and os.path.isdir(settings.home):
        try:  # noqa: SIM105 -- contextlib.suppress would cost a CLI's process the import of contextlib
            write_private(path, proof)
        except OSError:
            pass
    return cleaned


_RULE_SOURCES = ("patterns.py", "redaction.py")
"""The privacy modules whose rules decide ``Recorder.clean`` (``privacy.redaction`` imports only
``privacy.patterns``): their files' identity is part of the proof, as a ``.pyc`` keys on its source."""


def plain_name_proof(settings: Settings) -> bytes | None:
    """A digest of everything ``Recorder.clean`` reads to decide the service name: the name, the
    redaction options, the user's and the host's names and home directories it hides, and the size and
    modification time of the rule sources. None when a rule source cannot be found (a frozen app, a
    zipapp): the name is then cleaned on every run. The text as a number modulo two Mersenne primes (61
    and 89 bits; builtins only: ``binascii`` costs a CLI ~0.35 ms to load): the inputs are the user's
    own, nobody chooses them to collide; a digest, so the file does not keep the user's or the host's
    names."""
    try:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        rules = []
        for source in _RULE_SOURCES:
            st = os.stat(os.path.join(here, "privacy", source))
            rules.append((st.st_mtime_ns, st.st_size))
        node = os.uname().nodename if hasattr(os, "uname") else ""
    except OSError:
        return None
    env = os.environ
    s = settings
    key = repr(("plain-name/1", s.service_name, s.redact_patterns, s.redact_allow, s.hash_salt, rules, node,
                [env.get(v) for v in ("USER", "USERNAME", "LOGNAME", "HOME", "USERPROFILE", "COMPUTERNAME")]))
    data = key.encode("utf-8", "surrogatepass")
    number = int.from_bytes(data, "little")
    return b"%016x%023x" % (number % ((1 << 61) - 1), number % ((1 << 89) - 1))


def public_version(version: object) -> str | None:
    """``privacy.names.public_version``: a plain release (``1.2.3``: dot-separated runs of at most nine
    ASCII digits) is its own public part, proved here with string methods; any other text is decided
    there (a test holds the two equal), so the common case does not load that module."""
    if type(version) is str and version and all(
            p.isdigit() and p.isascii() and len(p) <= 9 for p in version.split(".")):
        return version
    from otel_expansion.privacy.names import public_version as public_part

    return public_part(version)


def forget() -> None:
    """Drop the cached resource (a new init() in the same process, or tests)."""
    _cache.clear()


# -- the coarse environment, from os/sys alone (``platform`` costs ~20 ms to import; everything here comes
# from already-loaded modules and a few stats, so it runs in the CLI's own process) --------------------------

OS_TYPES = {"linux": "linux", "darwin": "darwin", "win32": "windows", "cygwin": "windows"}


def detect_container() -> bool:
    """Cheap container heuristics: marker files, then the init process's cgroup."""
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    try:
        with open("/proc/1/cgroup", "rb") as f:
            data = f.read(4096)
    except OSError:
        return False
    return any(marker in data for marker in (b"docker", b"kubepods", b"containerd", b"libpod", b"lxc"))


def resource_attributes(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Coarse environment only: nothing that identifies a host or a person (no hostname, no user)."""
    env = os.environ if environ is None else environ
    uname = os.uname() if hasattr(os, "uname") else None
    impl = sys.implementation
    version = "{}.{}.{}".format(*sys.version_info[:3])
    attrs: dict[str, object] = {
        "os.type": OS_TYPES.get(sys.platform, sys.platform),
        "host.arch": _arch(uname.machine if uname else os.environ.get("PROCESSOR_ARCHITECTURE", "")),
        "process.runtime.name": impl.name,
        "process.runtime.version": version,
    }
    if uname is not None:
        attrs["os.version"] = uname.release
    ci = detect_ci(env)
    attrs["ci.detected"] = ci is not None
    if ci is not None:
        attrs["ci.provider"] = ci
    attrs["container.detected"] = detect_container()
    return attrs


def _arch(machine: str) -> str:
    """Map ``uname -m`` spellings to the semantic-convention values of ``host.arch``."""
    m = machine.lower()
    return {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "i386": "x86",
        "i686": "x86",
        "x86": "x86",
        "ppc64le": "ppc64",
        "s390x": "s390x",
    }.get(m, m or "unknown")


# -- the anonymous installation id: random bytes, persisted, never derived from the machine or the user -----
def installation_id(home: str) -> str:
    """Read the id, creating it on first use. Only hex survives a tampered file."""
    path = os.path.join(home, INSTALL_ID_FILE)
    raw = read_small(path, 128)
    if raw:
        text = raw.decode("ascii", "replace").strip()
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
            return text
    return reset_installation_id(home)


def reset_installation_id(home: str) -> str:
    """Forget the old id and start a new, unlinkable one."""
    ensure_dir(home)
    new = random_id(16)
    write_private(os.path.join(home, INSTALL_ID_FILE), new.encode("ascii"))
    return new


# -- CLI sessions: consecutive runs share ``session.id`` until they are ``idle`` seconds apart. State is one
# tiny file per service home, ``<id> <previous id or -> <start ns> <last ns> <commands>``, its fields padded
# to fixed widths so that a run updates it in place, under a POSIX record lock (``os.lockf``: no ``fcntl``
# import) held from reading it to writing it back: concurrent runs neither split a session nor lose a count.
# Not rewritten by rename: replacing an existing file by rename makes ext4 (``auto_da_alloc``) allocate and
# start writing the new file's blocks inside the rename, 0.2-12 ms of kernel time measured per run, more than
# the rest of a recorded run's exit. A file of another length (an older release's, or a new home) is written
# whole (temp file + rename) once; older releases read the padded form (their parser splits on whitespace).
# Without ``os.lockf`` (Windows) every write is whole, as before. ----------------------------------------
class Session:
    __slots__ = ("commands", "id", "last_ns", "previous_id", "start_ns")

    def __init__(self, id: str, previous_id: str | None, start_ns: int, last_ns: int, commands: int) -> None:
        self.id, self.previous_id, self.start_ns, self.last_ns, self.commands = (
            id, previous_id, start_ns, last_ns, commands)


class EndedSession:
    """A session that went idle: recorded once, by the run that starts the next one."""

    __slots__ = ("commands", "duration_s", "end_ns", "id")

    def __init__(self, id: str, duration_s: float, commands: int, end_ns: int) -> None:
        self.id, self.duration_s, self.commands, self.end_ns = id, duration_s, commands, end_ns


def _load_session(path: str) -> Session | None:
    return _parse_session(read_small(path, 512))


def _parse_session(raw: bytes | None) -> Session | None:
    if not raw:
        return None
    try:
        sid, prev, start, last, count = raw.decode("ascii").split()
        return Session(sid, None if prev == "-" else prev, int(start), int(last), int(count))
    except (ValueError, UnicodeDecodeError):
        return None


def _session_bytes(s: Session) -> bytes:
    """The session file's text, every field at a fixed width (ids are 32 hex digits, times 20 digits, the
    count 10): the next run's text has the same length and is written over it in place."""
    return b"%s %-32s %020d %020d %010d" % (s.id.encode("ascii"), (s.previous_id or "-").encode("ascii"), s.start_ns,
                                             s.last_ns, s.commands)


def _locked_session(path: str) -> int | None:
    """The session file, open for update and locked (``os.lockf``) until closed; None when it does not
    exist, is not a regular file of ours, locks are not available, or another process keeps it locked for
    more than ~25 ms (a stopped process: the host's exit never waits on it); then the file is written whole.

    The lock is on the file's inode: once it is held, the file must still be the one at ``path`` (a run
    that wrote it whole, or ``end_session``, may have replaced or removed it meanwhile); else it is opened
    again."""
    lockf = getattr(os, "lockf", None)
    if lockf is None:
        return None
    for _ in range(50):
        try:
            fd = open_private(path, os.O_RDWR)
        except OSError:
            return None
        try:
            lockf(fd, os.F_TLOCK, 0)
        except (BlockingIOError, PermissionError):  # held by another run: EAGAIN or EACCES
            os.close(fd)
            time.sleep(0.0005)
            continue
        except OSError:  # no locks here (ENOLCK on some network filesystems)
            os.close(fd)
            return None
        try:
            st, now = os.fstat(fd), os.lstat(path)
        except OSError:
            now = None
        if now is not None and (st.st_ino, st.st_dev) == (now.st_ino, now.st_dev):
            return fd
        os.close(fd)
    return None


def touch_session(home: str, now_ns: int, idle_s: float, commands: int = 1) -> tuple[Session, EndedSession | None]:
    """Continue or start the session at ``now_ns``; returns it and the session that ended, if any."""
    path = os.path.join(home, SESSION_FILE)
    fd = _locked_session(path)
    try:
        current = _parse_session(os.pread(fd, 512, 0)) if fd is not None else _load_session(path)
        ended = None
        if current is None or now_ns - current.last_ns > idle_s * 1e9 or now_ns < current.start_ns:
            if current is not None:
                ended = EndedSession(
                    current.id, (current.last_ns - current.start_ns) / 1e9, current.commands, current.last_ns
                )
            current = Session(random_id(), current.id if current else None, now_ns, now_ns, 0)
        current.last_ns = max(current.last_ns, now_ns)
        current.commands += commands
        data = _session_bytes(current)
        if fd is not None and os.fstat(fd).st_size == len(data):
            os.pwrite(fd, data, 0)  # in place, under the lock (see above: no rename over the file)
        else:
            write_private(path, data)
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock
    return current, ended


def end_session(home: str, now_ns: int) -> EndedSession | None:
    """End the current session now (long-running programs at shutdown)."""
    path = os.path.join(home, SESSION_FILE)
    fd = _locked_session(path)  # a run updating it in place finishes first
    try:
        current = _parse_session(os.pread(fd, 512, 0)) if fd is not None else _load_session(path)
        if current is None:
            return None
        try:  # noqa: SIM105 -- contextlib.suppress would cost a CLI's process the import of contextlib
            os.unlink(path)
        except OSError:
            pass
    finally:
        if fd is not None:
            os.close(fd)
    return EndedSession(current.id, (max(now_ns, current.last_ns) - current.start_ns) / 1e9, current.commands, now_ns)


def ended_session_entry(ended: EndedSession) -> EndedSessionEntry:
    """The journal/replay form of an ended session (the one place that shape is built)."""
    return {"id": ended.id, "duration": ended.duration_s, "commands": ended.commands}


def session_part(home: str, now_ns: int, idle_s: float, commands: int) -> SessionPart:
    """Session fields of a CLI run's journal record: its session, the previous one on a session's first
    run, and the session that went idle, if any."""
    current, ended = touch_session(home, now_ns, idle_s, commands)
    part: SessionPart = {"session": current.id}
    if current.previous_id and current.commands == commands:  # first run of a new session
        part["session_previous"] = current.previous_id
    if ended is not None:
        part["sessions_ended"] = [ended_session_entry(ended)]
    return part


# -- the recorder ---------------------------------------------------------------------------------
_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns
_process_time = time.process_time  # cpu_seconds() without the extra call
_OFF = Level.OFF
_FULL = Level.FULL
_FEATURES = levels.FEATURES
_SPANS = levels.SPANS
_PERFORMANCE = levels.PERFORMANCE
_FEATURE_ATTRIBUTES = levels.FEATURE_ATTRIBUTES
_ARGUMENT_SHAPES = levels.ARGUMENT_SHAPES
_DYNAMIC = "<dynamic>"
"""``privacy.vocabulary.DYNAMIC`` (a test holds them equal), spelled here: the privacy modules load only on a
run that needs one of their decisions (a name to admit, names declared), never to import the recorder."""

MAX_COMMANDS = 2048  # buffered between flushes (a journal record stays well under 1 MiB); more are counted
MAX_FEATURES = 4096
MAX_STACK_FRAMES = 20


def error_type(exc: BaseException) -> str:
    """Fully qualified class name, per the ``error.type`` convention (builtins stay short), of the class
    statement that made it, else its nearest such base (see ``privacy.vocabulary.error_type``)."""
    from otel_expansion.privacy.vocabulary import error_type as static_error_type

    return static_error_type(exc)


_USAGE_ERROR_MODULES = frozenset({"click.exceptions", "typer._click.exceptions", "argparse", "optparse", "docopt",
                                  "fire.core"})

_CONTROL = {c: "?" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                             *range(0x2066, 0x206A)]}


def _is_identifier_key(key: str) -> bool:
    """``user_id``, ``org.id``, ``id``: attribute keys whose values are hashed when a salt is set."""
    k = key.lower()
    return k == "id" or k.endswith(("_id", ".id", "-id"))


def _is_exit(exc: BaseException) -> bool:
    """SystemExit, or a framework's deliberate exit (click/typer ``Exit``): an exit code, not an error."""
    return isinstance(exc, SystemExit) or (type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"))


def exit_code_of(exc: BaseException | None) -> int:
    """The exit status the shell sees when ``exc`` escapes the program: ``sys.exit(-1)`` is 255,
    ``SystemExit(True)`` 1, a message 1, and a KeyboardInterrupt kills the process by SIGINT (130)."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF if -(1 << 63) <= code < (1 << 63) else 0xFF  # what exit(2) keeps; overflow is -1
        return 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


class CommandRun:
    """One command invocation in progress."""

    __slots__ = (
        "args",
        "cost_ns",
        "drains_at",
        "error",
        "executable",
        "features_at",
        "name",
        "origin",
        "outcome",
        "owner",
        "start_cpu",
        "start_mono",
        "start_ns",
        "startup",
    )

    def __init__(self, name: str, executable: str, origin: str = "framework", cpu: bool = True) -> None:
        self.cost_ns = 0  # the library's own time spent in begin(), for self-health
        self.name = name
        # "declared" (by the framework's own tables), "literal" (command("x") written in the app's code),
        # "app" (a name computed at run time), "framework" (not resolved: shape decides)
        self.origin = origin
        self.executable = executable
        self.start_ns = _time_ns()
        self.start_mono = _perf_ns()
        # a system call (~0.7 us): only read where the CPU time is recorded (``cpu``: level >= enhanced)
        self.start_cpu = _process_time() if cpu else 0.0
        self.error: BaseException | None = None
        self.args: tuple[str, ...] = ()
        self.startup = False  # the process's first command: its start-up time is recorded with it
        self.outcome: CommandEntry | None = None  # its record once ended, until drained
        # where the recorder's features list stood at begin(): a command dropped for overflow takes the
        # features recorded during it along (begin() sets them; -1: not begun by a Recorder)
        self.features_at = -1
        self.drains_at = 0
        self.owner: object = None  # who runs it (see _owner): set by Recorder.begin


def _owner() -> object:
    """Who runs a command now: the asyncio task running in this thread, else the thread.

    Commands of different threads or tasks overlap in time (a threaded server, ``asyncio.gather``): each
    has its own "command in progress", so one does not hide another as if nested in it. Within one thread
    or task a command begun inside another still belongs to the outer one. asyncio is asked only when the
    program has loaded it."""
    aio = sys.modules.get("asyncio")
    if aio is not None:
        try:
            loop = aio._get_running_loop()
            task = aio.current_task(loop) if loop is not None else None
        except Exception:  # an asyncio without these (never in CPython 3.9-3.14): the thread decides
            task = None
        if task is not None:
            return task
    return _get_ident()


_get_ident = _thread.get_ident


class Recorder:
    """Collects commands, features and exceptions of this process, filtered and redacted at the source."""

    def __init__(self, settings: Settings, on_command: Callable[[Recorder], None] | None = None,
                 max_commands: int = MAX_COMMANDS) -> None:
        self.max_commands = max_commands
        self.settings = settings
        self.level = settings.level
        self.commands: list[CommandEntry] = []
        self.features: list[FeatureEntry] = []
        self.exceptions: list[HandledException] = []
        self.overflow = 0  # commands not kept because the buffer was full (``dropped.overflow``)
        self.overflow_features = 0  # features not kept: buffer full, or their command was not kept
        self.overflow_exceptions = 0  # handled exceptions not kept: buffer full
        self.undeclared = 0  # features and attributes the app's registry does not declare (dropped)
        # A long-running program's usage aggregate (collect/usage.Usage; None for a CLI): every finished
        # command, feature and handled exception is added there first, so the metrics stay exact whatever
        # happens to the command's span. ``sample_shift`` k > 0 keeps a command's span with probability
        # 2**-k (set by the service's export thread when spans cannot all be kept); the others are counted
        # in ``sampled_out``.
        self.usage: Any = None
        self.sample_shift = 0
        self.sample_bits: Callable[[int], int] = _no_bits  # random.getrandbits, given by the service
        self.sampled_out = 0
        self._runs: dict[object, CommandRun] = {}  # the command in progress of each thread or task (_owner)
        self.on_command = on_command
        """Called after each recorded command (a service's export thread wakes on it); settable."""
        self._redactor: Any = None
        self._plain: Callable[[str], bool] | None = None
        self.declared_commands: frozenset[str] | None = None  # init(commands=...): membership beats shape
        self.declared_features: frozenset[str] | None = None  # init(features=...)
        # init(resource_keys=...): ambient resource allow-list, keys (or ``prefix.*``), or a mapping of key
        # to the values the app admits (a closed vocabulary)
        self.resource_keys: tuple[str, ...] | dict[str, frozenset[str] | None] = ()
        # drain() may run on a service's export thread. Appends take no lock (list.append is atomic, and
        # drain() takes items by count from the same lists, never swapping them); the lock serialises
        # drain() with the counters and the rarer paths (settle, overflow).
        self._lock = _thread.allocate_lock()
        self._drains = 0
        self._begun = 0
        self._names: dict[tuple[str, str], str] = {}  # (name, origin) -> recorded name; see command_name
        self._names_for: frozenset[str] | None = None  # the declared_commands _names was computed with
        self._exe: tuple[object, str] = (None, "")  # (executable, its recorded name): one process, one name
        # feature name -> recorded name, per calling code object, for the declarations it was decided under
        self._feature_names: dict[tuple[str, object], str] = {}
        self._feature_names_for: frozenset[str] | None = None
        self.process_started: float | None = None  # process_started(), read ahead by a long-running program

    @property
    def active(self) -> CommandRun | None:
        """The command in progress in this thread or asyncio task (commands of others may run too)."""
        return self._runs.get(_owner())

    @active.setter
    def active(self, run: CommandRun | None) -> None:
        owner = _owner()
        if run is None:
            self._runs.pop(owner, None)
        else:
            run.owner = owner
            self._runs[owner] = run

    def open_runs(self) -> list[CommandRun]:
        """Every command in progress, of every thread and task (a termination signal ends them all)."""
        return list(self._runs.values())

    # -- privacy helpers -------------------------------------------------------------------------------
    @property
    def redactor(self) -> Any:
        if self._redactor is None:
            from otel_expansion.privacy.redaction import Redactor

            s = self.settings
            self._redactor = Redactor(s.redact_patterns, s.redact_allow, s.hash_salt)
        return self._redactor

    def clean(self, text: str) -> str:
        """Redacted ``text``; the full redactor (~3 ms to build) loads only for text that may hold PII."""
        text = str(text)
        if not text.isprintable():  # control, escape and bidi-override characters never get stored
            text = text.translate(_CONTROL)
        if self._plain is None:
            from otel_expansion.privacy import patterns

            names = patterns.user_names()
            custom = bool(self.settings.redact_patterns)
            self._plain = (lambda t: False) if custom else (lambda t: patterns.is_plain(t, names))
        return text if self._plain(text) else str(self.redactor.redact(text))

    def declare(self, commands: object = None, features: object = None, resource_keys: object = None) -> None:
        """The app's own names: run-time names outside these lists become placeholders."""
        if commands is None and features is None and (resource_keys is None or (
                type(resource_keys) is tuple and not resource_keys)):
            self.declared_commands = self.declared_features = None  # what names.declared(None) gives
            self.resource_keys = ()
            return
        from otel_expansion.privacy import names

        self.declared_commands = names.declared(commands)  # type: ignore[arg-type]
        self.declared_features = names.declared(features)  # type: ignore[arg-type]
        if isinstance(resource_keys, dict):
            self.resource_keys = {str(k): (None if v is None else names.declared(v))
                                  for k, v in resource_keys.items()}
        else:
            self.resource_keys = tuple(names.declared(resource_keys) or ())  # type: ignore[arg-type]

    def command_name(self, run: CommandRun) -> str:
        """The name a run is recorded under: declared by the program, or written in its code and
        identifier-shaped, or a placeholder. A name computed at run time (``command(f"sync-{user}")``)
        counts only when the app declared it in ``init(commands=...)``.

        Remembered per (name, origin) until the declarations change: a long-running program runs the
        same few commands again and again, and the answer depends on nothing else."""
        name, origin = run.name, run.origin
        if type(name) is not str or type(origin) is not str:
            return self._command_name(run)
        memo = self._names
        if self._names_for is not self.declared_commands or len(memo) >= 1024:
            memo = self._names = {}
            self._names_for = self.declared_commands
        key = (name, origin)
        known = memo.get(key)
        if known is None:
            known = memo[key] = self._command_name(run)
        return known

    def _command_name(self, run: CommandRun) -> str:
        """The closed vocabulary (``privacy.vocabulary``): a name an integration proved declared or
        written in the code ("declared"), a ``command("x")`` literal ("literal") or one listed in
        ``init(commands=...)`` is kept whatever its shape (printable, bounded); the root command of a
        framework run is the executable's name; anything else is ``<dynamic>``, counted."""
        origin, name = run.origin, run.name
        if origin == "framework" and name == run.executable:
            return self.executable_name(run.executable)
        from otel_expansion.privacy.vocabulary import admit  # remembered per name by command_name

        return admit(name, self.declared_commands, origin in ("declared", "literal"))

    def executable_name(self, executable: object) -> str:
        """``process.executable.name`` for ``executable`` (remembered): a console script, else the service.

        The usual ``executable`` is ``default_executable()``, the display form of ``sys.argv[0]``; the
        decision is taken on ``sys.argv[0]`` itself, so a script file (``tool.py``) is the service name
        without looking further."""
        exe = self._exe
        if exe[0] != executable or type(executable) is not str:
            argv = sys.argv
            raw = (argv[0] if argv else "") if executable == default_executable() else executable
            exe = (executable, _name(raw, self.settings))
            if type(executable) is str:
                self._exe = exe
        return exe[1]

    # -- commands --------------------------------------------------------------------------------------
    def begin(self, name: str, executable: str | None = None, origin: str = "framework",
              owner: object = None) -> CommandRun | None:
        """Start a command; None when one is already running in this thread or task (nested runs belong to
        the outer one). ``owner``: whose command it is when not this thread's or task's (a generator's
        own invocation: it runs in turns with other code of the same thread)."""
        level = self.level
        if level <= _OFF:
            return None
        if owner is None:
            owner = _owner()
        runs = self._runs
        if owner in runs:  # nested in this thread's or task's command: part of it
            return None
        t0 = _perf_ns()
        run = CommandRun(name, executable or default_executable(), origin, level >= _PERFORMANCE)
        run.startup = not self._begun
        self._begun += 1
        run.features_at = len(self.features)
        run.drains_at = self._drains
        run.owner = owner
        runs[owner] = run
        run.cost_ns = _perf_ns() - t0
        return run

    def end(self, run: CommandRun | None, exc: BaseException | None = None, exit_code: int | None = None,
            *, unknown: bool = False) -> None:
        """Finish ``run``; the exit code defaults to what ``exc`` would make Python exit with.

        ``unknown``: the process was left by an exception nobody could observe: outcome ``unknown``, no
        exit code (never success); the error noted during the run, if any, is kept as its error type."""
        # by the run's own owner: the process's exit may end a run a task or thread began
        if run is None or self._runs.get(run.owner) is not run:
            return
        self._runs.pop(run.owner, None)
        t0 = _perf_ns()
        start_ns = run.start_ns
        end_ns = start_ns + (t0 - run.start_mono)
        if exc is None:
            err = run.error
            code = 0 if exit_code is None else exit_code
        else:
            err = run.error if run.error is not None and isinstance(exc, SystemExit) else exc
            code = exit_code_of(exc) if exit_code is None else exit_code
        usage = self.usage
        if usage is None and len(self.commands) >= self.max_commands:
            self._drop(run)
            return
        exe = self._exe  # executable_name(run.executable), remembered (one process, one name)
        exe_name = exe[1] if exe[0] is run.executable else self.executable_name(run.executable)
        name = run.name
        recorded = self._names.get((name, run.origin)) if type(name) is str and (
            self._names_for is self.declared_commands) else None  # command_name(run), remembered
        recorded = recorded or self.command_name(run)
        if _DYNAMIC in recorded:  # a placeholder left instead of a name: counted
            with self._lock:
                self.undeclared += 1
        cmd: CommandEntry = {
            "name": recorded,
            "exe": exe_name,
            "start": start_ns,
            "end": end_ns,
            "exit": code,
        }
        if unknown or code:  # a success has neither error nor exception (what _outcome would leave)
            if unknown:
                _unknown(cmd, run.error, self.level)
            else:
                self._outcome(cmd, code, err)
            if _DYNAMIC in cmd.get("sig", ""):  # a placeholder left in the signature: counted
                with self._lock:
                    self.undeclared += 1
        level = self.level
        if level >= _PERFORMANCE:
            cmd["cpu"] = max(0.0, _process_time() - run.start_cpu)
            # a long-running program (usage aggregated here) asks every command: one getrusage call (~1 us),
            # not the CLI's /proc/self/status read (~18 us), whose reason (no ``resource`` import) is a CLI's
            cmd["mem"] = peak_rss_bytes() if usage is None else (_rusage_peak or rusage_peak_bytes)()
            if run.startup:
                startup = startup_seconds(run.start_mono, self.process_started)
                if startup is not None:
                    cmd["startup"] = startup
        if run.args and level >= _ARGUMENT_SHAPES:
            cmd["args"] = run.args
        run.outcome = cmd
        cmd["rec"] = run.cost_ns + (_perf_ns() - t0)  # our own cost, reported as self-health
        if usage is not None:
            usage.command(cmd)  # counted before anything can drop its span
            if level < _SPANS:  # no spans at this level: the aggregate is the whole record
                return
            shift = self.sample_shift
            if shift:
                if self.sample_bits(shift):  # not in the sample: its span (and span events) are not kept
                    self._drop(run, sampled=True)
                    return
                cmd["th"] = shift  # kept with probability 2**-shift (its span says so in its tracestate)
            if len(self.commands) >= self.max_commands:
                self._drop(run)
                return
        self.commands.append(cmd)  # atomic; see _lock
        if self.on_command is not None:
            self.on_command(self)

    def _drop(self, run: CommandRun, sampled: bool = False) -> None:
        """The buffer is full: ``run`` is counted, not kept, and so are the features recorded during it
        (they would otherwise count as use without the command they belong to). Features recorded by
        other threads while it ran go with it: they fall within its time, and are counted too.
        ``sampled``: its span was sampled out (counted in ``sampled_out``); its features were already
        counted in the usage aggregate and were kept only as its span's events."""
        with self._lock:  # no drain() meanwhile; other threads may still append (at the end)
            if sampled:
                self.sampled_out += 1
            else:
                self.overflow += 1
            at = run.features_at
            if at < 0:  # not begun by this recorder
                return
            if run.drains_at != self._drains:  # drained since begin(): what is left came after
                at = 0
            features = self.features
            end = len(features)
            if end > at:
                del features[at:end]
                if self.usage is None:  # (a service counted them in its usage aggregate already)
                    self.overflow_features += end - at

    def _outcome(self, cmd: CommandEntry, code: int, err: BaseException | None) -> None:
        """Exit code, error type (the exception's class, else the exit code) and, at ``full``, details."""
        cmd["exit"] = code
        cmd.pop("outcome", None)
        cmd.pop("error", None)
        cmd.pop("exception", None)
        if code == 0:
            return
        cmd.pop("sig", None)
        real = err is not None and not _is_exit(err)
        cmd["error"] = error_type(err) if real and err is not None else str(code)
        if real and err is not None:
            self._signature(cmd, err)
            if self.level >= levels.EXCEPTION_DETAILS:
                cmd["exception"] = self._exception_details(err)

    def _signature(self, item: CommandEntry | HandledException, exc: BaseException) -> str | None:
        """``cli.error.signature`` of ``exc`` into ``item`` (only on failure: nothing on the success path).
        A placeholder left in it is counted by the caller (``end``, ``exception``), like a name's."""
        sig = signature_of(exc, self.level)
        if sig is not None:
            item["sig"] = sig
        return sig

    def settle(self, run: CommandRun, code: int, err: BaseException | None = None) -> bool:
        """The process ends with ``code``: make that the outcome of ``run``, the command it ran.

        For a process that ran one command (a CLI), the status the shell sees is the last word, even when
        the program caught its framework's exit and exited differently. ``err`` replaces the recorded
        error only when given. False when the run's record was already handed on (drained).
        """
        with self._lock:
            cmd = run.outcome
            if cmd is None or not any(c is cmd for c in self.commands):
                return False
            if cmd.get("exit") == code and (err is None or code == 0):
                return True
            if err is None and code != 0 and "exit" in cmd and not str(cmd.get("error", "0")).isdigit():
                cmd["exit"] = code  # the exception that made it fail stays its error type
                return True
            self._outcome(cmd, code, err)
            return True

    def settle_unknown(self, run: CommandRun) -> bool:
        """The process was left by an exception nobody could observe: ``run``'s outcome is ``unknown``."""
        with self._lock:
            cmd = run.outcome
            if cmd is None or not any(c is cmd for c in self.commands):
                return False
            _unknown(cmd, run.error, self.level)
            return True

    def note_error(self, exc: BaseException) -> None:
        """Remember the exception a framework is about to turn into an exit code."""
        run = self.active
        if run is not None and not _is_exit(exc):
            run.error = exc

    def set_args(self, argv: list[str] | tuple[str, ...]) -> None:
        """Argument shapes (flag names only) for the active command, at ``full`` level."""
        run = self.active
        if run is not None and self.level >= levels.ARGUMENT_SHAPES:
            try:
                run.args = tuple(self.redactor.argv_shape(list(argv)))
            except Exception:
                run.args = ()

    # -- features and exceptions -----------------------------------------------------------------------
    def feature(self, name: str, attributes: Mapping[str, object] | None = None, *,
                _caller: FrameType | None = None) -> None:
        """Count use of ``name``. ``_caller``: the app's frame, when the caller (the module-level
        ``feature()``) has it at hand; else the first frame outside this package is looked for."""
        level = self.level
        if level < _FEATURES:
            return
        module = sys.modules.get("otel_expansion.collect.features")  # the app declared a feature registry
        declarations = None if module is None else module.registry()
        spec = None
        if declarations is not None:  # declared features only, at every level
            spec = declarations.get(name)
            if spec is None or spec.level > level:
                with self._lock:
                    self.undeclared += 1  # not declared, or not at this level: counted, not recorded
                return
        usage = self.usage
        if usage is None and len(self.features) >= self.max_commands * 2:
            with self._lock:
                self.overflow_features += 1
            return
        declared = self.declared_features
        caller = _caller or sys._getframe(1)
        fname: str | None = None
        key: tuple[str, object] | None = None
        if declarations is None and type(name) is str:  # remembered per (name, calling code): see below
            memo = self._feature_names
            if self._feature_names_for is not declared or len(memo) >= 1024:
                memo = self._feature_names = {}
                self._feature_names_for = declared
            key = (name, caller.f_code)
            fname = memo.get(key)
        if fname is None:
            vocabulary = _vocabulary()
            if spec is not None or (declared is not None and name in declared):  # in the registry or init()
                fname = vocabulary.admit(name, literal=True)
            else:  # written in the app's own code, or a placeholder (counted)
                literal = _literal or _load_literal()
                fname = vocabulary.admit(name, literal=literal(name, caller))
            module_name = caller.f_globals.get("__name__")
            if key is not None and type(module_name) is str and not module_name.startswith("otel_expansion."):
                # The answer depends only on the name, the declarations (checked above) and the calling
                # code object (its literals, whether it is the program's own: fixed once it runs). A
                # caller inside this package is not remembered: its answer is its own caller's.
                self._feature_names[key] = fname
        if fname is _vocabulary_module[0].DYNAMIC:  # (loaded: the name was decided by it, now or before)
            with self._lock:
                self.undeclared += 1
        kept: dict[str, object] = {}
        if attributes:  # only attributes the registry declares (name, type, level) ever leave
            kept = {k: v for k, v in attributes.items() if spec is not None and spec.accepts(k, v, level)}
            dropped = len(attributes) - len(kept)
            if dropped:
                with self._lock:
                    self.undeclared += dropped
        if usage is not None:
            usage.feature(fname)  # the count; the item below is only its command's span event (full)
            if level < _FULL:
                return
            if len(self.features) >= self.max_commands * 2:
                with self._lock:
                    self.overflow_features += 1
                return
        run = self.active  # _now_ns(), inline: on the running command's own timeline
        item: FeatureEntry = {"name": fname, "t": _time_ns() if run is None else
                              run.start_ns + (_perf_ns() - run.start_mono)}
        if kept and level >= _FEATURE_ATTRIBUTES:
            item["attrs"] = self._feature_attributes(kept)
        self.features.append(item)  # atomic; see _lock

    def _now_ns(self) -> int:
        """A feature's or handled exception's time: on the running command's own timeline (its wall start
        plus monotonic time since), the clock its end is taken on, so what happens during a command falls
        within [start, end] by construction (its span's events, and what thinning keeps with it). Two
        clocks read apart (a thread preempted between a command's wall and monotonic start) could put it
        past the end. Outside a command, the wall clock."""
        run = self.active
        if run is None:
            return _time_ns()
        return run.start_ns + (_perf_ns() - run.start_mono)

    def exception(self, exc: BaseException) -> None:
        """A handled exception the app wants counted (type always; details at ``full``)."""
        if self.level <= Level.OFF:
            return
        item: HandledException = {"type": error_type(exc), "t": self._now_ns()}
        sig = self._signature(item, exc)
        if sig is not None and _DYNAMIC in sig:
            with self._lock:
                self.undeclared += 1
        if self.usage is not None:
            self.usage.exception(item["type"], sig)  # the count; the item is only a span event from here
            if self.level < levels.EXCEPTION_DETAILS:  # (events carry details, kept at full only)
                return
        if len(self.exceptions) >= self.max_commands * 2:
            with self._lock:
                self.overflow_exceptions += 1
            return
        run = self.active
        if run is not None:
            item["command"] = self.command_name(run)
        if self.level >= levels.EXCEPTION_DETAILS:
            details = self._exception_details(exc)
            item["message"], item["stack"] = details["message"], details["stack"]
        self.exceptions.append(item)  # atomic; see _lock

    def _feature_attributes(self, attributes: Mapping[str, object]) -> dict[str, Any]:
        """Declared attribute values at ``full``: numbers and booleans of a declared type as they are;
        of text, only the caller's own text (string constants of its code) is kept, whatever was
        computed or typed becomes a typed placeholder."""
        from otel_expansion.privacy import provenance

        r = self.redactor
        consts = provenance.caller_constants(sys._getframe(1))
        label = provenance.kind_of(r.redact)

        def own(v: object) -> Any:
            t = type(v)
            if t is bool or t is float:
                return v
            if t is int:
                return r.value(v)
            if t is str:
                return r.redact(provenance.own_text(v, consts, label))  # type: ignore[arg-type]
            if t in (list, tuple, set, frozenset):
                items: Iterable[object] = v  # type: ignore[assignment]
                return tuple(own(x) for i, x in enumerate(items) if i < 32)
            return r.redact(provenance.own_text(str(r.value(v)), consts, label))

        from otel_expansion.privacy import names

        attrs: dict[str, Any] = {}
        for key, value in list(attributes.items())[:16]:
            k = names.attribute_key(key)
            if k is None or value is None:
                continue
            if self.settings.hash_salt and _is_identifier_key(k):  # identifiers become stable pseudonyms
                attrs[k] = r.identifier(str(value))
            else:
                attrs[k] = r.attributes({k: own(value)}).get(k, "<redacted>")
        return attrs

    def _exception_details(self, exc: BaseException) -> ExceptionDetails:
        """Frames named by module (never by directory) as the code fixes them, and the message's provably
        own text."""
        frames = []
        label = _vocabulary().frame_label
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            # module and function only as the program's code fixes them (a module imported under a name made
            # at run time, code renamed at run time: <dynamic>), as in cli.error.signature
            module, _, function = label(frame.f_code, frame.f_globals.get("__name__")).rpartition(":")
            frames.append(f"{module or _DYNAMIC}:{tb.tb_lineno} in {function}")
            tb = tb.tb_next
        frames = frames[-MAX_STACK_FRAMES:]
        r = self.redactor
        if type(exc).__module__ in _USAGE_ERROR_MODULES:  # usage errors quote what the user typed
            message = "<usage error message withheld>"
        else:
            from otel_expansion.privacy import provenance

            try:
                text = str(exc)
                message = provenance.own_text(text[:4096], provenance.exception_constants(exc),
                                              provenance.kind_of(r.redact))
            except Exception:
                message = "<unprintable>"
        return {"message": r.redact(message), "stack": "\n".join(r.redact(f) for f in frames)}

    # -- draining --------------------------------------------------------------------------------------
    def drain(self) -> Body | None:
        """Take everything recorded so far as one record body, or None when there is nothing."""
        with self._lock:
            commands, features, exceptions = self.commands, self.features, self.exceptions
            if not (commands or features or exceptions or self.overflow or self.undeclared
                    or self.overflow_features or self.overflow_exceptions or self.sampled_out):
                return None
            # items are taken by count: an append racing with this lands after them and stays for next time
            n_commands, n_features, n_exceptions = len(commands), len(features), len(exceptions)
            body: Body = {
                "commands": commands[:n_commands],
                "features": features[:n_features],
                "exceptions": exceptions[:n_exceptions],
            }
            del commands[:n_commands], features[:n_features], exceptions[:n_exceptions]
            self._drains += 1
            if self.overflow:
                body["overflow"], self.overflow = self.overflow, 0
            if self.undeclared:
                body["undeclared"], self.undeclared = self.undeclared, 0
            if self.overflow_features:
                body["overflow_features"], self.overflow_features = self.overflow_features, 0
            if self.overflow_exceptions:
                body["overflow_exceptions"], self.overflow_exceptions = self.overflow_exceptions, 0
            if self.sampled_out:
                body["sampled_out"], self.sampled_out = self.sampled_out, 0
        return body


def _unknown(cmd: CommandEntry, error: BaseException | None, level: int | None = None) -> None:
    """Outcome ``unknown``: no exit code; the error type of what the run noted (a usage error), if any."""
    cmd.pop("exit", None)  # the one entry without an exit code
    cmd.pop("exception", None)
    cmd.pop("sig", None)
    cmd["outcome"] = "unknown"
    if error is not None and not _is_exit(error):
        cmd["error"] = error_type(error)
        if level is not None:
            sig = signature_of(error, level)
            if sig is not None:
                cmd["sig"] = sig
    else:
        cmd.pop("error", None)


def signature_of(exc: BaseException, level: int) -> str | None:
    """``privacy.vocabulary.signature``, never raising: a failure to compute it leaves no signature."""
    try:
        sig: str | None = _vocabulary().signature(exc, level)
    except Exception:
        return None
    return sig


def _no_bits(k: int) -> int:
    return 0


def _name(executable: object, settings: Settings) -> str:
    """The console script's name (checked against the names this state directory already proved
    published, else by the scan), or the service name."""
    service = settings.service_name
    if type(executable) is not str or executable.endswith((".py", ".pyw", ".pyz")) or executable in ("", "-c", "-m"):
        return service
    base = os.path.basename(executable)
    home = settings.home
    from otel_expansion.config import PUBLISHED_FILE, read_small, write_private

    # console script names proved published before (public names, one a line): later runs skip the scan
    path = os.path.join(home, PUBLISHED_FILE)
    known = (read_small(path, 16384) or b"").decode("utf-8", "replace").split("\n")
    if base and base in known:
        return base
    from otel_expansion.privacy.vocabulary import executable_name  # the scan: first run of a console script

    name = executable_name(executable, service)
    if name != service and os.path.isdir(home):
        try:  # noqa: SIM105 -- a published name: public by construction, never a value of the user's
            write_private(path, "\n".join([*known[-255:], name]).strip("\n").encode())
        except OSError:
            pass
    return name


_literal: Callable[[str, FrameType | None], bool] | None = None
_vocabulary_module: list[ModuleType] = []


def _vocabulary() -> ModuleType:
    """``privacy.vocabulary``, imported by the first name it must admit (a run whose only command is the
    program itself, named by its executable, never loads it), then kept: one list read per call."""
    if not _vocabulary_module:
        from otel_expansion.privacy import vocabulary

        _vocabulary_module.append(vocabulary)
    return _vocabulary_module[0]


def _load_literal() -> Callable[[str, FrameType | None], bool]:
    """privacy.provenance.literal_in_caller, imported on the first feature() that needs it (not per call)."""
    global _literal
    from otel_expansion.privacy.provenance import literal_in_caller

    _literal = literal_in_caller
    return literal_in_caller


_executable: tuple[object, str] = (None, "")  # (sys.argv[0], its executable name): computed once per argv[0]


def default_executable() -> str:
    """The CLI's own name as the user typed it (``python -m pkg`` reports ``pkg``).

    Recomputed only when ``sys.argv[0]`` changes (a long-running program asks once per command)."""
    global _executable
    argv = sys.argv
    argv0 = argv[0] if argv and argv[0] else ""
    known = _executable
    if known[0] is argv0 or (type(argv0) is str and known[0] == argv0):
        return known[1]
    exe = _executable_of(argv0)
    _executable = (argv0, exe)
    return exe


def _executable_of(argv0: str) -> str:
    if argv0 in ("", "-c", "-m"):
        return "python"
    base = os.path.basename(argv0)
    if base == "__main__.py":
        return os.path.basename(os.path.dirname(argv0)) or "python"
    return base[:-3] if base.endswith(".py") else base


# -- CPU time and peak memory of this process, cheaply (here, not in a module of their own: every command
# the recorder finishes reads them). On Linux the peak comes from ``/proc/self/status`` (three system calls,
# no import: the ``resource`` extension module costs a CLI ~0.2 ms to load); elsewhere ``resource.getrusage``,
# looked up once; psutil (~56 ms) only where neither exists (Windows), and only when a command finishes. -----
def cpu_seconds() -> float:
    """User + system CPU seconds consumed by this process so far."""
    return time.process_time()


_rusage: list[Any] = []  # [resource.getrusage, RUSAGE_SELF] once loaded, [None, 0] without ``resource``
_rusage_peak: Callable[[], int | None] | None = None  # the service's per-command reading, once bound
_PROC_STATUS = "/proc/self/status"


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process in bytes, or None when unknown.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own memory (where
    ``getrusage`` would also keep the peak of the image it replaced by exec). Elsewhere, or where the
    file has no such line: ``resource.getrusage``, bound once, not imported per call.
    """
    peak = _proc_peak()
    if peak is not None:
        return peak
    return rusage_peak_bytes()


def rusage_peak_bytes() -> int | None:
    """Peak resident set size from ``resource.getrusage`` (bound once): one system call, for a long-running
    program's every command (its peak includes an image it replaced by exec: a service's, rarely)."""
    if not _rusage:
        _load_rusage()
    getrusage, who = _rusage
    if getrusage is None:
        return _psutil_peak()
    try:
        peak = getrusage(who).ru_maxrss
    except (OSError, ValueError):
        return None
    # Linux reports KiB, macOS bytes.
    return int(peak) * _SCALE


_SCALE = 1 if sys.platform == "darwin" else 1024


def _proc_peak() -> int | None:
    """``VmHWM`` (kB) of /proc/self/status in bytes; None without procfs or the line."""
    if not _PROC_STATUS:
        return None
    try:
        fd = os.open(_PROC_STATUS, os.O_RDONLY)
    except (OSError, AttributeError):
        return None
    try:
        raw = os.read(fd, 16384)
    except OSError:
        return None
    finally:
        os.close(fd)
    i = raw.find(b"\nVmHWM:")
    if i < 0:
        return None
    try:
        return int(raw[i + 7:raw.index(b"kB", i)]) * 1024
    except ValueError:
        return None


def _load_rusage() -> None:
    global _rusage_peak
    try:
        import resource
    except ImportError:  # Windows
        _rusage[:] = [None, 0]
        return
    _rusage[:] = [resource.getrusage, resource.RUSAGE_SELF]
    # Linux: RUSAGE_THREAD's ru_maxrss is the process's peak too (the kernel's getrusage() takes the same
    # max(signal's maxrss, the mm's hiwater_rss) for both), without summing every thread's CPU time, which
    # RUSAGE_SELF does first: ~0.45 us instead of ~0.8-1.4 us in a program with a few threads
    getrusage, who, scale = resource.getrusage, getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF), _SCALE
    if sys.platform != "linux":
        who = resource.RUSAGE_SELF

    def peak() -> int | None:
        """rusage_peak_bytes() with its lookups bound: a long-running program reads it every command."""
        try:
            return int(getrusage(who).ru_maxrss) * scale
        except (OSError, ValueError):
            return None

    _rusage_peak = peak


def _psutil_peak() -> int | None:
    try:
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    except Exception:
        return None


_TICKS: list[int] = []


def process_started() -> float | None:
    """When this process started, in seconds of ``CLOCK_BOOTTIME``: ``starttime`` of ``/proc/self/stat``
    (clock ticks since boot, 10 ms resolution); no psutil. None where that is unavailable.

    A constant of the process: a long-running program reads it at ``init()`` (the first open of that
    procfs file costs ~50-100 us, which its first command would otherwise pay)."""
    try:
        fd = os.open("/proc/self/stat", os.O_RDONLY)
    except (OSError, AttributeError):
        return None
    try:
        raw = os.read(fd, 1024)
        if not _TICKS:
            _TICKS.append(os.sysconf("SC_CLK_TCK"))
        # the command name (field 2) may hold spaces and parentheses: fields resume after the last ")"
        start_ticks = int(raw[raw.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    finally:
        os.close(fd)
    return float(start_ticks / _TICKS[0])


def startup_seconds(command_start_mono_ns: int, started: float | None = None) -> float | None:
    """Seconds from the process's start to ``command_start_mono_ns`` (a ``perf_counter_ns`` reading),
    against ``CLOCK_BOOTTIME``. ``started``: :func:`process_started`, when read already. None where
    that is unavailable.
    """
    if started is None:
        started = process_started()
        if started is None:
            return None
    try:
        now_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, AttributeError):
        return None
    now_mono = time.perf_counter_ns()
    command_start = now_boot - (now_mono - command_start_mono_ns) / 1e9
    return max(0.0, command_start - started)
