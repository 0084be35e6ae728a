"""Where and how OTLP/HTTP requests go, read once from the standard ``OTEL_EXPORTER_OTLP_*`` variables.

Follows the OTLP exporter specification (opentelemetry.io/docs/specs/otel/protocol/exporter/) with two
deliberate differences: gzip is the default compression (telemetry from many runs compresses ~10x), and
``grpc`` is not offered (it would drag in grpcio), so it falls back to ``http/protobuf`` with a warning.

Precedence for each option: the signal-specific variable, then (for the endpoint only) the ``endpoint``
argument given to ``init()``, then the general variable, then the default. Empty values count as unset,
as the specification asks. A bad value logs one warning on the ``otel_expansion.export`` logger and
falls through to the next level; nothing here raises.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from otel_expansion.config import parse_bool
from otel_expansion.config.warn_once import warn

__all__ = [
    "DEFAULT_ENDPOINT",
    "SIGNALS",
    "OtlpConfig",
    "SignalConfig",
    "SignalOverride",
    "otlp_config_from_env",
    "parse_headers",
]

logger = logging.getLogger("otel_expansion.export")

SIGNALS = ("traces", "metrics", "logs")
DEFAULT_ENDPOINT = "http://localhost:4318"
HTTP_PROTOBUF = "http/protobuf"
HTTP_JSON = "http/json"
PROTOCOLS = (HTTP_PROTOBUF, HTTP_JSON)
COMPRESSIONS = ("gzip", "none")
DEFAULT_TIMEOUT_S = 10.0

Headers = tuple[tuple[str, str], ...]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _warn(message: str) -> None:
    """A configuration problem, once per process, in the sender's log."""
    warn(message, logger=logger.name)


@dataclass(frozen=True)
class SignalOverride:
    """Options one signal's own variables changed; ``None`` means "as the general option"."""

    signal: str
    protocol: str | None = None
    compression: str | None = None
    headers: Headers | None = None
    timeout_s: float | None = None
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None


@dataclass(frozen=True)
class SignalConfig:
    """Everything one signal's requests use, signal-specific options already applied."""

    signal: str
    url: str
    protocol: str
    compression: str
    headers: Headers
    timeout_s: float
    certificate_file: str | None
    client_key_file: str | None
    client_certificate_file: str | None


@dataclass(frozen=True)
class OtlpConfig:
    """Resolved exporter options. Top-level fields are the general ones; see :meth:`for_signal`."""

    traces_url: str = DEFAULT_ENDPOINT + "/v1/traces"
    metrics_url: str = DEFAULT_ENDPOINT + "/v1/metrics"
    logs_url: str = DEFAULT_ENDPOINT + "/v1/logs"
    protocol: str = HTTP_PROTOBUF
    compression: str = "gzip"
    headers: Headers = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    insecure: bool = False
    overrides: tuple[SignalOverride, ...] = ()
    endpoint_problem: str | None = None
    """Set when the configured endpoint is malformed: the sender then sends nothing (the data waits)."""

    def url(self, signal: str) -> str:
        """The URL requests for ``signal`` go to (ValueError for an unknown signal)."""
        if signal == "traces":
            return self.traces_url
        if signal == "metrics":
            return self.metrics_url
        if signal == "logs":
            return self.logs_url
        raise ValueError(f"unknown signal {signal!r}")

    def for_signal(self, signal: str) -> SignalConfig:
        """Options for one signal: its own variables where set, the general ones otherwise.

        The sender must encode with ``for_signal(signal).protocol``, which may differ from ``protocol``.
        """
        url = self.url(signal)
        o = next((o for o in self.overrides if o.signal == signal), SignalOverride(signal))
        return SignalConfig(
            signal=signal,
            url=url,
            protocol=self.protocol if o.protocol is None else o.protocol,
            compression=self.compression if o.compression is None else o.compression,
            headers=self.headers if o.headers is None else o.headers,
            timeout_s=self.timeout_s if o.timeout_s is None else o.timeout_s,
            certificate_file=o.certificate_file or self.certificate_file,
            client_key_file=o.client_key_file or self.client_key_file,
            client_certificate_file=o.client_certificate_file or self.client_certificate_file,
        )


