"""The system environment as OTel resource attributes, from ``os``/``sys`` alone.

``platform`` costs ~20 ms to import; everything here comes from already-loaded modules and a few stats,
so it can run in the CLI's own process (the journal records the environment of the run that produced it).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

import os
import sys

from otel_expansion.config.ci import CI_PROVIDERS, detect_ci

__all__ = ["CI_PROVIDERS", "detect_ci", "detect_container", "resource_attributes"]

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
