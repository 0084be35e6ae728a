"""The sender: journal -> SDK pipeline -> spool, then spool -> collector. Knows nothing of HTTP.

Runs detached after a CLI exits (``python -m otel_expansion.export.sender --home DIR``), in a thread of a
long-running program, or in the foreground for ``otel-expansion flush``. One at a time per home (a lock),
with a hard deadline, so it can neither pile up nor linger.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from otel_expansion.config.levels import Level
from otel_expansion.config.paths import SENDER_LOCK, SPOOL_FILE, ensure_dir
from otel_expansion.config.settings import Settings, resolve
from otel_expansion.export import launcher
from otel_expansion.journal import store as journal
from otel_expansion.spool.model import SUM, Attrs, MetricPoint, SeriesKey

log = logging.getLogger("otel_expansion.export")

CHUNK = 500  # journal records replayed per spool transaction
CHUNK_BYTES = 4 << 20  # and at most this much of them
BACKOFF_BASE_S = 5.0  # a dead collector is retried after 5-10 s, then 5-15 s, 5-25 s... (full jitter)
BACKOFF_CAP_S = 3600.0


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


class SenderBusy(RuntimeError):
    """Another sender holds the lock for this home."""


@contextmanager
def sender_lock(home: str, wait_s: float = 0.0) -> Iterator[None]:
    """Exclusive per-home lock; waits up to ``wait_s`` (0: fail at once with SenderBusy)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-process lock, accept the rare overlap
        yield
        return
    fd = os.open(os.path.join(ensure_dir(home), SENDER_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise SenderBusy(home) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def open_spool(home: str, settings: Settings) -> Any:
    from otel_expansion.spool.store import Spool

    return Spool.open(
        __import__("pathlib").Path(home) / SPOOL_FILE,
        max_bytes=settings.spool_max_bytes,
        max_age_s=settings.spool_max_age_s,
    )


class Ingestor:
    """Replays journal records through per-(resource, level) SDK pipelines and commits them."""

    def __init__(self, settings: Settings) -> None:
        from otel_expansion.privacy.redaction import Redactor
        from otel_expansion.sdk.staging import Staging

        self.settings = settings
        self.redactor = Redactor(settings.redact_patterns, settings.redact_allow, settings.hash_salt)
        self.staging = Staging()
        self.pipelines: dict[tuple[Attrs, int], Any] = {}

    def pipeline(self, resource: dict[str, Any], level: int) -> Any:
        from otel_expansion.sdk.pipeline import Pipeline
        from otel_expansion.spool.model import attrs_of

        key = (attrs_of(resource), level)
        if key not in self.pipelines:
            self.pipelines[key] = Pipeline(resource, Level(level), self.redactor, self.staging)
        return self.pipelines[key]

    def run(
        self, home: str, spool: Any, deadline: float, progress: Callable[[int, int], None] | None = None
    ) -> tuple[int, int]:
        """Ingest every published record; returns (ingested, corrupt)."""
        paths = journal.pending(home)
        ingested = corrupt = 0
        dropped = journal.take_dropped(home)
        if dropped:
            spool.incr("dropped.journal_full", dropped)
        done = 0
        for chunk in _chunks(paths):
            if time.monotonic() > deadline:
                break
            done += len(chunk)
            ids = [os.path.basename(p) for p in chunk]
            seen = spool.seen(ids)
            records: list[tuple[str, dict[str, Any]]] = []
            bad: list[str] = []
            for path, rid in zip(chunk, ids, strict=False):
                if rid in seen:
                    continue
                try:
                    records.append((rid, journal.read(path)))
                except (journal.CorruptRecord, OSError) as exc:
                    log.warning("journal record %s is unreadable (%s); dropped", rid, exc)
                    bad.append(path)
            lo: int | None = None
            hi: int | None = None
            for _rid, record in records:
                try:
                    level = int(record.get("level", 0))  # type: ignore[call-overload]
                    if level <= 0:
                        continue
                    p = self.pipeline(dict(record.get("resource") or {}), level)  # type: ignore[call-overload]
                    p.ingest(record)
                    for cmd in record.get("commands") or ():  # type: ignore[attr-defined]
                        lo = cmd["start"] if lo is None else min(lo, cmd["start"])
                        hi = cmd["end"] if hi is None else max(hi, cmd["end"])
                except Exception as exc:
                    log.warning("journal record could not be replayed (%s); dropped", exc)
            for p in self.pipelines.values():
                p.collect(lo, hi)
            points, spans = self.staging.take()
            spool.add(points, spans, source_ids=[rid for rid, _ in records])
            staged_drops = self.staging.take_dropped()
            if staged_drops:  # more spans than staging holds in one chunk: counted, never silent
                spool.incr("dropped.staging", staged_drops)
            overflow = sum(int(r.get("overflow", 0) or 0) for _, r in records)  # type: ignore[call-overload]
            if overflow:
                spool.incr("dropped.overflow", overflow)
            if bad:
                spool.incr("dropped.corrupt", len(bad))
            journal.remove(chunk)
            ingested += len(records)
            corrupt += len(bad)
            if progress is not None:
                progress(done, len(paths))
        return ingested, corrupt


def _chunks(paths: list[str]) -> Iterator[list[str]]:
    """Runs of at most CHUNK records and CHUNK_BYTES of them (a long-running program's records hold
    many commands each: a chunk's spans must fit in staging)."""
    chunk: list[str] = []
    size = 0
    for path in paths:
        try:
            n = os.path.getsize(path)
        except OSError:
            n = 0
        if chunk and (len(chunk) >= CHUNK or size + n > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(path)
        size += n
    if chunk:
        yield chunk


def health_points(spool: Any, resource: dict[str, Any], now_ns: int) -> list[MetricPoint]:
    """Self-health counters not reported yet, as delta points (the spool keeps the running totals)."""
    from otel_expansion import __version__
    from otel_expansion.sdk import signals
    from otel_expansion.sdk.pipeline import sdk_resource
    from otel_expansion.spool.model import attrs_of

    counters = spool.counters()
    reported_raw = spool.get_state("health.reported") or ""
    reported = dict(item.split("=", 1) for item in reported_raw.split(",") if "=" in item)
    res = attrs_of(sdk_resource(resource).attributes)
    points = []
    for name, total in sorted(counters.items()):
        delta = total - int(reported.get(name, 0))
        if delta <= 0:
            continue
        attrs: tuple[tuple[str, Any], ...]
        if name.startswith("dropped."):
            metric, attrs = "otel_expansion.spool.dropped", (("reason", name.split(".", 1)[1]),)
        elif name == "export.attempts":
            metric, attrs = "otel_expansion.export.attempts", ()
        elif name.startswith("export.failures."):
            metric, attrs = "otel_expansion.export.failures", (("reason", name.split(".", 2)[2]),)
        else:
            continue
        declared = signals.METRICS_BY_NAME[metric]
        key = SeriesKey(res, signals.SCOPE_NAME, __version__, metric, SUM, declared.unit, declared.description, attrs)
        points.append(MetricPoint(key, now_ns, now_ns, value=float(delta)))
        reported[name] = str(total)
    if points:
        spool.set_state("health.reported", ",".join(f"{k}={v}" for k, v in reported.items()))
    return points


def send_pending(spool: Any, transport: Any, settings: Settings, config: Any, deadline: float,
                 summary: SendSummary, progress: Callable[[SendSummary], None] | None = None,
                 persist: bool = False, disabled: frozenset[str] = frozenset()) -> None:
    """Send batches until the spool is empty, the collector fails, or time runs out.

    A background round gives up at the first transient failure and leaves a persisted backoff behind.
    ``persist`` (``otel-expansion flush``) keeps retrying with short backoff until the deadline instead.
    """
    quick_retries = 0
    from otel_expansion.export.encode import metrics_request, serialize, traces_request
    from otel_expansion.export.transport import Outcome, backoff_delay

    builders: dict[str, Callable[[Any, str], Any]] = {"metrics": metrics_request, "traces": traces_request}

    def send_rows(signal: str, rows: list[Any], batch_id: str) -> tuple[Any, int, int]:
        """Send ``rows`` of one signal; a 413 halves the request (same batch id: a retry repeats exactly
        the same parts, so a receiver's duplicate check still holds). Returns (last result, accepted rows,
        rows dropped because even one alone was too large)."""
        body = serialize(builders[signal](rows, batch_id), config.for_signal(signal).protocol)
        spool.incr("export.attempts")
        result = transport.send(signal, body, batch_id, deadline_s=max(0.1, deadline - time.monotonic()))
        summary.bytes_sent += result.sent_bytes
        summary.rejected += result.rejected
        if result.outcome is not Outcome.TOO_LARGE:
            return result, (len(rows) if result.outcome is Outcome.SUCCESS else 0), 0
        if len(rows) == 1:
            return result, 0, 1
        half = len(rows) // 2
        accepted = too_large = 0
        for part in (rows[:half], rows[half:]):
            result, ok, big = send_rows(signal, part, batch_id)
            accepted, too_large = accepted + ok, too_large + big
            if result.outcome not in (Outcome.SUCCESS, Outcome.TOO_LARGE):
                break
        return result, accepted, too_large

    while time.monotonic() < deadline:
        batch = spool.next_batch(max_spans=settings.span_batch_size, max_points=2048)
        if batch is None:
            break
        outcome = Outcome.SUCCESS
        result = None
        done_key = f"batch.{batch.id}.done"
        done = set((spool.get_state(done_key) or "").split(",")) - {""}
        accepted = {"metrics": 0, "traces": 0}
        refused: dict[str, int] = {}  # "signal:reason" -> rows settled without delivery
        for signal, rows in (("metrics", batch.points), ("traces", batch.spans)):
            if not rows or signal in done:
                continue
            if signal in disabled:
                refused[f"{signal}:exporter_none"] = len(rows)
                done.add(signal)
                continue
            result, ok, too_large = send_rows(signal, list(rows), batch.id)
            accepted[signal] += ok
            if too_large:
                refused[f"{signal}:too_large"] = too_large
                summary.error = f"{too_large} {signal} items were too large for the collector; they were dropped"
            if result.outcome is Outcome.DROP:  # this signal is refused for good; the other still goes
                spool.incr(f"export.failures.http_{result.status}")
                refused[f"{signal}:rejected"] = len(rows) - ok
                summary.error = f"collector refused {signal} (HTTP {result.status}); they were dropped"
            elif result.outcome not in (Outcome.SUCCESS, Outcome.TOO_LARGE):
                outcome = result.outcome
                break
            done.add(signal)  # a retry of this batch resends only what was not settled yet
            spool.set_state(done_key, ",".join(sorted(done)))
        summary.outcomes.append(outcome.name)
        # what was accepted is delivered even if the batch as a whole must be retried later
        summary.spans_sent += accepted["traces"]
        summary.points_sent += accepted["metrics"]
        if outcome is Outcome.SUCCESS:  # every signal of the batch is settled: accepted or refused
            spool.ack(batch.id)
            summary.batches_sent += 1 if any(accepted.values()) else 0
            for key, n in refused.items():
                spool.incr("dropped." + key.split(":", 1)[1], n)
                summary.dropped += n
                if key.endswith(":exporter_none"):
                    summary.disabled += n
            if any(accepted.values()):
                spool.set_state("backoff.failures", "0")
            if progress is not None:
                progress(summary)
            continue
        status = result.status if result is not None else None
        if persist:
            wait = backoff_delay(quick_retries, base_s=0.5, cap_s=5.0)
            if result is not None and result.retry_after_s is not None:
                wait = max(wait, result.retry_after_s)
            if time.monotonic() + wait < deadline:
                quick_retries += 1
                spool.incr("export.failures.unavailable")
                summary.retries += 1
                if progress is not None:
                    previous, summary.error = summary.error, (result.error if result is not None else None)
                    progress(summary)
                    summary.error = previous
                time.sleep(wait)
                continue
        failures = int(spool.get_state("backoff.failures") or 0) + 1
        spool.set_state("backoff.failures", str(failures))
        spool.incr("export.failures.unavailable")
        wait = BACKOFF_BASE_S + backoff_delay(failures - 1, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S)
        if result is not None and result.retry_after_s is not None:
            wait = max(wait, result.retry_after_s)
        summary.retry_at = time.time() + wait
        summary.error = (result.error if result is not None and result.error else None) or (
            f"collector unavailable (HTTP {status})" if status else "collector unavailable"
        )
        break


def disabled_signals(environ: Any = None) -> frozenset[str]:
    """Signals whose standard ``OTEL_<SIGNAL>_EXPORTER`` is ``none``: kept local, then dropped, counted."""
    env = os.environ if environ is None else environ
    return frozenset(
        signal for signal, var in (("traces", "OTEL_TRACES_EXPORTER"), ("metrics", "OTEL_METRICS_EXPORTER"))
        if env.get(var, "").strip().lower() == "none"
    )


def run_round(home: str, settings: Settings, *, send: bool = True, force: bool = False, persist: bool = False,
              lock_wait_s: float = 0.0,
              deadline_s: float | None = None, progress: Callable[[str, Any], None] | None = None) -> SendSummary:
    """One sender round: ingest the journal, then send if due (or ``force``).

    ``persist`` keeps retrying transient failures until the deadline (the foreground ``flush``).
    """
    from otel_expansion.export.otlp_config import otlp_config_from_env
    from otel_expansion.export.transport import HttpTransport

    summary = SendSummary()
    deadline = time.monotonic() + (settings.sender_timeout_s if deadline_s is None else deadline_s)
    from otel_expansion.privacy.consent import stored_choice

    if stored_choice(home) == "denied":  # the user withdrew consent: what was pending is deleted, not sent
        with sender_lock(home, lock_wait_s):
            discard_pending(home, settings)
        summary.error = "telemetry was denied by the user; pending data was deleted, nothing sent"
        return summary
    with sender_lock(home, lock_wait_s):
        journal.sweep_temp(home, 600, time.time())
        spool = open_spool(home, settings)
        try:
            summary.ingested, summary.corrupt = Ingestor(settings).run(
                home, spool, deadline, (lambda d, t: progress("ingest", (d, t))) if progress else None
            )
            resource = _any_resource(spool)
            if resource is not None:
                health = health_points(spool, resource, time.time_ns())
                if health:
                    spool.add(health, ())
            due = force or time.time() >= launcher.next_send_at(home)
            if send and due:
                config = otlp_config_from_env(endpoint=settings.endpoint)
                transport = HttpTransport(config)
                try:
                    send_pending(spool, transport, settings, config, deadline, summary,
                                 (lambda s: progress("send", s)) if progress else None, persist=persist,
                                 disabled=disabled_signals())
                finally:
                    transport.close()
                if summary.retry_at is not None:
                    launcher.write_next_send_at(home, summary.retry_at)
                else:
                    launcher.write_next_send_at(home, time.time() + settings.metric_interval_s)
            stats = spool.stats()
            summary.pending_spans, summary.pending_series = stats.spans, stats.series
        finally:
            spool.close()
    return summary


def _any_resource(spool: Any) -> dict[str, Any] | None:
    """A resource for self-health points: the newest pending data's, minus SDK-added keys."""
    points, spans = spool.pending(limit=1)
    rows = [p.key.resource for p in points] + [s.resource for s in spans]
    if not rows:
        return None
    return {k: v for k, v in rows[0] if not k.startswith(("telemetry.sdk.", "telemetry.distro."))}


def settings_for(home: str, endpoint: str | None = None) -> Settings:
    """Sender settings from the environment; the service identity comes from each record.

    The endpoint is the one given on the command line, else the one the app passed to ``init()``
    (remembered in the home directory), else the OTLP environment variables decide.
    """
    return resolve("otel-expansion-sender", home=home, endpoint=endpoint or stored_endpoint(home),
                   level=Level.FULL)


def discard_pending(home: str, settings: Settings) -> tuple[int, int]:
    """Delete every pending record and spool row (and spool files moved aside as corrupt).

    Returns (journal records, spool rows) removed. Used when the user clears or withdraws consent.
    """
    records = journal.pending(home)
    journal.remove(records)
    for leftover in os.listdir(home) if os.path.isdir(home) else ():
        if leftover.startswith(SPOOL_FILE + ".corrupt-"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(home, leftover))
    rows = 0
    if os.path.exists(os.path.join(home, SPOOL_FILE)):
        spool = open_spool(home, settings)
        try:
            rows = spool.clear()
        finally:
            spool.close()
    return len(records), rows


def stored_endpoint(home: str) -> str | None:
    from otel_expansion.config.paths import ENDPOINT_FILE, read_small

    raw = read_small(os.path.join(home, ENDPOINT_FILE), 4096)
    return raw.decode("utf-8", "replace").strip() or None if raw else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-expansion-sender", description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--endpoint")
    parser.add_argument("--no-send", action="store_true")
    parser.add_argument("--force", action="store_true", help="send even if the export interval has not passed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sender[%(process)d] %(levelname)s %(message)s")
    settings = settings_for(args.home, args.endpoint)
    _trim_log(args.home)
    try:
        import signal

        signal.alarm(int(settings.sender_timeout_s) + 15)  # hard stop, whatever happens below
    except (ImportError, AttributeError, ValueError):
        pass
    try:
        summary = run_round(args.home, settings, send=settings.send and not args.no_send, force=args.force)
    except SenderBusy:
        return 0
    except Exception as exc:
        from otel_expansion.spool.store import SpoolUnavailable

        if isinstance(exc, SpoolUnavailable):  # read-only or full disk: stand down, try again next time
            log.warning("spool unavailable, standing down: %s", exc)
            return 0
        log.warning("sender round failed: %s: %s", type(exc).__name__, exc)
        return 1
    log.info("round: ingested=%d batches=%d spans=%d points=%d bytes=%d error=%s", summary.ingested,
             summary.batches_sent, summary.spans_sent, summary.points_sent, summary.bytes_sent, summary.error)
    return 0


def _trim_log(home: str, limit: int = 1 << 20) -> None:
    from otel_expansion.config.paths import SENDER_LOG

    path = os.path.join(home, SENDER_LOG)
    try:
        if os.path.getsize(path) > limit:
            os.truncate(path, 0)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