def parse_headers(raw: str, name: str = "OTEL_EXPORTER_OTLP_HEADERS") -> Headers | None:
    """``k=v,k2=v2`` (W3C baggage-like, percent-encoded) to header pairs; None if nothing valid.

    A member that is not ``key=value``, whose key is not an HTTP token, or whose decoded value holds
    control characters is skipped with a warning (a CR/LF would otherwise inject headers). A repeated
    key keeps its last value, compared case-insensitively.
    """
    found: dict[str, tuple[str, str]] = {}
    bad = False
    for i, member in enumerate(raw.split(",")):
        if not member.strip():
            continue
        key, sep, value = member.partition("=")
        key = unquote(key).strip()
        value = unquote(value).strip()
        if not sep or not _TOKEN.fullmatch(key) or _BAD_VALUE_CHAR.search(value):
            bad = True  # named by position: a header value is often a credential, and stderr ends up in CI logs
            _warn(f"{name}: member {i + 1} is not a valid key=value header; ignored")
            continue
        found[key.lower()] = (key, value)
    if bad and not found:
        return None
    return tuple(found.values())


def masked_url(url: str) -> str:
    """``url`` fit for logs and messages: user:password and the query string replaced by markers."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    if "@" in parts.netloc:
        netloc = "<credentials>@" + netloc
    return parts._replace(netloc=netloc, query="<query>" if parts.query else "", fragment="").geturl()


def _check_url(value: str, name: str, insecure: bool, *, judged: bool = False) -> str | None:
    """A usable http(s) URL, or None after a warning. A URL without scheme gets one (spec: gRPC style).

    ``judged``: the collector's base endpoint, whose being invalid the settings loader already said once
    ("nothing will be sent until it is fixed": nothing is, the data waits): no second, contradicting
    warning here. A scheme is only said to be added to a URL that is then used."""
    value = value.strip()
    added = ""
    if "://" not in value:
        added = "http" if insecure else "https"
        value = f"{added}://{value}"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname
            or not _HOST.fullmatch(parts.hostname)):
        if not judged:
            _warn(f"{name} is not an http(s) URL with a host; ignored")
        return None
    if added:
        _warn(f"{name} has no scheme; using {added}:// (set {added}:// explicitly)")
    return value


_HOST = re.compile(r"[A-Za-z0-9._~%-]+|[0-9A-Fa-f:.]+")
"""A host name, IPv4 or (bracket-less, as urlsplit gives it) IPv6 address: no spaces, no odd characters."""


def _signal_url(base: str, signal: str) -> str:
    """Base URL plus ``v1/<signal>``, keeping any path prefix (spec: "Endpoint URLs for OTLP/HTTP")."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/v1/" + signal
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class _Reader:
    """Reads one option from the signal-specific, then the general variable, warning on bad values."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def protocol(self, name: str) -> str | None:
        raw = self.raw(name)
        if raw is None:
            return None
        value = raw.lower()
        if value in PROTOCOLS:
            return value
        if value == "grpc":
            _warn(f"{name}=grpc is not supported by otel-expansion; using {HTTP_PROTOBUF}")
            return HTTP_PROTOBUF
        _warn(f"{name} is not one of {', '.join(PROTOCOLS)}; ignored")  # never the value: it may be a secret
        return None

    def compression(self, name: str) -> str | None:
        raw = self.raw(name)
        if raw is None:
            return None
        if raw.lower() in COMPRESSIONS:
            return raw.lower()
        _warn(f"{name} is not gzip or none; ignored")
        return None

    def timeout(self, name: str) -> float | None:
        raw = self.raw(name)
        if raw is None:
            return None
        try:
            ms = float(raw)
        except ValueError:
            ms = math.nan
        if not (ms > 0 and math.isfinite(ms)):
            _warn(f"{name} is not a positive number of milliseconds; ignored")
            return None
        return ms / 1000.0

    def headers(self, name: str) -> Headers | None:
        raw = self.raw(name)
        return None if raw is None else parse_headers(raw, name)

    def flag(self, name: str) -> bool | None:
        raw = self.raw(name)
        if raw is None:
            return None
        value: bool | None = parse_bool(raw)
        if value is None:
            _warn(f"{name} is not true or false; ignored")
        return value

    def file(self, name: str) -> str | None:
        raw = self.raw(name)
        if raw is None:
            return None
        if not os.path.isfile(raw):
            _warn(f"{name} is not a readable file; ignored")
            return None
        return raw


def otlp_config_from_env(
    environ: Mapping[str, str] | None = None, *, endpoint: str | None = None
) -> OtlpConfig:
    """Resolve the exporter options from ``environ`` (default ``os.environ``) and init()'s ``endpoint``."""
    r = _Reader(os.environ if environ is None else environ)
    g = "OTEL_EXPORTER_OTLP_"
    insecure = r.flag(g + "INSECURE") or False

    base: str | None = None
    problem: str | None = None
    if endpoint is not None and endpoint.strip():
        base = _check_url(endpoint, "init(endpoint=...)", insecure, judged=True)
        if base is None:
            problem = "the collector endpoint (init(endpoint=...), --endpoint or a stored one) is not a valid URL"
    if base is None and (raw := r.raw(g + "ENDPOINT")) is not None:
        base = _check_url(raw, g + "ENDPOINT", insecure, judged=True)
        problem = f"{g}ENDPOINT is not a valid URL" if base is None else None  # a valid next level is used
    # a malformed endpoint and no valid one behind it is a misconfiguration: nothing is sent (the data waits)
    # rather than sent to the default endpoint
    base = base or DEFAULT_ENDPOINT

    urls: dict[str, str] = {}
    overrides: list[SignalOverride] = []
    for signal in SIGNALS:
        s = f"{g}{signal.upper()}_"
        url = None
        if (raw := r.raw(s + "ENDPOINT")) is not None:
            signal_insecure = r.flag(s + "INSECURE")
            url = _check_url(raw, s + "ENDPOINT", insecure if signal_insecure is None else signal_insecure)
        urls[signal] = url or _signal_url(base, signal)
        override = SignalOverride(
            signal,
            protocol=r.protocol(s + "PROTOCOL"),
            compression=r.compression(s + "COMPRESSION"),
            headers=r.headers(s + "HEADERS"),
            timeout_s=r.timeout(s + "TIMEOUT"),
            certificate_file=r.file(s + "CERTIFICATE"),
            client_key_file=r.file(s + "CLIENT_KEY"),
            client_certificate_file=r.file(s + "CLIENT_CERTIFICATE"),
        )
        if override != SignalOverride(signal):
            overrides.append(override)

    client_key = r.file(g + "CLIENT_KEY")
    client_cert = r.file(g + "CLIENT_CERTIFICATE")
    if client_key and not client_cert:
        _warn(f"{g}CLIENT_KEY is set without {g}CLIENT_CERTIFICATE; no client certificate is sent")
    return OtlpConfig(
        traces_url=urls["traces"],
        metrics_url=urls["metrics"],
        logs_url=urls["logs"],
        protocol=r.protocol(g + "PROTOCOL") or HTTP_PROTOBUF,
        compression=r.compression(g + "COMPRESSION") or "gzip",
        headers=r.headers(g + "HEADERS") or (),
        timeout_s=r.timeout(g + "TIMEOUT") or DEFAULT_TIMEOUT_S,
        certificate_file=r.file(g + "CERTIFICATE"),
        client_key_file=client_key,
        client_certificate_file=client_cert,
        insecure=insecure,
        overrides=tuple(overrides),
        endpoint_problem=problem,
    )
