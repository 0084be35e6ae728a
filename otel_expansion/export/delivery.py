"""Delivery: drain the spool batch by batch through a transport, settle each signal, persist the backoff.

Knows batches, signals and outcomes; the transport alone knows HTTP, the spool alone knows SQLite.

Exactly once: a receiver drops a request it already stored by (batch id, content), so a batch id must
always stand for the same bytes. A 413 therefore splits the refused signal into two parts persisted as
batches of their own (``Spool.split``: derived ids, fixed rows); a part is resent only whole and
unchanged, whatever the order of later splits, connection resets and retries. What a receiver accepted
is never resent, and a signal settled as refused is counted once, when it is settled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_expansion.config.otlp import OtlpConfig
from otel_expansion.export.ports import DeliverySpool
from otel_expansion.export.transport import Outcome, SendResult, Transport, backoff_delay
from otel_expansion.otlp.encode import metrics_request, serialize, traces_request
from otel_expansion.otlp.model import Batch

__all__ = ["BACKOFF_BASE_S", "BACKOFF_CAP_S", "Delivery", "SendSummary", "disabled_signals"]

BACKOFF_BASE_S = 5.0  # a dead collector is retried after 5-10 s, then 5-15 s, 5-25 s... (full jitter)
BACKOFF_CAP_S = 3600.0
MAX_POINTS_PER_BATCH = 2048

_BUILDERS: dict[str, Callable[[Any, str], Any]] = {"metrics": metrics_request, "traces": traces_request}


@dataclass
class SendSummary:
    """What one round did; ``ok`` is False when the collector refused or could not be reached."""

    ingested: int = 0
    corrupt: int = 0
    batches_sent: int = 0
    spans_sent: int = 0
    points_sent: int = 0
    bytes_sent: int = 0
    dropped: int = 0
    rejected: int = 0
    retries: int = 0
    disabled: int = 0  # items kept off the wire by OTEL_<SIGNAL>_EXPORTER=none
    retry_at: float | None = None
    error: str | None = None
    pending_spans: int = 0
    pending_series: int = 0
    outcomes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def disabled_signals(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Signals whose standard ``OTEL_<SIGNAL>_EXPORTER`` is ``none``: kept local, then dropped, counted."""
    env = os.environ if environ is None else environ
    return frozenset(
        signal for signal, var in (("traces", "OTEL_TRACES_EXPORTER"), ("metrics", "OTEL_METRICS_EXPORTER"))
        if env.get(var, "").strip().lower() == "none"
    )


