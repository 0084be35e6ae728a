"""Collection: who and where this run is, here (the resource every signal carries: service identity, coarse
environment, the anonymous installation id; and the CLI session its record belongs to); the recorder, the
features, the usage aggregate and the framework integrations in submodules.

The resource lives in the package itself, not in a module of its own: every recorded run needs all of it and
loads this package anyway (its recorder is a submodule), and each module a CLI imports costs its process
~0.3 M instructions (DESIGN.md, CLI path). The resource is computed once per process. Ambient resource
attributes (OTEL_RESOURCE_ATTRIBUTES) are taken over only for keys the app allow-lists, and those that
identify a machine or a person never; a version is sent as its public part.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from otel_expansion.config import Settings
    from otel_expansion.journal.record import EndedSessionEntry, SessionPart

from otel_expansion.config import CI_PROVIDERS, detect_ci
from otel_expansion.config.paths import INSTALL_ID_FILE, SESSION_FILE, ensure_dir, random_id, read_small, write_private

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
        from otel_expansion.config.paths import SERVICE_FILE

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
            from otel_expansion.config.paths import OPT_OUT_ENV_FILE

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
    from otel_expansion.config.paths import PLAIN_NAME_FILE

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
    zipapp): the name is then cleaned on every run. Two CRC-32s of the text and of its reverse (64 bits):
    the inputs are the user's own, nobody chooses them to collide; a digest, so the file does not keep
    the user's or the host's names."""
    try:
        import binascii  # already loaded on a CLI's exit path (the journal record's CRC)

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        rules = []
        for source in _RULE_SOURCES:
            st = os.stat(os.path.join(here, "privacy", source))
            rules.append((st.st_mtime_ns, st.st_size))
        node = os.uname().nodename if hasattr(os, "uname") else ""
    except (OSError, ImportError):
        return None
    env = os.environ
    s = settings
    key = repr(("plain-name/1", s.service_name, s.redact_patterns, s.redact_allow, s.hash_salt, rules, node,
                [env.get(v) for v in ("USER", "USERNAME", "LOGNAME", "HOME", "USERPROFILE", "COMPUTERNAME")]))
    data = key.encode("utf-8", "surrogatepass")
    return b"%08x%08x" % (binascii.crc32(data), binascii.crc32(data[::-1]))


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
__all__ = ["CI_PROVIDERS", "detect_ci", "detect_container", "resource_attributes"]  # CI detection: config.settings

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
# tiny file per service home, rewritten atomically each run; a race between two concurrent runs at worst
# splits one session in two, it never corrupts anything. ----------------------------------------------------
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
    raw = read_small(path, 512)
    if not raw:
        return None
    try:
        sid, prev, start, last, count = raw.decode("ascii").split()
        return Session(sid, None if prev == "-" else prev, int(start), int(last), int(count))
    except (ValueError, UnicodeDecodeError):
        return None


def touch_session(home: str, now_ns: int, idle_s: float, commands: int = 1) -> tuple[Session, EndedSession | None]:
    """Continue or start the session at ``now_ns``; returns it and the session that ended, if any."""
    path = os.path.join(home, SESSION_FILE)
    current = _load_session(path)
    ended = None
    if current is None or now_ns - current.last_ns > idle_s * 1e9 or now_ns < current.start_ns:
        if current is not None:
            ended = EndedSession(
                current.id, (current.last_ns - current.start_ns) / 1e9, current.commands, current.last_ns
            )
        current = Session(random_id(), current.id if current else None, now_ns, now_ns, 0)
    current.last_ns = max(current.last_ns, now_ns)
    current.commands += commands
    data = f"{current.id} {current.previous_id or '-'} {current.start_ns} {current.last_ns} {current.commands}"
    write_private(path, data.encode("ascii"))
    return current, ended


def end_session(home: str, now_ns: int) -> EndedSession | None:
    """End the current session now (long-running programs at shutdown)."""
    path = os.path.join(home, SESSION_FILE)
    current = _load_session(path)
    if current is None:
        return None
    try:  # noqa: SIM105 -- contextlib.suppress would cost a CLI's process the import of contextlib
        os.unlink(path)
    except OSError:
        pass
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
