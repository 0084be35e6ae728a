"""Environment: coarse facts only, CI detection, no identifying data."""

from __future__ import annotations

import os
import socket

from otel_expansion.collect import detect_ci, resource_attributes


def test_ci_providers_detected() -> None:
    """Known CI variables name the provider; bare CI=true is generic; CI=false is not CI."""
    assert detect_ci({"GITHUB_ACTIONS": "true"}) == "github_actions"
    assert detect_ci({"CI": "true"}) == "generic"
    assert detect_ci({"CI": "false"}) is None
    assert detect_ci({}) is None


def test_resource_is_coarse_and_anonymous() -> None:
    """Attributes follow semconv names and never carry the host or user name."""
    attrs = resource_attributes({"GITLAB_CI": "1"})
    assert attrs["os.type"] in ("linux", "darwin", "windows")
    assert attrs["ci.detected"] is True and attrs["ci.provider"] == "gitlab"
    assert isinstance(attrs["container.detected"], bool)
    values = " ".join(str(v) for v in attrs.values())
    assert socket.gethostname() not in values
    user = os.environ.get("USER") or ""
    if len(user) >= 3:
        assert user not in values
