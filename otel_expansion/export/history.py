"""Recently sent: a bounded local copy of every request the collector accepted, and the last round's result.

One file per accepted request in ``<home>/sent/`` (mode 0600, like the spool): a JSON header line (when,
where to, batch id, signal, item count, bytes on the wire) followed by the request body exactly as it was
sent before compression. Bounded by count and bytes (oldest removed first); ``clear`` deletes it all.
Writing costs the sender one small file per request; decoding happens only when someone reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from otel_expansion.config.paths import LAST_SEND_FILE, SENT_DIR, ensure_dir, read_small, write_private


@dataclass(frozen=True)
class SentEntry:
    """One accepted request; ``body`` is the uncompressed encoded request (protobuf or JSON)."""

    time: float
    endpoint: str
    batch_id: str
    signal: str
    items: int
    wire_bytes: int
    protocol: str
    status: int | None
    body: bytes
    name: str

    def header(self) -> dict[str, Any]:
        return {"time": self.time, "endpoint": self.endpoint, "batch_id": self.batch_id, "signal": self.signal,
                "items": self.items, "wire_bytes": self.wire_bytes, "protocol": self.protocol,
                "status": self.status, "body_bytes": len(self.body)}

    def content(self) -> dict[str, Any]:
        """The request as OTLP/JSON (decoded from protobuf when that is what was sent)."""
        if self.protocol == "http/json":
            data: dict[str, Any] = json.loads(self.body)
            return data
        from otel_expansion.otlp.encode import to_dict

        return to_dict(_message(self.signal, self.body))


def _message(signal: str, body: bytes) -> Any:
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        return ExportTraceServiceRequest.FromString(body)
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    return ExportMetricsServiceRequest.FromString(body)


def sent_dir(home: str) -> str:
    return os.path.join(home, SENT_DIR)


def record(home: str, entry: SentEntry, max_batches: int, max_bytes: int) -> None:
    """Keep ``entry``, then trim the history to its bounds. Never raises (history is a courtesy)."""
    if max_batches <= 0 or max_bytes <= 0:
        return
    try:
        directory = ensure_dir(sent_dir(home))
        name = f"{time.time_ns():020d}-{os.getpid()}-{entry.signal}.sent"
        data = json.dumps(entry.header(), separators=(",", ":")).encode() + b"\n" + entry.body
        write_private(os.path.join(directory, name), data)
        trim(home, max_batches, max_bytes)
    except OSError:
        pass


def _files(home: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(sent_dir(home)) if n.endswith(".sent"))
    except OSError:
        return []


def trim(home: str, max_batches: int, max_bytes: int) -> int:
    """Remove the oldest entries beyond the bounds; returns how many were removed."""
    names = _files(home)
    sizes = []
    for n in names:
        try:
            sizes.append(os.lstat(os.path.join(sent_dir(home), n)).st_size)
        except OSError:
            sizes.append(0)
    removed = 0
    total = sum(sizes)
    while names and (len(names) > max_batches or total > max_bytes):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(sent_dir(home), names[0]))
        total -= sizes.pop(0)
        names.pop(0)
        removed += 1
    return removed


def entries(home: str, since: float | None = None, signal: str | None = None) -> list[SentEntry]:
    """The kept entries, oldest first, optionally only those sent at or after ``since`` / of ``signal``."""
    out = []
    for name in _files(home):
        try:
            with open(os.path.join(sent_dir(home), name), "rb") as f:
                head, _, body = f.read().partition(b"\n")
            h = json.loads(head)
            entry = SentEntry(float(h["time"]), str(h["endpoint"]), str(h["batch_id"]), str(h["signal"]),
                              int(h["items"]), int(h["wire_bytes"]), str(h["protocol"]), h.get("status"), body, name)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if since is not None and entry.time < since:
            continue
        if signal is not None and entry.signal != signal:
            continue
        out.append(entry)
    return out


def clear(home: str) -> int:
    """Delete the whole history (``otel-expansion clear``, consent withdrawn); returns entries removed."""
    names = _files(home)
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(sent_dir(home), name))
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(home, LAST_SEND_FILE))
    return len(names)


def note_round(home: str, result: dict[str, Any]) -> None:
    """Remember the last sender round's result (time, ok, error, counts) for ``status`` and the inspector."""
    with contextlib.suppress(OSError):
        write_private(os.path.join(home, LAST_SEND_FILE), json.dumps(result, sort_keys=True).encode())


def last_round(home: str) -> dict[str, Any] | None:
    raw = read_small(os.path.join(home, LAST_SEND_FILE), 65536)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
