"""The detached sender: journal -> SDK replay -> spool, then spool -> collector, one round at a time.

Runs detached after a CLI exits (``python -m otel_expansion.workers.sender --home DIR``), in a thread of a
long-running program, or in the foreground for ``otel-expansion flush``. One at a time per home (a lock),
with a hard deadline, so it can neither pile up nor linger. It orchestrates the stages; each stage
(journal, sdk replay, spool, export delivery) knows nothing of the others.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from otel_expansion.config import Level, Settings, Stored, load, read_stored
from otel_expansion.config.otlp import masked_url
from otel_expansion.config.paths import SENDER_LOCK, SPOOL_FILE, ensure_dir
from otel_expansion.export import launcher
from otel_expansion.export.delivery import SendSummary
from otel_expansion.journal import store as journal

if TYPE_CHECKING:
    from otel_expansion.journal.record import Record
    from otel_expansion.sdk.debug import DebugSpool
    from otel_expansion.sdk.replay import Replayer
    from otel_expansion.spool.store import Spool

__all__ = [
    "SendSummary",
    "SenderBusy",
    "discard_pending",
    "ingest_journal",
    "main",
    "open_spool",
    "run_round",
    "sender_lock",
    "settings_for",
    "stored_endpoint",
]

log = logging.getLogger("otel_expansion.export")

CHUNK = 500  # journal records replayed per spool transaction
CHUNK_BYTES = 4 << 20  # and at most this much of them


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
    from otel_expansion.config.paths import open_private

    fd = open_private(os.path.join(ensure_dir(home), SENDER_LOCK))  # never through a link
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


def open_spool(home: str, settings: Settings, busy_timeout_ms: int = 5000) -> Spool | DebugSpool:
    from otel_expansion.spool.store import open_home

    spool = open_home(home, max_bytes=settings.spool_max_bytes, max_age_s=settings.spool_max_age_s,
                      busy_timeout_ms=busy_timeout_ms)
    if settings.debug:  # the debug stream: everything added is shown as it will be sent
        from otel_expansion.sdk.debug import DebugSpool

        return DebugSpool(spool, full=settings.debug_json)
    return spool


def ingest_journal(home: str, spool: Spool | DebugSpool, settings: Settings, deadline: float,
                   progress: Callable[[int, int], None] | None = None,
                   only: list[str] | None = None, replayer: Replayer | None = None) -> tuple[int, int]:
    """Replay every published journal record (or ``only`` these paths) into the spool, in chunks;
    returns (ingested, corrupt).

    Each chunk's rows are committed together with the record ids they came from, then the records are
    removed: a crash between the two replays nothing twice (the spool remembers the ids). ``replayer``: a
    service's own (its pipeline already set up), for what its export thread spilled.
    """
    from otel_expansion.journal.record import counters_of

    if replayer is None:
        from otel_expansion.privacy.consent import level_ceiling
        from otel_expansion.sdk.replay import Replayer

        replayer = Replayer(settings, ceiling=level_ceiling(home))  # a level lowered since: applies to these
    paths = journal.pending(home) if only is None else [p for p in only if os.path.exists(p)]
    ingested = corrupt = waiting = 0
    # ingest marks matter only while their file exists (we hold the sender lock: nobody else replays)
    spool.retain_sources([os.path.basename(p) for p in (paths if only is None else journal.pending(home))])
    dropped = journal.dropped(home)
    if dropped:
        spool.incr("dropped.journal_full", dropped)
        journal.forget_dropped(home, dropped)  # after the spool has it: a failure between loses nothing
    done = 0
    seen_paths = set(paths)
    chunks = list(_chunks(paths))
    while chunks:
        chunk = chunks.pop(0)
        if time.monotonic() > deadline:
            break
        done += len(chunk)
        ids = [os.path.basename(p) for p in chunk]
        seen = spool.seen(ids)
        records: list[tuple[str, Record]] = []
        bad: list[str] = []
        for path, rid in zip(chunk, ids, strict=False):
            if rid in seen:
                continue
            try:
                records.append((rid, journal.read(path)))
            except journal.WaitingRecord:  # a newer release's record: neither ours to delete nor a loss
                waiting += 1
                continue
            except (journal.CorruptRecord, OSError) as exc:
                log.warning("journal record %s is unreadable (%s); dropped", rid, exc)
                bad.append(path)
        done_ids = seen | {rid for rid, _ in records}
        points, spans = replayer.replay(record for _, record in records)
        spool.add(points, spans, source_ids=[rid for rid, _ in records])
        staged_drops = replayer.staging.take_dropped()
        if staged_drops:  # more spans than staging holds in one chunk: counted, never silent
            spool.incr("dropped.staging", staged_drops)
        tallies: dict[str, int] = {}  # commands, features and exceptions not kept; spans sampled out
        for _, r in records:
            for name, n in counters_of(r).items():
                tallies[name] = tallies.get(name, 0) + n
        for name, n in tallies.items():
            if n:
                spool.incr(name, n)
        spilled = sum(int(r.get("spilled", 0) or 0) for _, r in records)
        if spilled:  # a busy service's export thread handed these over: stored late, not lost (self-health)
            spool.incr("service.spilled", spilled)
        if bad:
            spool.incr("dropped.corrupt", len(bad))
        spool.forget_sources([os.path.basename(p) for p in journal.remove(
            [p for p in chunk if os.path.basename(p) in done_ids or p in bad])])
        ingested += len(records)
        corrupt += len(bad)
        if progress is not None:
            progress(done, len(paths))
        if not chunks and only is None and time.monotonic() < deadline:  # records published while this
            newer = [p for p in journal.pending(home) if p not in seen_paths]  # round ran (a service's last)
            seen_paths.update(newer)
            paths = paths + newer
            chunks = list(_chunks(newer))
    if waiting:
        log.info("%d journal records are of a newer format; left for a newer release", waiting)
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


def run_round(home: str, settings: Settings, *, send: bool = True, force: bool = False, persist: bool = False,
              lock_wait_s: float = 0.0,
              deadline_s: float | None = None, progress: Callable[[str, object], None] | None = None) -> SendSummary:
    """One sender round: ingest the journal, then send if due (or ``force``).

    ``persist`` keeps retrying transient failures until the deadline (the foreground ``flush``).
    """
    summary = SendSummary()
    deadline = time.monotonic() + (settings.sender_timeout_s if deadline_s is None else deadline_s)
    from otel_expansion.privacy.consent import stored_choice

    if stored_choice(home) == "denied":  # the user withdrew consent: what was pending is deleted, not sent
        with sender_lock(home, lock_wait_s):
            discard_pending(home, settings)
        summary.error = "telemetry was denied by the user; pending data was deleted, nothing sent"
        return summary
    with sender_lock(home, lock_wait_s):
        # the round's time starts once it holds the lock (a sender may have waited for another one)
        deadline = time.monotonic() + (settings.sender_timeout_s if deadline_s is None else deadline_s)
        journal.sweep_temp(home, 600, time.time())
        cost = _RoundCost(home, journal.count(home))
        spool = open_spool(home, settings)
        try:
            summary.ingested, summary.corrupt = ingest_journal(
                home, spool, settings, deadline, (lambda d, t: progress("ingest", (d, t))) if progress else None
            )
            _stage_health(spool)
            due = force or time.time() >= launcher.next_send_at(home)
            if send and due and not settings.dry_run:
                _deliver(spool, settings, deadline, summary, persist,
                         (lambda s: progress("send", s)) if progress else None, cost)
                if summary.retry_at is not None:
                    launcher.write_next_send_at(home, summary.retry_at)
                else:
                    launcher.write_next_send_at(home, time.time() + settings.metric_interval_s)
            if not cost.staged:  # not sent this round: what it cost is sent with the next one
                cost.stage(spool, None)
            stats = spool.stats()
            summary.pending_spans, summary.pending_series = stats.spans, stats.series
        finally:
            spool.close()
    return summary


def _stage_health(spool: Any) -> None:
    from otel_expansion.workers.health import health_points, resource_for_health

    resource = resource_for_health(spool)
    if resource is not None:
        health = health_points(spool, resource, time.time_ns())
        if health:
            spool.add(health, ())


class _RoundCost:
    """What one round costs (wall, CPU, spool size, backlog), staged once as self-health points."""

    def __init__(self, home: str, backlog: int) -> None:
        self.home, self.backlog = home, backlog
        self.started, self.started_cpu = time.monotonic(), time.thread_time()  # the round's own thread
        self.staged = False
        self.resource: dict[str, Any] | None = None  # taken before sending: a sent spool has none left

    def stage(self, spool: Any, transport: Any) -> bool:
        from otel_expansion.export.health import round_points
        from otel_expansion.workers.health import health_points, resource_for_health

        self.staged = True
        resource = self.resource or resource_for_health(spool)
        if resource is None:
            return False
        now = time.time_ns()
        points = health_points(spool, resource, now) + round_points(
            resource, transport, time.monotonic() - self.started, time.thread_time() - self.started_cpu,
            spool.stats().bytes_on_disk, self.backlog, now)
        spool.add(points, ())
        return True


def _deliver(spool: Any, settings: Settings, deadline: float, summary: SendSummary, persist: bool,
             progress: Callable[[SendSummary], None] | None, cost: _RoundCost) -> None:
    """Send what is pending; then the self-health of this very round (attempts, failures, latency) too,
    so that what a report shows is current, not the state from before the last send."""
    from otel_expansion.config.otlp import otlp_config_from_env
    from otel_expansion.export import history
    from otel_expansion.export.delivery import Delivery, disabled_signals
    from otel_expansion.export.health import MeteredTransport
    from otel_expansion.export.transport import HttpTransport

    config = otlp_config_from_env(endpoint=settings.endpoint)
    if config.endpoint_problem:  # misconfigured: hold the data (within the spool cap) and say so
        summary.error = f"{config.endpoint_problem}; nothing sent, the data waits"
        return
    transport = MeteredTransport(HttpTransport(config), spool, cost.home, settings, config)

    def deliver(report: Callable[[SendSummary], None] | None) -> None:
        Delivery(spool, transport, config, deadline=deadline, max_spans=settings.span_batch_size,
                 persist=persist, disabled=disabled_signals(), progress=report).run(summary)

    from otel_expansion.workers.health import resource_for_health

    cost.resource = resource_for_health(spool)
    try:
        deliver(progress)
        if summary.ok and cost.stage(spool, transport):
            deliver(None)
    finally:
        transport.close()
    history.note_round(cost.home, {
        "time": time.time(), "ok": summary.ok, "error": summary.error,
        "endpoint": masked_url(config.traces_url.rsplit("/v1/", 1)[0]), "batches": summary.batches_sent,
        "spans": summary.spans_sent, "points": summary.points_sent, "bytes": summary.bytes_sent,
        "retry_at": summary.retry_at, "wall_s": time.monotonic() - cost.started,
        "cpu_s": time.process_time() - cost.started_cpu, "export_latency": transport.latency_summary()})


def settings_for(home: str, endpoint: str | None = None) -> Settings:
    """Sender settings from the environment; the service identity comes from each record.

    The endpoint is the one given on the command line, else the one the app passed to ``init()``
    (remembered in the home directory), else the OTLP environment variables decide.
    """
    stored = read_stored(home)  # not the consent (each record carries its level) nor the app's opt-out variable
    return load("otel-expansion-sender", home=home, endpoint=endpoint, level=Level.FULL,
                stored=Stored(None, stored.debug, stored.endpoint))


def discard_pending(home: str, settings: Settings) -> tuple[int, int]:
    """Delete every pending record and spool row (and spool files moved aside as corrupt).

    Returns (journal records, spool rows) removed. Used when the user clears or withdraws consent.
    """
    from otel_expansion.config.paths import check_dir
    from otel_expansion.spool.store import remove_corrupt_copies

    if os.path.lexists(home):
        check_dir(home)  # OSError for a home that is a link or not ours: nothing there is ours to delete
    records = journal.pending(home)
    journal.remove(records)
    remove_corrupt_copies(home)
    rows = 0
    if os.path.exists(os.path.join(home, SPOOL_FILE)):
        spool = open_spool(home, settings)
        try:
            rows = spool.clear()
            if spool.get_state("health.resource") is not None:  # what self-health travelled with: gone too
                spool.set_state("health.resource", "null")
        finally:
            spool.close()
    return len(records), rows


def lower_pending(home: str, settings: Settings, before: int | None, after: int) -> tuple[int, int]:
    """The user lowered the level from ``before`` (None: not known, the app's own, maybe ``full``) to
    ``after``: what is already converted in the spool and not allowed at ``after`` is deleted, counted in
    ``dropped.level_lowered``: the spans (below ``full``: a span does not say the level it was made at) and
    the series of metrics above ``after``. The counts ``after`` keeps stay, exact. Runs still in the
    journal are converted at the new level by the next sender (``consent.level_ceiling``). Returns
    (spans, series) deleted."""
    from otel_expansion.config import Level
    from otel_expansion.sdk.signals import METRICS

    if (before is not None and before <= after) or after >= Level.FULL:
        return 0, 0
    if not os.path.exists(os.path.join(home, SPOOL_FILE)):
        return 0, 0
    spool = open_spool(home, settings)
    try:
        spans, series = spool.lower(keep_spans=False, dropped_metrics=[m.name for m in METRICS if m.level > after])
        if spans or series:
            spool.incr("dropped.level_lowered", spans + series)
        return spans, series
    finally:
        spool.close()


def stored_endpoint(home: str) -> str | None:
    """init(endpoint=...) as remembered in ``home`` (read by the settings loader)."""
    return read_stored(home).endpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-expansion-sender", description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--endpoint")
    parser.add_argument("--no-send", action="store_true")
    parser.add_argument("--force", action="store_true", help="send even if the export interval has not passed")
    parser.add_argument("--lock-wait", type=float, default=0.0,
                        help="seconds to wait for another sender (the exiting program's own round) to finish")
    args = parser.parse_args(argv)
    # the launcher passes the endpoint (it may hold credentials) in the environment, never on argv
    args.endpoint = args.endpoint or os.environ.pop(launcher.ENDPOINT_ENV, None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sender[%(process)d] %(levelname)s %(message)s")
    settings = settings_for(args.home, args.endpoint)
    _trim_log(args.home)
    try:
        import signal

        # hard stop, whatever happens below (a wait for another sender's lock included)
        signal.alarm(int(settings.sender_timeout_s + max(0.0, min(float(args.lock_wait), 300.0))) + 15)
    except (ImportError, AttributeError, ValueError):
        pass
    try:
        summary = run_round(args.home, settings, send=settings.send and not args.no_send, force=args.force,
                            lock_wait_s=max(0.0, min(float(args.lock_wait), 300.0)))
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
    from otel_expansion.config.paths import SENDER_LOG, open_private

    try:
        fd = open_private(os.path.join(home, SENDER_LOG), os.O_WRONLY)  # never truncate through a link
    except OSError:
        return
    try:
        if os.fstat(fd).st_size > limit:
            os.ftruncate(fd, 0)
    except OSError:
        pass
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
