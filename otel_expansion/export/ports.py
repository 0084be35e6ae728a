"""The seams of the export stage, as types: what delivery needs of a spool, and of a transport.

Why a Protocol and not ``spool.store.Spool``: delivery is tested against the real spool and against
in-memory stand-ins, and the spool's file layout is being reorganised independently; the six methods
below are the whole contract. The transport's protocol is :class:`otel_expansion.export.transport.Transport`.
"""

from __future__ import annotations

from typing import Protocol

from otel_expansion.export.transport import Transport
from otel_expansion.otlp.model import Batch

__all__ = ["DeliverySpool", "Transport"]


class DeliverySpool(Protocol):
    """What :class:`~otel_expansion.export.delivery.Delivery` and the metered transport use of the spool."""

    def next_batch(self, max_spans: int = 512, max_points: int = 2048) -> Batch | None:
        """Reserve the next batch to send (stable id across retries), or None when nothing is pending."""
        ...

    def ack(self, batch_id: str) -> None:
        """The batch is settled: delete its rows."""
        ...

    def split(self, batch_id: str, signal: str) -> tuple[str, str] | None:
        """Split a signal refused as too large into two persisted parts; None when it cannot be split."""
        ...

    def incr(self, name: str, n: int = 1) -> None:
        """Add to a self-health counter (drops, attempts, failures)."""
        ...

    def get_state(self, key: str) -> str | None:
        ...

    def set_state(self, key: str, value: str) -> None:
        ...