class Delivery:
    """Sends what the spool holds until it is empty, the collector fails, or the deadline passes.

    A background round gives up at the first transient failure and leaves a persisted backoff behind;
    ``persist`` (the foreground ``otel-expansion flush``) keeps retrying with short waits until the deadline.
    """

    def __init__(
        self,
        spool: DeliverySpool,
        transport: Transport,
        config: OtlpConfig,
        *,
        deadline: float,
        max_spans: int,
        persist: bool = False,
        disabled: frozenset[str] = frozenset(),
        progress: Callable[[SendSummary], None] | None = None,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.config = config
        self.deadline = deadline
        self.max_spans = max_spans
        self.persist = persist
        self.disabled = disabled
        self.progress = progress

    def run(self, summary: SendSummary) -> None:
        quick_retries = 0
        while time.monotonic() < self.deadline:
            batch = self.spool.next_batch(max_spans=self.max_spans, max_points=MAX_POINTS_PER_BATCH)
            if batch is None:
                return
            outcome, result = self._send_batch(batch, summary)
            if outcome in (Outcome.SUCCESS, Outcome.TOO_LARGE):  # settled, or split into parts sent next
                continue
            if outcome is not Outcome.HOLD and self.persist and self._wait_quickly(quick_retries, result, summary):
                quick_retries += 1
                continue
            self._back_off(result, summary)
            return

    # -- one batch -------------------------------------------------------------------------------------
    def _send_batch(self, batch: Batch, summary: SendSummary) -> tuple[Outcome, SendResult | None]:
        """Send each unsettled signal of ``batch``; ack it once every signal is accepted or refused.

        Returns TOO_LARGE when a signal was split into parts (the loop sends them next), SUCCESS when
        the batch is settled, else the transient outcome that stopped it.
        """
        spool = self.spool
        outcome = Outcome.SUCCESS
        result: SendResult | None = None
        done_key = f"batch.{batch.id}.done"
        done = set((spool.get_state(done_key) or "").split(",")) - {""}
        accepted = {"metrics": 0, "traces": 0}
        held: list[tuple[str, Any, SendResult]] = []
        for signal, rows in (("metrics", batch.points), ("traces", batch.spans)):
            if not rows or signal in done:
                continue
            refused: str | None = None
            if signal in self.disabled:
                refused = "exporter_none"
            else:
                result = self._send_rows(signal, list(rows), batch.id, summary)
                if result.outcome is Outcome.TOO_LARGE:
                    if len(rows) > 1 and spool.split(batch.id, signal) is not None:
                        outcome = Outcome.TOO_LARGE
                        break
                    refused = "too_large"
                    summary.error = f"{len(rows)} {signal} items were too large for the collector; they were dropped"
                elif result.outcome is Outcome.DROP:  # this signal is refused for good; the other still goes
                    refused = "rejected"
                    summary.error = f"collector refused {signal} (HTTP {result.status}); they were dropped"
                elif result.outcome is Outcome.HOLD:  # decided below, once the other signal was tried
                    held.append((signal, rows, result))
                    continue
                elif result.outcome is not Outcome.SUCCESS:
                    outcome = result.outcome
                    break
                else:
                    accepted[signal] += len(rows)
            self._settle_signal(batch.id, done, signal, len(rows), refused, summary)
        if held and outcome is Outcome.SUCCESS:
            if any(accepted.values()) or done - {signal for signal, _, _ in held}:
                # the endpoint took the other signal: it is right, and only refuses this one (a traces-only
                # backend answers 404 on /v1/metrics): refused for good, counted
                for signal, rows, refusal in held:
                    summary.error = f"collector refused {signal} (HTTP {refusal.status}); they were dropped"
                    self._settle_signal(batch.id, done, signal, len(rows), "rejected", summary)
            else:  # nothing was taken: a wrong path or credentials; the data waits (within the spool's cap)
                outcome, result = Outcome.HOLD, held[0][2]
        summary.outcomes.append(outcome.name)
        # what was accepted is delivered even if the batch as a whole must be retried later
        summary.spans_sent += accepted["traces"]
        summary.points_sent += accepted["metrics"]
        if outcome is Outcome.SUCCESS:
            self._settle(batch, accepted, summary)
        return outcome, result

    def _settle_signal(self, batch_id: str, done: set[str], signal: str, n: int, refused: str | None,
                       summary: SendSummary) -> None:
        """One signal of the batch is settled: remembered (a retry resends only the rest) and, when refused,
        counted now, exactly once."""
        done.add(signal)
        self.spool.set_state(f"batch.{batch_id}.done", ",".join(sorted(done)))
        if refused is not None:
            self.spool.incr(f"dropped.{refused}", n)
            summary.dropped += n
            summary.disabled += n if refused == "exporter_none" else 0

    def _send_rows(self, signal: str, rows: list[Any], batch_id: str, summary: SendSummary) -> SendResult:
        """One request with ``rows`` of one signal under ``batch_id``."""
        body = serialize(_BUILDERS[signal](rows, batch_id), self.config.for_signal(signal).protocol)
        result: SendResult = self.transport.send(
            signal, body, batch_id, deadline_s=max(0.1, self.deadline - time.monotonic()))
        summary.bytes_sent += result.sent_bytes
        summary.rejected += result.rejected
        return result

    def _settle(self, batch: Batch, accepted: dict[str, int], summary: SendSummary) -> None:
        """Every signal of the batch is accepted or refused (and counted): ack it."""
        spool = self.spool
        spool.ack(batch.id)
        summary.batches_sent += 1 if any(accepted.values()) else 0
        if any(accepted.values()):
            spool.set_state("backoff.failures", "0")
        if self.progress is not None:
            self.progress(summary)

    # -- failures --------------------------------------------------------------------------------------
    def _wait_quickly(self, attempt: int, result: SendResult | None, summary: SendSummary) -> bool:
        """Foreground flush: wait a short backoff and retry, if that still fits before the deadline."""
        wait = backoff_delay(attempt, base_s=0.5, cap_s=5.0)
        if result is not None and result.retry_after_s is not None:
            wait = max(wait, result.retry_after_s)
        if time.monotonic() + wait >= self.deadline:
            return False
        summary.retries += 1
        if self.progress is not None:
            previous, summary.error = summary.error, (result.error if result is not None else None)
            self.progress(summary)
            summary.error = previous
        time.sleep(wait)
        return True

    def _back_off(self, result: SendResult | None, summary: SendSummary) -> None:
        """Persist the failure count and say when the next round may try again."""
        spool = self.spool
        failures = int(spool.get_state("backoff.failures") or 0) + 1
        spool.set_state("backoff.failures", str(failures))
        wait = BACKOFF_BASE_S + backoff_delay(failures - 1, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S)
        if result is not None and result.retry_after_s is not None:
            wait = max(wait, result.retry_after_s)
        summary.retry_at = time.time() + wait
        status = result.status if result is not None else None
        summary.error = (result.error if result is not None and result.error else None) or (
            f"collector unavailable (HTTP {status})" if status else "collector unavailable"
        )
