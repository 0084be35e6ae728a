"""Every environment variable and init() option, named, documented, parsed and defaulted in one place.

Read once into a frozen :class:`Settings`. A bad value warns once on stderr and falls back to the safe
default; nothing here ever raises into the host program. Stdlib ``os``/``sys`` only (hot path).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings anyway
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

from otel_expansion.config import paths
from otel_expansion.config.levels import Level

TRUTHY = frozenset({"1", "true", "yes", "on"})
FALSY = frozenset({"0", "false", "no", "off", ""})

# name -> (default, meaning). The README's configuration table is generated from this mapping.
VARIABLES: dict[str, tuple[str, str]] = {
    "OTEL_SDK_DISABLED": ("false", "true turns all telemetry off (standard OTel variable)."),
    "DO_NOT_TRACK": ("unset", "1/true turns all telemetry off (consoledonottrack.com)."),
    "OTEL_SERVICE_NAME": ("init() argument", "Overrides the service name given to init()."),
    "OTEL_RESOURCE_ATTRIBUTES": ("unset", "Extra resource attributes k=v,k2=v2 (redacted like all data)."),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("http://localhost:4318", "Collector base URL (also *_TRACES_/*_METRICS_)."),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("http/protobuf", "http/protobuf or http/json."),
    "OTEL_EXPORTER_OTLP_COMPRESSION": ("gzip", "gzip or none."),
    "OTEL_EXPORTER_OTLP_HEADERS": ("unset", "Headers k=v,k2=v2 sent with every export."),
    "OTEL_EXPORTER_OTLP_TIMEOUT": ("10000", "Per-request timeout in milliseconds."),
    "OTEL_EXPORTER_OTLP_CERTIFICATE": ("unset", "CA bundle for TLS (also _CLIENT_KEY/_CLIENT_CERTIFICATE)."),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("512", "Most spans in one export request."),
    "OTEL_BSP_SCHEDULE_DELAY": ("5000", "Long-running programs: ms between commits to the local spool."),
    "OTEL_METRIC_EXPORT_INTERVAL": ("60000", "Long-running programs: ms between metric collections/sends."),
    "OTEL_EXPANSION_HOME": ("per-user state dir", "State directory: journal, spool, ids, consent."),
    "OTEL_EXPANSION_LEVEL": ("init(level=) or enhanced", "off|basic|enhanced|full; counts as the user's choice."),
    "OTEL_EXPANSION_DEBUG": ("false", "true prints every recorded signal, as it will be sent, to stderr and to the "
                             "`otel_expansion` logger; wins over `otel-expansion debug on|off`."),
    "OTEL_EXPANSION_DRY_RUN": ("false", "true records and shows but never sends (wins over `debug on --dry-run`)."),
    "OTEL_EXPANSION_SENT_MAX_BATCHES": ("50", "Recently sent requests kept locally for `show --sent` (0: none)."),
    "OTEL_EXPANSION_SENT_MAX_BYTES": ("2097152", "Byte bound of that local history; the oldest go first."),
    "OTEL_EXPANSION_SEND": ("true", "false keeps data local (spool only); flush sends it later."),
    "OTEL_EXPANSION_SPOOL_MAX_BYTES": ("20971520", "Spool size cap; the oldest data is dropped first."),
    "OTEL_EXPANSION_SPOOL_MAX_AGE": ("604800", "Seconds pending data is kept before it is dropped."),
    "OTEL_EXPANSION_SENDER_TIMEOUT": ("60", "Seconds a background sender may live."),
    "OTEL_EXPANSION_SESSION_IDLE": ("1800", "Seconds of inactivity that end a CLI session."),
    "OTEL_EXPANSION_REDACT_PATTERNS": ("unset", "Extra regexes to redact, separated by newlines."),
    "OTEL_EXPANSION_REDACT_ALLOW": ("unset", "Exact strings never redacted, separated by newlines."),
    "OTEL_EXPANSION_HASH_SALT": ("unset", "Salt for hashing identifiers passed to feature()."),
}

_warned: set[str] = set()


def warn(message: str) -> None:
    """One line on stderr, once per message per process: visible, never fatal, never repeated."""
    if message in _warned:
        return
    _warned.add(message)
    try:  # noqa: SIM105 - contextlib costs an import
        sys.stderr.write(f"otel-expansion: warning: {message}\n")
    except Exception:  # a closed stderr must not break the host
        pass


_DEFAULTS: dict[str, object] = {
    "service_name": "unknown_service",
    "service_version": None,
    "home": "",
    "level": Level.ENHANCED,
    "level_source": "default",
    "opt_out_reason": None,
    "consent_policy": "notify",
    "debug": False,
    "debug_source": "default",
    "dry_run": False,
    "send": True,
    "instrument": True,
    "mode": "auto",
    "endpoint": None,
    "spool_max_bytes": 20 * 2**20,
    "spool_max_age_s": 7 * 86400.0,
    "sender_timeout_s": 60.0,
    "session_idle_s": 1800.0,
    "span_batch_size": 512,
    "span_interval_s": 5.0,
    "metric_interval_s": 60.0,
    "resource_attributes": (),
    "redact_patterns": (),
    "redact_allow": (),
    "hash_salt": None,
    "opt_out_env": None,
    "sent_max_batches": 50,
    "sent_max_bytes": 2 * 2**20,
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
    level_source: str  # default | app | env | user | consent-pending | opt-out
    opt_out_reason: str | None
    consent_policy: str  # notify (opt-out) | ask (opt-in)
    debug: bool
    debug_source: str  # default | app | user (otel-expansion debug on|off) | env
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


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUTHY:
        return True
    if value in FALSY:
        return False
    warn(f"{name}={raw!r} is not a boolean (use true/false); using {str(default).lower()}")
    return default


def _number(env: Mapping[str, str], name: str, default: float, scale: float = 1.0, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw) * scale
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        warn(f"{name}={raw!r} is not a valid number (>= {minimum}); using {default:g}")
        return default
    return value


def opted_out(env: Mapping[str, str], opt_out_env: str | None = None) -> str | None:
    """The variable that opts this run out, if any. Opt-out wins over every other setting."""
    if _flag(env, "OTEL_SDK_DISABLED", False):
        return "OTEL_SDK_DISABLED"
    dnt = env.get("DO_NOT_TRACK", "").strip().lower()
    if dnt and dnt not in FALSY:
        return "DO_NOT_TRACK"
    if opt_out_env:
        raw = env.get(opt_out_env, "").strip().lower()
        if raw and raw not in FALSY:
            return opt_out_env
    return None


def parse_resource_attributes(raw: str) -> tuple[tuple[str, str], ...]:
    """OTEL_RESOURCE_ATTRIBUTES: ``k=v,k2=v2`` with percent-encoding; bad members warn and are skipped."""
    out: list[tuple[str, str]] = []
    for member in raw.split(","):
        if not member.strip():
            continue
        key, sep, value = member.partition("=")
        if not sep or not key.strip():
            warn(f"OTEL_RESOURCE_ATTRIBUTES member {member.strip()!r} is not key=value; ignored")
            continue
        if "%" in value:
            from urllib.parse import unquote

            value = unquote(value)
        out.append((key.strip(), value.strip()))
    return tuple(out)


def _lines(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(line for line in raw.splitlines() if line.strip())


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
    stored_debug: str | None = None,
) -> Settings:
    """Build Settings from init() options and the environment (standard OTEL_* first, then ours).

    ``stored_choice`` is the user's persisted consent ("granted:<level>" / "denied"), read by the caller
    so that this function stays free of I/O. ``stored_debug`` is the content of the app's debug file
    (``on``, ``off``, ``on dry-run``), written by ``otel-expansion debug``.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    name = env.get("OTEL_SERVICE_NAME", "").strip() or service_name or "unknown_service"
    if consent not in ("notify", "ask"):
        warn(f"consent={consent!r} is not 'notify' or 'ask'; using 'ask' (the stricter policy)")
        consent = "ask"
    if mode not in ("auto", "cli", "service"):
        warn(f"mode={mode!r} is not auto|cli|service; using auto")
        mode = "auto"

    app_level = Level.ENHANCED
    if level is not None:
        try:
            app_level = level if isinstance(level, Level) else Level.parse(str(level))
        except ValueError as exc:
            warn(f"init(level=...): {exc}; using enhanced")
    resolved, source = app_level, ("app" if level is not None else "default")
    if stored_choice:
        if stored_choice == "denied":
            resolved, source = Level.OFF, "user"
        elif stored_choice.startswith("granted"):
            _, _, lvl = stored_choice.partition(":")
            try:
                resolved, source = (Level.parse(lvl) if lvl else app_level), "user"
            except ValueError:
                resolved, source = app_level, "user"
    elif consent == "ask":
        resolved, source = Level.OFF, "consent-pending"
    raw_level = env.get("OTEL_EXPANSION_LEVEL")
    if raw_level is not None and raw_level.strip():
        try:
            resolved, source = Level.parse(raw_level), "env"
        except ValueError as exc:
            warn(f"OTEL_EXPANSION_LEVEL: {exc}; keeping {resolved}")
    reason = opted_out(env, opt_out_env)
    if reason:
        resolved, source = Level.OFF, "opt-out"

    # The state directory (and with it the user's consent and level) belongs to the app, not to whatever
    # OTEL_SERVICE_NAME a developer exported for their own services.
    home_dir = env.get("OTEL_EXPANSION_HOME", "").strip() or home or paths.default_home(service_name or name)
    version = service_version
    debug_on, debug_source = bool(debug), ("app" if debug is not None else "default")
    dry_run = False
    if stored_debug:
        words = stored_debug.split()
        debug_on, debug_source, dry_run = words[:1] == ["on"], "user", "dry-run" in words
    if env.get("OTEL_EXPANSION_DEBUG", "").strip():
        debug_on, debug_source = _flag(env, "OTEL_EXPANSION_DEBUG", debug_on), "env"
    if env.get("OTEL_EXPANSION_DRY_RUN", "").strip():
        dry_run = _flag(env, "OTEL_EXPANSION_DRY_RUN", dry_run)
    sending = _flag(env, "OTEL_EXPANSION_SEND", True) if send is None else send
    return Settings(
        service_name=name,
        service_version=version,
        home=os.path.abspath(os.path.expanduser(home_dir)),
        level=resolved,
        level_source=source,
        opt_out_reason=reason,
        consent_policy=consent,
        debug=debug_on,
        debug_source=debug_source,
        dry_run=dry_run,
        send=sending and not dry_run,
        instrument=instrument,
        mode=mode,
        endpoint=endpoint,
        spool_max_bytes=int(_number(env, "OTEL_EXPANSION_SPOOL_MAX_BYTES", 20 * 2**20, minimum=65536)),
        spool_max_age_s=_number(env, "OTEL_EXPANSION_SPOOL_MAX_AGE", 7 * 86400.0, minimum=1),
        sender_timeout_s=_number(env, "OTEL_EXPANSION_SENDER_TIMEOUT", 60.0, minimum=1),
        session_idle_s=_number(env, "OTEL_EXPANSION_SESSION_IDLE", 1800.0, minimum=1),
        span_batch_size=int(_number(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, minimum=1)),
        span_interval_s=_number(env, "OTEL_BSP_SCHEDULE_DELAY", 5.0, scale=0.001, minimum=0.01),
        metric_interval_s=_number(env, "OTEL_METRIC_EXPORT_INTERVAL", 60.0, scale=0.001, minimum=0.01),
        resource_attributes=parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", "")),
        redact_patterns=tuple(redact_patterns) + _lines(env, "OTEL_EXPANSION_REDACT_PATTERNS"),
        redact_allow=tuple(redact_allow) + _lines(env, "OTEL_EXPANSION_REDACT_ALLOW"),
        hash_salt=env.get("OTEL_EXPANSION_HASH_SALT") or hash_salt,
        opt_out_env=opt_out_env,
        sent_max_batches=int(_number(env, "OTEL_EXPANSION_SENT_MAX_BATCHES", 50)),
        sent_max_bytes=int(_number(env, "OTEL_EXPANSION_SENT_MAX_BYTES", 2 * 2**20)),
    )
