"""The resource every signal of this process carries: service identity, coarse environment, anonymous id.

Computed once per process. Ambient resource attributes that identify a machine or a person are never
taken over, whoever set them.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from otel_expansion.config.settings import Settings

_cache: dict[str, dict[str, Any]] = {}

IDENTIFYING_RESOURCE_KEYS = (
    "host.name", "host.id", "host.ip", "host.mac", "enduser.", "user.", "client.", "net.", "network.",
    "device.id", "process.owner", "process.command", "process.pid", "process.executable.path",
    "k8s.pod.", "k8s.node.", "container.id", "container.name", "cloud.account.id",
)
"""OTEL_RESOURCE_ATTRIBUTES keys never taken over: they identify a machine or a person."""


def resource_for(settings: Settings, clean: Callable[[str], str]) -> dict[str, Any]:
    """Service identity, coarse environment and the anonymous installation id (computed once).

    ``clean`` is the recorder's redaction of free text, applied to every value taken from outside.
    """
    if "value" not in _cache:
        from otel_expansion.collect.environment import resource_attributes
        from otel_expansion.config.paths import SERVICE_FILE, write_private
        from otel_expansion.privacy.identity import installation_id

        s = settings
        attrs: dict[str, Any] = {}
        for key, value in s.resource_attributes:
            if not key.startswith(IDENTIFYING_RESOURCE_KEYS):  # minimisation beats a stray variable
                attrs[key] = clean(value)
        attrs.update(resource_attributes())
        attrs["service.name"] = clean(s.service_name)
        if s.service_version:
            attrs["service.version"] = clean(s.service_version)
        attrs["otel_expansion.installation.id"] = installation_id(s.home)
        service_file = os.path.join(s.home, SERVICE_FILE)
        if not os.path.exists(service_file):
            write_private(service_file, s.service_name.encode())
        _cache["value"] = attrs
    return dict(_cache["value"])


def forget() -> None:
    """Drop the cached resource (a new init() in the same process, or tests)."""
    _cache.clear()
