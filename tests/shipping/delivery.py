"""What a shipped CLI's runs delivered: the spans an OTLP receiver on 127.0.0.1 was sent, by command."""

from __future__ import annotations

import time
from typing import Any

from tests.export.servers import RecordedRequest


def delivered(requests: list[RecordedRequest]) -> list[tuple[str, str, int]]:
    """(service.name, cli.command.name, process.exit.code) of every span received, in arrival order."""
    found = []
    for req in requests:
        if req.signal != "traces":
            continue
        for rs in req.message().resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}.get("service.name", "")
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs: dict[str, Any] = {a.key: a.value for a in span.attributes}
                    found.append((service, attrs["cli.command.name"].string_value,
                                  attrs["process.exit.code"].int_value))
    return found


def wait_delivered(server: Any, count: int, timeout_s: float = 120) -> list[tuple[str, str, int]]:
    """Wait (bounded) until ``count`` spans arrived; returns them."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = delivered(server.requests)
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)
