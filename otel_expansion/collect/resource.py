"""The resource every signal of this process carries: service identity, coarse environment, anonymous id.

Computed once per process. Ambient resource attributes (OTEL_RESOURCE_ATTRIBUTES) are taken over only
for keys the app allow-lists, and those that identify a machine or a person never; a version is sent
as its public part.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from otel_expansion.config.settings import Settings

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
        from otel_expansion.collect.environment import resource_attributes
        from otel_expansion.config.paths import SERVICE_FILE, write_private
        from otel_expansion.privacy.identity import installation_id
        from otel_expansion.privacy.names import ambient_resource, public_version

        s = settings
        attrs: dict[str, Any] = {}
        for key, value in ambient_resource(s.resource_attributes, allow).items():
            if not key.startswith(IDENTIFYING_RESOURCE_KEYS):  # minimisation beats a stray variable
                attrs[key] = clean(value)
        attrs.update(resource_attributes())
        attrs["service.name"] = clean(s.service_name)
        version = public_version(s.service_version)  # 1.0+jane.laptop -> 1.0: a local label names a machine
        if version:
            attrs["service.version"] = version
        attrs["otel_expansion.installation.id"] = installation_id(s.home)
        service_file = os.path.join(s.home, SERVICE_FILE)
        if not os.path.exists(service_file):
            write_private(service_file, s.service_name.encode())
        if s.opt_out_env:  # so `otel-expansion status` can name the app's own opt-out variable
            from otel_expansion.config.paths import OPT_OUT_ENV_FILE, read_small

            opt_file = os.path.join(s.home, OPT_OUT_ENV_FILE)
            if read_small(opt_file, 256) != s.opt_out_env.encode():
                write_private(opt_file, s.opt_out_env.encode())
        _cache["value"] = attrs
    return dict(_cache["value"])


def forget() -> None:
    """Drop the cached resource (a new init() in the same process, or tests)."""
    _cache.clear()
