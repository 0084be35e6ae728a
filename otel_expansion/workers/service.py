"""In-process mode for long-running programs: the SDK pipeline here, a daemon thread for the network.

The host thread only records (the same few microseconds as a CLI); the thread replays records through
the SDK, commits to the spool and runs sender rounds on the export interval. At exit the host commits
locally and hands the rest to a detached sender: it never joins a thread that might be waiting on the network.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from otel_expansion.config import levels
from otel_expansion.config.paths import ensure_dir
from otel_expansion.config.settings import Settings

log = logging.getLogger("otel_expansion.sdk")

WAKE_AT = 128  # buffered commands that make the export thread replay before its interval
SERVICE_MAX_BUFFERED = 100_000  # a bound on memory should the export thread ever stall


class ServiceRuntime:
    def __init__(self, settings: Settings, recorder: Any, install_global: bool = False) -> None:
        from otel_expansion.collect.resource import resource_for
        from otel_expansion.privacy.redaction import Redactor
        from otel_expansion.sdk.pipeline import Pipeline
        from otel_expansion.sdk.staging import Staging

        ensure_dir(settings.home)
        self.settings = settings
        self.recorder = recorder
        self.staging = Staging()
        self.redactor = Redactor(settings.redact_patterns, settings.redact_allow, settings.hash_salt)
        resource = resource_for(settings, recorder.clean)
        self.pipeline = Pipeline(resource, settings.level, self.redactor, self.staging)
        self.session_id: str | None = None
        self._started = time.monotonic()
        self._overflow = 0
        self._failing = False
        if settings.level >= levels.SESSIONS:
            from otel_expansion.collect import session

            current, self._ended = session.touch(settings.home, time.time_ns(), settings.session_idle_s, 0)
            self.session_id = current.id
        else:
            self._ended = None
        if install_global:
            from opentelemetry import metrics, trace

            trace.set_tracer_provider(self.pipeline.tracer_provider)
            metrics.set_meter_provider(self.pipeline.meter_provider)
        # The host thread only records (microseconds); replay into the SDK happens on the export thread
        # and at flush, with each run's original timestamps. A busy program wakes the thread early so the
        # recorder's bounded buffer never overflows.
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        recorder.max_commands = SERVICE_MAX_BUFFERED
        recorder._on_command = lambda r: self._wake.set() if len(r.commands) >= WAKE_AT else None
        self._thread = threading.Thread(target=self._loop, name="otel-expansion-sender", daemon=True)
        self._thread.start()

    def record(self, heartbeat: bool = False) -> None:
        """Replay what the recorder holds into the SDK (host thread; microseconds to a millisecond)."""
        with self._lock:
            body = self.recorder.drain() or {}
            if heartbeat and self.settings.level >= levels.SESSIONS:
                body["heartbeats"] = 1
            if self._ended is not None:
                from otel_expansion.collect.session import ended_entry

                body["sessions_ended"] = [ended_entry(self._ended)]
                self._ended = None
            if not body:
                return
            body["level"] = int(self.settings.level)
            body["session"] = self.session_id
            self._overflow += int(body.get("overflow", 0))
            self.pipeline.ingest(body)

    def flush(self, heartbeat: bool = False) -> int:
        """Commit everything recorded so far to the spool (local I/O only). Returns rows written.

        Held under one lock from drain to commit, so exit never races the export thread into losing rows
        it had taken but not yet stored.
        """
        from otel_expansion.workers.sender import open_spool

        with self._commit_lock:
            self.record(heartbeat=heartbeat)
            with self._lock:
                self.pipeline.collect()
                points, spans = self.staging.take()
            overflow, self._overflow = self._overflow, 0
            if not (points or spans or overflow):
                return 0
            from otel_expansion.spool.store import SpoolUnavailable

            try:
                spool = open_spool(self.settings.home, self.settings)
            except SpoolUnavailable as exc:  # read-only or full disk: this data is dropped, the host is fine
                log.warning("telemetry spool unavailable, %d items dropped: %s", len(points) + len(spans), exc)
                return 0
            try:
                spool.add(points, spans)
                if overflow:
                    spool.incr("dropped.overflow", overflow)
                self._failing = (spool.get_state("backoff.failures") or "0") != "0"
            except SpoolUnavailable as exc:
                log.warning("telemetry spool unavailable, %d items dropped: %s", len(points) + len(spans), exc)
                return 0
            finally:
                spool.close()
            return len(points) + len(spans)

    def _loop(self) -> None:
        from otel_expansion.workers.sender import SenderBusy, run_round

        interval = self.settings.metric_interval_s  # sends and heartbeats
        commit_every = min(self.settings.span_interval_s, interval)  # local commits bound what a crash loses
        last_beat = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(commit_every)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                beat = time.monotonic() - last_beat >= interval
                if beat:
                    last_beat = time.monotonic()
                self.flush(heartbeat=beat)
                if beat and self.settings.send:
                    run_round(self.settings.home, self.settings, force=True,
                              deadline_s=min(self.settings.sender_timeout_s, interval))
            except SenderBusy:
                pass
            except Exception as exc:  # the thread must survive anything
                log.warning("background send failed: %s: %s", type(exc).__name__, exc)

    def retire(self) -> None:
        """Stop the export thread; nothing is committed or sent (the app's own init() took over)."""
        self._stop.set()
        self._wake.set()

    def shutdown(self) -> None:
        """Stop the thread without waiting on it, end the session, commit, start a detached sender."""
        self._stop.set()
        self._wake.set()
        long_running = time.monotonic() - self._started > self.settings.metric_interval_s
        if self.settings.level >= levels.SESSIONS and long_running:
            # a daemon's session is its lifetime; a short run (a CLI under opentelemetry-instrument)
            # leaves the session open for the next invocation, as CLI sessions are
            from otel_expansion.collect import session

            self._ended = session.end(self.settings.home, time.time_ns())
        try:
            self.flush()
        finally:
            self.pipeline.shutdown()
        from otel_expansion.export import launcher

        # A program that ends takes its last data with it unless a sender picks it up now: start one
        # whatever the send interval says, but respect a failing collector's backoff.
        home = self.settings.home
        in_backoff = launcher.next_send_at(home) > time.time() and self._failing
        if self.settings.send and not in_backoff:
            launcher.spawn(home, self.settings.endpoint, self.settings.send, force=True)
