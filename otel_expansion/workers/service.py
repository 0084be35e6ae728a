"""In-process mode for long-running programs: the SDK pipeline here, a daemon thread for the network.

The host thread only records (the same few microseconds as a CLI). The export thread takes what was
recorded, cuts it into slices of at most ``SLICE`` commands, replays each through the SDK pipeline
(linear time) and commits it to the spool, then runs sender rounds on the export interval.

Exit never waits: ``shutdown()`` stops the thread, and whatever is not committed by then (the buffer,
the slices not replayed yet, the slice in replay) is written to the journal, exactly as a CLI's run
would be, for the detached sender to replay. A slice is either committed by the thread or handed to
the journal, never both: the thread claims it inside the spool's write transaction, and shutdown hands
over only unclaimed slices (a claimed one finishes its commit within milliseconds).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from otel_expansion import config as levels
from otel_expansion.config import Settings
from otel_expansion.config.paths import ensure_dir
from otel_expansion.workers import SENDER_ENTRY

if TYPE_CHECKING:
    from otel_expansion.collect import Recorder
    from otel_expansion.journal.record import Record

log = logging.getLogger("otel_expansion.sdk")

WAKE_AT = 1_024  # buffered commands that wake the export thread early (1/16 of the bound:
# each wake-up costs a collection and a spool transaction, spread over this many commands)
SLICE = 2_048  # commands replayed and committed per step (bounds the work shutdown may hand over)
SERVICE_MAX_BUFFERED = 16_384  # recorded commands held for the export thread; past it they are dropped
# and counted (``dropped.overflow``); with the slices in replay, memory stays under ~2x this
SPILL_AT = SERVICE_MAX_BUFFERED // 2  # buffered commands, seen between two slices, that mean the thread
# is behind: what the host recorded meanwhile goes to the journal (JSON, a tenth of a replay's cost) for a
# sender round or the exit's detached sender to replay, instead of filling the buffer until it drops
REPLAY_SHARE = 0.1  # of the wall time, the CPU the thread may spend replaying while the program is busy
REPLAY_BURST_S = 0.01  # replay time a quiet program saves up (a few hundred commands: a burst replays here)
SPAWN_AFTER = 8 * 4_096  # spilled commands still waiting for this thread's catch-up that start a detached
# sender while the program runs: the thread has fallen far behind, another core helps. Below it
# the thread replays what it spilled itself (the SDK is loaded here already; a sender process pays ~0.2 s
# of CPU to start)
SPILL_COMMANDS = 4_096  # commands per spilled record (~0.6-0.9 MB; a larger one is halved until it fits)
JOURNAL_COMMANDS = 1_000  # commands per journal record (~100-250 KB; the sender bounds its chunks by bytes)
CATCH_UP_S = 0.2  # longest journal replay (spilled commands) between two drains of the recorder
SENDER_LOCK_WAIT_S = 30.0  # how long the exit's sender waits for a round the thread had under way
SPOOL_BUSY_MS = 50  # the export thread's wait for the spool's write lock, before it journals the slice
SAMPLE_EVERY_S = 0.1  # how often the span sample may halve or double
MAX_SAMPLE_SHIFT = 16  # the smallest sample keeps 1 span in 2**16
COMMIT_WAIT_S = 0.15  # how long shutdown waits for a commit already under way (it takes milliseconds)


class _Slice:
    """One unit of replay: a body of at most SLICE commands (with its features and exceptions)."""

    __slots__ = ("body", "claimed", "done", "earned", "handed", "kept")

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.earned = False  # its commands' span credit was earned (once, however often it waits)
        self.kept = 0  # spans it replays, after the span budget's sample
        self.claimed = False
        self.handed = False
        self.done = threading.Event()


def split_body(body: dict[str, Any], size: int = SLICE) -> list[dict[str, Any]]:
    """Cut a drained body into bodies of at most ``size`` commands, each feature and exception going
    with the commands of its time (commands of one process never overlap, so starts are increasing).
    Slices, not per-item work, when the items are in time order (the usual case)."""
    commands = body.get("commands") or []
    if len(commands) <= size:
        return [body]
    parts: list[dict[str, Any]] = [{"commands": commands[i:i + size]} for i in range(0, len(commands), size)]
    bounds = [int(c["start"]) for c in commands[size::size]]
    for key in ("features", "exceptions"):
        items = body.get(key) or []
        try:
            times = list(map(_TIME, items))  # the recorder's items: C-level loops for the common case
        except (KeyError, TypeError):
            times = [int(item.get("t", 0)) for item in items]
        if times == sorted(times):
            cuts = [0, *(bisect_right(times, b) for b in bounds), len(items)]
            for part, lo, hi in zip(parts, cuts, cuts[1:], strict=False):
                part[key] = items[lo:hi]
        else:
            for part in parts:
                part[key] = []
            for item, t in zip(items, times, strict=True):
                parts[bisect_right(bounds, t)][key].append(item)
    for key, value in body.items():  # overflow, heartbeats, sessions ended, usage: the first slice
        if key in _EVERY_PART:
            for part in parts:
                part[key] = value
        elif key not in ("commands", "features", "exceptions"):
            parts[0][key] = value
    return parts


_EVERY_PART = ("metered", "level", "session", "v", "resource")  # what describes, not counts


_TIME = itemgetter("t")


def _refuse(body: dict[str, Any], residue: dict[str, Any]) -> None:
    """Fold what a refused journal part carried into ``residue``: its commands and the overflow tally
    they travel with become dropped spans; everything else is kept for :meth:`ServiceRuntime._keep`."""
    residue["dropped"] = residue.get("dropped", 0) + len(body.get("commands") or ()) + int(body.get("overflow") or 0)
    for key in ("overflow_features", "overflow_exceptions", "undeclared", "usage_values", "replay", "staging",
                "sampled_out", "heartbeats"):
        if body.get(key):
            residue[key] = residue.get(key, 0) + int(body[key])
    if body.get("sessions_ended"):
        residue.setdefault("sessions_ended", []).extend(body["sessions_ended"])
    usage = body.get("usage")
    if usage:
        if "usage" not in residue:
            from otel_expansion.collect.usage import Usage

            residue["usage"] = Usage(activity=True)
        residue["usage"].merge(usage)


class ServiceRuntime:
    def __init__(self, settings: Settings, recorder: Recorder, install_global: bool = False,
                 provisional: bool = False) -> None:
        """``provisional``: started by opentelemetry-instrument's configurator, before the app's own init()
        (which may opt out, leaving no file behind): the spool is then opened by the thread, not here."""
        from otel_expansion.collect import resource_for
        from otel_expansion.privacy.redaction import Redactor
        from otel_expansion.sdk.pipeline import Pipeline
        from otel_expansion.sdk.staging import Staging

        ensure_dir(settings.home)
        self.settings = settings
        self.recorder = recorder
        self.staging = Staging()
        self.redactor = Redactor(settings.redact_patterns, settings.redact_allow, settings.hash_salt)
        resource = resource_for(settings, recorder.clean, recorder.resource_keys)
        self.resource = resource
        self.pipeline = Pipeline(resource, settings.level, self.redactor, self.staging)
        self.session_id: str | None = None
        self._started = time.monotonic()
        # a program that may be a short CLI run (opentelemetry-instrument, or init() finding an SDK already
        # set up): when it ends before an export interval, its sender starts as a CLI's does, batched and
        # backed off, instead of a forced send per run
        self.cli_like = provisional or settings.mode == "auto"
        self._failing = False
        self._journaled = 0  # handed to the journal (flush, shutdown; commands, or 1 for a usage-only
        # record): a sender must store them
        self.spilled = 0  # commands the thread could not keep up with, handed to the journal (self-health)
        self._catch_up = False  # spilled records wait in the journal: replay them when the host is quieter
        self._in_round = False  # the thread holds the sender lock (a round), until the process ends
        self._budget, self._budget_at = REPLAY_BURST_S, time.monotonic()  # replay time the thread may use
        self._spilled_paths: list[tuple[str, int]] = []  # this thread's spilled records (path, commands),
        # oldest first, for its catch-up
        self._replayer: Any = None  # the catch-up's Replayer, built on this runtime's own pipeline
        self._spawned_at = 0.0
        self._spawn_every, self._backlog_at_spawn = 1.0, 0
        self._counts: dict[str, int] = {}  # drop counters waiting for a commit that gets through: the
        # export thread and the host (flush() meeting a full journal) both add to them, so every access is
        # through _count/_take_counts under this lock, never a read-modify-write of the dict
        self._counts_lock = threading.Lock()
        self._spool: Any = None  # the export thread's handle, kept open (opening checks the whole file)
        if settings.level >= levels.SESSIONS:
            from otel_expansion import collect as session

            current, self._ended = session.touch_session(settings.home, time.time_ns(), settings.session_idle_s, 0)
            self.session_id = current.id
        else:
            self._ended = None
        if install_global:
            from opentelemetry import metrics, trace

            trace.set_tracer_provider(self.pipeline.tracer_provider)
            metrics.set_meter_provider(self.pipeline.meter_provider)
        self._lock = threading.Lock()  # draining the recorder
        self._slices_lock = threading.Lock()  # the backlog, the slice in replay, closing
        self._backlog: collections.deque[_Slice] = collections.deque()
        self._current: _Slice | None = None
        self._closing = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        wake = self._wake
        import random

        from otel_expansion.collect.usage import Usage

        # usage metrics: aggregated on the host thread as commands end (exact whatever happens to spans)
        self.usage = Usage(activity=settings.level >= levels.ACTIVITY)
        self._heartbeats = 0  # heartbeats a full journal sent back, for the next drain
        self._ended_back: list[Any] = []  # ended-session entries a full journal sent back
        self._shift_at = time.monotonic()
        self._behind = False  # the last step could not replay everything within the share
        self._window_cpu = 0.0  # replay CPU since the sample was last reconsidered (the share's use)
        self._spilled_replay = False  # the thread replays spilled records into the shared staging
        self._usage_cpu = 0.0  # CPU recording the usage aggregates (self-health; not charged to the share)
        from otel_expansion.workers.budget import SpanBudget

        self.span_budget = SpanBudget()  # span CPU earned per command: what a slice's spans may cost
        self.thinned = 0  # spans the span budget left out (counted in ``spans.sampled_out`` with the rest)
        self._bits: Callable[[int], int] = random.getrandbits  # the span budget's draws (a test seeds them)
        self._cpu_time: Callable[[], float] = time.thread_time  # the thread's CPU (a test injects a meter)
        recorder.usage = self.usage
        from otel_expansion.collect import process_started, rusage_peak_bytes

        recorder.process_started = process_started()  # a constant its first command would read (~0.1 ms)
        rusage_peak_bytes()  # binds the per-command peak reading (imports ``resource``) before the first command
        recorder.sample_bits = random.getrandbits
        recorder.max_commands = SERVICE_MAX_BUFFERED
        recorder.on_command = lambda r: wake.set() if len(r.commands) >= WAKE_AT and not wake.is_set() else None
        # What the export thread and the exit path import is loaded here, on the host thread, once: two
        # threads importing the same modules in opposite orders can end in a "partially initialized
        # module" ImportError on the host's stderr, and a first import at exit clears CPython's
        # die-by-SIGINT flag.
        from otel_expansion.journal import record  # noqa: F401  (the first commit's counters)
        from otel_expansion.privacy import provenance  # noqa: F401  (a CLI loads it on its first command)
        from otel_expansion.spool import store  # noqa: F401
        from otel_expansion.workers import budget, sender  # noqa: F401

        # The one-time work of the first replay, done here rather than in the middle of the program's first
        # commands, where it would wait on the interpreter lock behind every one of its system calls (the
        # spool's creation took 0.5 s of wall time there): the SDK's view resolution, opening the spool.
        try:
            if not provisional:  # (a provisional runtime is often a short CLI run, or replaced at once)
                self.pipeline.warm()
                self._open_spool()
        except Exception as exc:  # the thread opens the spool itself; nothing of the host depends on this
            log.debug("service warm-up incomplete: %s", exc)
        self._thread = threading.Thread(target=self._loop, name="otel-expansion-sender", daemon=True)
        self._thread.start()

    # -- taking what the host recorded ------------------------------------------------------------------
    def _drain(self, heartbeat: bool = False, size: int = SLICE) -> list[dict[str, Any]]:
        """What the recorder holds (plus heartbeat and ended session), as bodies of at most SLICE commands."""
        with self._lock:
            body: dict[str, Any] = dict(self.recorder.drain() or {})  # gains level, session, heartbeats
            usage = self.usage.take()
            if usage:
                lost = usage.pop("lost", 0)
                if lost:  # raw histogram values past the bound (their commands are counted)
                    body["usage_values"] = lost
                body["usage"] = usage
            beats = self._heartbeats + (1 if heartbeat and self.settings.level >= levels.SESSIONS else 0)
            self._heartbeats = 0
            if beats:
                body["heartbeats"] = beats
            ended, self._ended_back = self._ended_back, []
            if self._ended is not None:
                from otel_expansion.collect import ended_session_entry as ended_entry

                ended.append(ended_entry(self._ended))
                self._ended = None
            if ended:
                body["sessions_ended"] = ended
        if not body:
            return []
        body["metered"] = 1  # its commands' metrics are in ``usage`` (this body's or an earlier one's)
        body["level"] = int(self.settings.level)
        body["session"] = self.session_id
        return split_body(body, size)

    # -- export thread ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        interval = self.settings.metric_interval_s  # sends and heartbeats
        commit_every = min(self.settings.span_interval_s, interval)  # local commits bound what a crash loses
        last_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                quiet = not self._wake.wait(commit_every)  # no wake-up from the host for a whole period
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    beat = time.monotonic() - last_beat >= interval
                    if beat:
                        last_beat = time.monotonic()
                    self.step(heartbeat=beat)
                    if beat and self.settings.send and not self._stop.is_set():
                        if self._catch_up and not quiet:  # spilled records and a busy program: replaying
                            self._spawn_sender(force=True)  # them here would starve the buffer's drains
                        else:
                            self._send_round(interval)  # replays the journal, ours included
                    elif self._catch_up and quiet and not self._stop.is_set():
                        # the host slowed down: replay what was spilled, a bounded slice of time at once
                        self._replay_spilled(CATCH_UP_S, records=len(self._spilled_paths))
                except Exception as exc:  # the thread must survive anything
                    log.warning("background send failed: %s: %s", type(exc).__name__, exc)
        finally:
            self._close_spool()

    def _send_round(self, interval: float, send: bool = True) -> int:
        """A sender round in this thread (journal replay, then delivery when ``send``); returns the journal
        records still waiting after it."""
        # imported here, not when the thread starts: the sender's imports (HTTP, protobuf) take long
        # enough that a busy program would fill the buffer before the first replay
        from otel_expansion.journal import store as journal
        from otel_expansion.workers.sender import SenderBusy, run_round

        self._close_spool()  # the round opens its own handle under the sender lock
        self._in_round = True  # set before looking at stop: shutdown sets stop, then reads this
        try:
            if self._stop.is_set():
                return 0
            with contextlib.suppress(SenderBusy):
                run_round(self.settings.home, self.settings, send=send, force=True,
                          deadline_s=min(self.settings.sender_timeout_s, interval))
        finally:
            self._in_round = False
        return journal.count(self.settings.home)

    def step(self, heartbeat: bool = False) -> int:
        """Replay and commit everything recorded so far, slice by slice (export thread). Returns rows."""
        with self._slices_lock:  # drained and queued atomically with respect to shutdown's sweep
            if self._closing:
                return 0
            drained = self._drain(heartbeat)
            # nothing recorded since the last step and nothing waiting: the program is quiet, the spare
            # share may go to what was spilled (while it records, the share is the live spans')
            idle = not self._backlog and not any(b.get("commands") for b in drained)
            self._backlog.extend(_Slice(b) for b in drained)
            if not self._backlog:
                self._backlog.append(_Slice({}))  # still collect what other instrumentations recorded
        written = 0
        while True:
            with self._slices_lock:
                current: _Slice | None = None
                if self._closing or not self._backlog:
                    self._current = None
                    catch_up = self._catch_up and not self._closing
                else:
                    if len(self.recorder.commands) >= SPILL_AT:  # far behind: what the host recorded meanwhile
                        self._behind = True  # (the memory bound)
                        self._spill(self._drain(size=SPILL_COMMANDS))
                    current = self._backlog.popleft()
                    # Behind means over the CPU share (the replay budget) or the memory bound above, nothing
                    # else: a sender holding the lock (or the spool) only delays a commit, and a refused
                    # commit hands its slice to the journal without shrinking the sample.
                    if current.body.get("commands") and not self._may_replay():
                        self._behind = True  # over the replay budget
                        held = len(self.recorder.commands) + len(current.body["commands"]) + sum(
                            len(sl.body.get("commands") or ()) for sl in self._backlog)
                        if held < SPILL_AT:  # within the memory bound: the backlog waits for the share
                            self._backlog.appendleft(current)  # to refill (no journal round trip)
                            self._current = current = None
                            catch_up = False
                        else:  # past it: the journal takes the whole backlog
                            bodies = [current.body] + [sl.body for sl in self._backlog]
                            self._backlog.clear()  # before writing: whatever happens next, never replayed too
                            self._spill(bodies)
                            continue
                    else:
                        if current.body.get("commands"):
                            self._thin(current)  # the span budget: before the replay, under the lock
                        self._current = current  # (shutdown hands over whichever body it sees, whole)
            if current is None:
                if catch_up and idle and not self._closing and self._may_replay():
                    self._replay_spilled(CATCH_UP_S)  # spare share: what was spilled earlier
                self._sample()
                return written
            started, usage_cpu = self._cpu_time(), self._usage_cpu  # the thread's CPU: what it takes from
            # the program (its waits for the interpreter lock take nothing; the memory bound, not the budget,
            # covers what they delay), less the usage metrics' (owed at any rate)
            written += self._replay(current)
            spent = self._cpu_time() - started - (self._usage_cpu - usage_cpu)
            self._charge(spent)
            self.span_budget.learn(current.kept, spent)
            with self._slices_lock:
                self._current = None

    def _charge(self, spent: float) -> None:
        """Replay CPU against the share: charged in CPU time, with a floor (one slow replay, a GC pause, is
        not owed for minutes), and counted in the window that decides the span sample."""
        self._budget = max(-REPLAY_BURST_S - 1.0, self._budget - spent)
        self._window_cpu += spent

    def _thin(self, sl: _Slice) -> None:
        """The span budget (``workers/budget.py``): the slice's commands earn their span credit (once: its
        own, those the host's sample left out and those the full buffer dropped, for stock pays for each),
        and when its spans would cost more than the credit holds, it keeps a sample of them (each kept
        span's ``th`` raised by the shift it was kept at, the rest counted as sampled out)."""
        from otel_expansion.workers.budget import thin

        body = sl.body
        spans = len(body["commands"])
        budget = self.span_budget
        if not sl.earned:
            sl.earned = True
            budget.earn(spans + int(body.get("sampled_out") or 0) + int(body.get("overflow") or 0))
        fraction = budget.plan(spans)
        if fraction < 1.0:
            sl.body, sl.kept = thin(body, fraction, self._bits)
            self.thinned += spans - sl.kept
        else:
            sl.kept = spans
        budget.charge(sl.kept)

    def _sample(self) -> None:
        """Adjust the span sample (on the host, ``recorder.sample_shift``: keep 1 span in 2**k): halve it
        while the thread is behind (over its CPU share, or past the memory bound: a sender holding the lock
        or the spool is neither), double it back once the replays since the last decision used at most half
        the share of that time (twice the spans then fit) and nothing waits in memory. Usage metrics do not
        depend on it; the spans left out are counted (``spans.sampled_out``).

        Doubling back used to need a positive replay budget at the end of a step; but the budget saves at
        most ``REPLAY_BURST_S`` and a step replays a whole slice (~1,000 spans, ~25 ms), so after any step
        it was negative: the sample could only shrink, and at a million commands it settled near 1 span in
        35-56 where the share affords about 1 in 5. The share actually used over the window is what says
        whether twice the spans fit."""
        now = time.monotonic()
        window = now - self._shift_at
        if window < SAMPLE_EVERY_S:
            return
        recorder = self.recorder
        if self._behind:
            recorder.sample_shift = min(MAX_SAMPLE_SHIFT, recorder.sample_shift + 1)
        elif recorder.sample_shift and 2 * self._window_cpu <= REPLAY_SHARE * window and not self._backlog:
            # spare share for twice the spans, nothing waiting in memory (spilled records wait for a quiet
            # moment: not the live spans' concern)
            recorder.sample_shift -= 1
        self._behind = False
        self._window_cpu = 0.0
        self._shift_at = now

    def _may_replay(self) -> bool:
        """Whether the replay budget allows another slice now. The thread earns ``REPLAY_SHARE`` of the wall
        time (up to ``REPLAY_BURST_S`` saved up) and is charged the CPU its replays take: a program busy on
        the CPU keeps at least the rest, and its host thread's added time stays small; a quieter one has
        everything replayed here."""
        now = time.monotonic()
        self._budget = min(REPLAY_BURST_S, self._budget + REPLAY_SHARE * (now - self._budget_at))
        self._budget_at = now
        return self._budget > 0

    def _spill(self, bodies: list[dict[str, Any]]) -> None:
        """Journal what the thread will not replay now (under the slices lock, so shutdown's hand-over sees
        it written before it starts its sender). This thread replays it later with its spare share
        (``_replay_spilled``); only when many records wait does a detached sender help, on another core."""
        paths: list[tuple[str, int]] = []
        n = self._to_journal(bodies, spilled=True, paths=paths)
        self.spilled += n
        self._spilled_paths.extend(paths)
        self._catch_up = True
        waiting = sum(n for _, n in self._spilled_paths)
        if waiting >= SPAWN_AFTER and time.monotonic() - self._spawned_at >= self._spawn_every:
            self._spawn_sender()

    def _replay_spilled(self, limit_s: float, records: int = 1) -> None:
        """Replay this thread's oldest spilled records (up to ``records``, or ``limit_s`` of time) through
        its own pipeline, each committed with its id (exactly once, as a sender would: under the sender
        lock; a sender holding it replays ours too). Charged to the replay budget like any slice."""
        import os

        from otel_expansion.spool.store import SpoolUnavailable
        from otel_expansion.workers.sender import SenderBusy, ingest_journal, sender_lock

        waiting = self._spilled_paths = [p for p in self._spilled_paths if os.path.exists(p[0])]  # a sender's
        started, cpu = time.monotonic(), time.thread_time()  # are gone
        with self._slices_lock:  # shutdown reads this with ``_closing``: it must not collect the pipeline's
            if self._closing:  # staging while these records are replayed into it (their usage would be
                return  # stored by the exit and again from the records, which stay in the journal)
            self._spilled_replay = True
        self._in_round = True  # the exit's sender waits for the lock instead of skipping these records
        try:
            with sender_lock(self.settings.home):
                while waiting and records > 0 and not self._closing:
                    path = waiting[0][0]
                    ingest_journal(self.settings.home, self._open_spool(), self.settings,
                                   time.monotonic() + limit_s, only=[path], replayer=self._own_replayer())
                    if os.path.exists(path):  # not taken (out of time): next time
                        break
                    waiting.pop(0)
                    records -= 1
                    if time.monotonic() - started >= limit_s:
                        break
        except SenderBusy:  # a sender is replaying the journal, ours included
            pass
        except SpoolUnavailable as exc:  # the records stay in the journal: next time, or a sender
            self._close_spool()
            log.debug("spilled records wait: %s", exc)
        finally:
            self._in_round = False
            self._spilled_replay = False
            self._charge(time.thread_time() - cpu)
            self._catch_up = bool(waiting)

    def _own_replayer(self) -> Any:
        """A Replayer whose pipeline for this runtime's resource and level is the runtime's own: no second
        SDK pipeline to set up (and no second set of views) for what this thread spilled."""
        if self._replayer is None:
            from otel_expansion.otlp.model import attrs_of
            from otel_expansion.sdk.replay import Replayer

            self.pipeline.collect()  # other instrumentations' metrics so far, stamped with their own time
            replayer = Replayer(self.settings, redactor=self.redactor, staging=self.staging)
            replayer.pipelines[(attrs_of(self.resource), int(self.settings.level))] = self.pipeline
            self._replayer = replayer
        return self._replayer

    def _spawn_sender(self, force: bool = False) -> None:
        """A detached sender for what was spilled (one at a time; it sends too when sending is due). When
        the journal did not shrink since the last one (a spool that stays unavailable), the next waits
        twice as long, up to a minute, rather than a process a second."""
        from otel_expansion.export import launcher
        from otel_expansion.journal import store as journal

        try:
            backlog = journal.count(self.settings.home)
            if self._spawned_at and backlog >= self._backlog_at_spawn:
                self._spawn_every = min(60.0, self._spawn_every * 2)
            else:
                self._spawn_every = 1.0
            self._backlog_at_spawn = backlog
            self._spawned_at = time.monotonic()  # also tells the exit's sender to wait for this one
            launcher.spawn(self.settings.home, self.settings.endpoint, self.settings.send, force=force,
                           entry=SENDER_ENTRY)
        except Exception as exc:  # the records stay in the journal for the exit's or a later sender
            log.warning("could not start a sender: %s: %s", type(exc).__name__, exc)

    def _replay(self, sl: _Slice) -> int:
        try:
            body = sl.body
            usage = body.get("usage")
            if usage:  # the usage metrics first, metered apart: owed whatever the spans can have, so their
                # CPU is not charged to the span share (at ~50,000 commands a second it alone would use the
                # share up, and the span sample would only ever shrink)
                started = self._cpu_time()
                self.pipeline.record_usage(usage, min(self.pipeline.level, levels.Level(int(body.get(
                    "level", self.pipeline.level)))))
                self._usage_cpu += self._cpu_time() - started
                body = {k: v for k, v in body.items() if k != "usage"}  # (the slice keeps its own body)
            if body:
                # a drained body plus level and session: a Record (the slices are still plain dicts here)
                self.pipeline.ingest(cast("Record", body), cancelled=lambda: sl.handed)
            self.pipeline.collect()
        except Exception as exc:  # counted: the commands' spans are lost (their usage was recorded first)
            lost = len(sl.body.get("commands") or ())
            self._count({"dropped.replay": lost})
            log.warning("telemetry replay failed (%s); %d commands dropped", exc, lost)
        points, spans = self.staging.take()
        try:
            return self._commit(sl, points, spans)
        finally:
            sl.done.set()

    def _claim(self, sl: _Slice) -> bool:
        with self._slices_lock:
            if sl.handed:
                return False
            sl.claimed = True
            return True

    def _commit(self, sl: _Slice, points: list[Any], spans: list[Any]) -> int:
        """Store what a slice replayed to (plus what other instrumentations recorded meanwhile). When the
        spool cannot take it, the slice's recorded body goes to the journal instead (replayed later, once),
        other instrumentations' items go back to staging, and drop counts wait for the next commit."""
        from otel_expansion.journal.record import counters_of
        from otel_expansion.spool.store import SpoolUnavailable

        body_counts = counters_of(sl.body)
        withheld = self.staging.take_withheld()  # other instrumentations' data not sent (privacy.foreign)
        staged_drops = self.staging.take_dropped()
        self._count({"dropped.foreign": withheld, "dropped.staging": staged_drops})
        if not (points or spans or body_counts or self._counts):
            return 0
        added = False
        try:
            spool = self._open_spool()
            if not spool.add(points, spans, claim=lambda: self._claim(sl)):
                return 0  # handed to the journal by shutdown: the journal's copy counts
            added = True
            self._count(body_counts)
            taken = self._take_counts()
            try:
                for name, n in list(taken.items()):  # each its own small write: kept until it gets in
                    spool.incr(name, n)
                    del taken[name]
            finally:
                self._count(taken)  # what did not get in waits for the next commit
            self._failing = (spool.get_state("backoff.failures") or "0") != "0"
        except SpoolUnavailable as exc:  # busy (a sender's write), read-only or full disk
            self._close_spool()
            if added:
                return len(points) + len(spans)  # stored; the counts not written yet wait in _counts
            from otel_expansion.sdk.signals import SCOPE_NAME

            # other instrumentations' spans and points (opentelemetry-instrument) exist only here: keep them
            self.staging.add_points([p for p in points if p.key.scope_name != SCOPE_NAME])
            self.staging.add_spans([x for x in spans if x.scope_name != SCOPE_NAME])
            with self._slices_lock:
                if sl.handed:
                    return 0  # shutdown's hand-over has it
                sl.claimed = True  # never handed now; a claim inside the rolled-back transaction stays
                if sl.body:  # what was recorded goes to the journal, its counts with it: replayed later
                    self._spill([sl.body])
                    return 0
            log.warning("telemetry spool unavailable, kept for the next commit: %s", exc)
            return 0
        return len(points) + len(spans)

    def _open_spool(self) -> Any:
        if self._spool is None:
            from otel_expansion.workers.sender import open_spool

            # a short busy wait: while a sender holds the write lock, the slice goes to the journal instead
            self._spool = open_spool(self.settings.home, self.settings, SPOOL_BUSY_MS)  # debug stream when on
        return self._spool

    def _close_spool(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()

    # -- host thread ------------------------------------------------------------------------------------
    def flush(self, heartbeat: bool = False) -> int:
        """Persist what was recorded and not yet replayed, as journal records (local I/O, milliseconds;
        the export thread's next send round or the next sender replays them). Returns commands written."""
        with self._slices_lock:
            pending = [sl.body for sl in self._backlog] + self._drain(heartbeat, JOURNAL_COMMANDS)
            self._backlog.clear()
        return self._to_journal(pending)

    def _to_journal(self, bodies: list[dict[str, Any]], spilled: bool = False, final: bool = False,
                    paths: list[tuple[str, int]] | None = None) -> int:
        """Write bodies as journal records of at most JOURNAL_COMMANDS commands; returns commands written.
        ``spilled`` records say so (``spilled``: their command count), for the self-health counter the
        sender keeps when it stores them. A body's usage aggregate travels in records of its own.

        What the journal refuses (its bounds, a failed write) is never lost uncounted: the commands (and
        the overflow tally they carry) are counted as dropped spans (``dropped.journal_full``), and the
        rest (usage, tallies, heartbeats, ended sessions) waits in this process for the next drain, or, at
        exit (``final``), is written regardless of the journal's bounds (a few small records). ``paths``
        gathers the records published (path, commands)."""
        from otel_expansion.journal import store as journal

        home = self.settings.home
        pending = journal.count(home)
        room = journal.MAX_PENDING - pending
        if spilled:  # spilled records are large (up to 1 MiB): bounded by the spool's own cap, twice over
            room = min(room, max(16, 2 * self.settings.spool_max_bytes // 2**20) - pending)
        # looked up once per call, not per record: under a busy program every system call here waits a
        # switch interval for the interpreter lock (one call writes a few MB at most)
        blocked = room <= 0 or journal.full(home)  # a sender that cannot run must not fill the disk
        size = SPILL_COMMANDS if spilled else JOURNAL_COMMANDS  # fewer, larger records: fewer system calls
        records: list[dict[str, Any]] = []
        residue: dict[str, Any] = {}
        for whole in bodies:
            for body in self._parts(whole, size):
                if blocked or room <= 0:
                    _refuse(body, residue)
                    continue
                records.append(self._record(body, spilled))
                room -= 1
        now = time.time_ns()
        failed = False
        published: list[tuple[str, int]] = [] if paths is None else paths
        try:
            published.extend(zip(journal.append_many(home, records, now),
                                 (len(r.get("commands") or ()) for r in records), strict=True))
            written = sum(len(r.get("commands") or ()) for r in records)
        except ValueError:  # a record over the journal's size: one at a time, halving what is too large
            written = sum(self._append(journal, record, now + 2 * i, residue, published)
                          for i, record in enumerate(records))
        except OSError as exc:
            log.warning("telemetry journal unavailable: %s", exc)
            for record in records:
                _refuse(record, residue)
            written, failed = 0, True
        if residue:
            self._keep(residue, final, now + 2 * len(records) + 1)
        if records and not failed and not spilled:  # records (usage alone, at basic, has no commands) a
            self._journaled += max(1, written)  # sender must store; spilled ones: this thread, or a sender
            # at exit while ``_catch_up`` says they wait
        return written

    def _parts(self, whole: dict[str, Any], size: int) -> list[dict[str, Any]]:
        """A body as journal parts: its usage aggregate in records of its own (bounded in size), then its
        commands cut to ``size``; a part that carries nothing is left out."""
        if not whole:
            return []
        from otel_expansion.collect.usage import split_usage

        body = dict(whole)
        usage = body.pop("usage", None)
        parts = [{"usage": u, "metered": 1} for u in split_usage(usage)] if usage else []
        parts += [p for p in split_body(body, size) if any(k not in _EVERY_PART for k in p)]
        return parts

    def _record(self, body: dict[str, Any], spilled: bool = False) -> dict[str, Any]:
        from otel_expansion.journal.record import version_of

        record = dict(body)
        record["v"] = version_of(body)
        record["level"] = int(self.settings.level)
        record["resource"] = self.resource
        record["session"] = self.session_id
        if spilled and body.get("commands"):
            record["spilled"] = len(body["commands"])
        return record

    def _keep(self, residue: dict[str, Any], final: bool, now: int) -> None:
        """What the journal refused: dropped spans counted in the journal's drop counter (kept across
        exit), the rest back in this process, or written regardless of the bounds at exit."""
        from otel_expansion.journal import store as journal

        dropped = residue.pop("dropped", 0)
        if dropped:
            try:
                journal.note_dropped(self.settings.home, dropped)
            except OSError:  # the counter file too: counted in this process until a commit takes it
                self._count({"dropped.journal_full": dropped})
        aggregate = residue.pop("usage", None)
        usage = aggregate.take() if aggregate is not None else None
        if not final:
            if usage is not None:
                self.usage.merge(usage)
            with self._lock:  # the drain's lock: _drain takes them back under it
                self._heartbeats += residue.pop("heartbeats", 0)
                self._ended_back.extend(residue.pop("sessions_ended", ()))
            from otel_expansion.journal.record import counters_of

            self._count(counters_of(residue))
            return
        # exit: nothing of this process outlives it but files. A few small records past the bounds (the
        # disk's reserve still applies: ``full`` is not asked, but the write fails on a full disk)
        from otel_expansion.collect.usage import split_usage
        from otel_expansion.journal.record import DROP_COUNTS

        left: dict[str, int] = {}
        for name, n in self._take_counts().items():  # counts no commit took
            key = name.split(".", 1)[-1]
            if name == "dropped.journal_full":
                try:
                    journal.note_dropped(self.settings.home, n)
                except OSError:
                    left[name] = n
            elif name.startswith("dropped.") and key in DROP_COUNTS:
                residue[key] = residue.get(key, 0) + n
            elif name == "spans.sampled_out":
                residue["sampled_out"] = residue.get("sampled_out", 0) + n
            else:
                left[name] = n
        self._count(left)
        parts = [{"usage": u, "metered": 1} for u in split_usage(usage)] if usage else []
        if residue:
            parts.insert(0, {**residue, "metered": 1})
        try:
            journal.append_many(self.settings.home, [self._record(p) for p in parts], now)
            self._journaled += 1 if parts else 0
        except (OSError, ValueError) as exc:
            log.warning("telemetry journal unavailable at exit; usage of this run's last interval lost: %s", exc)

    def _count(self, counts: dict[str, int]) -> None:
        """Add drop counters for the next commit (from either thread)."""
        with self._counts_lock:
            for name, n in counts.items():
                if n:
                    self._counts[name] = self._counts.get(name, 0) + n

    def _take_counts(self) -> dict[str, int]:
        """The drop counters waiting, taken whole (a commit writes them; what it cannot, it adds back)."""
        with self._counts_lock:
            taken, self._counts = self._counts, {}
        return taken

    def _append(self, journal: Any, record: dict[str, Any], now: int, residue: dict[str, Any],
                published: list[tuple[str, int]]) -> int:
        commands = record.get("commands") or []
        try:
            published.append((journal.append(self.settings.home, record, now), len(commands)))
            return len(commands)
        except ValueError:  # over the journal's record size: halve it
            if len(commands) < 2:
                log.warning("telemetry record too large for the journal; its command's span dropped (counted)")
                _refuse(record, residue)
                return 0
            first, second = split_body(record, (len(commands) + 1) // 2)[:2]
            return (self._append(journal, first, now, residue, published)
                    + self._append(journal, second, now + 1, residue, published))
        except OSError as exc:
            log.warning("telemetry journal unavailable, %d commands' spans dropped (counted): %s", len(commands), exc)
            _refuse(record, residue)
            return 0

    def retire(self) -> None:
        """Stop the export thread; nothing is committed or sent (the app's own init() took over)."""
        self._stop.set()
        self._wake.set()

    def shutdown(self) -> None:
        """Stop the thread without waiting on it, end the session, hand everything not committed to the
        journal and start a detached sender. Bounded: never more than COMMIT_WAIT_S on the thread."""
        self._stop.set()
        self._wake.set()
        long_running = time.monotonic() - self._started > self.settings.metric_interval_s
        if self.settings.level >= levels.SESSIONS and long_running:
            # a daemon's session is its lifetime; a short run (a CLI under opentelemetry-instrument)
            # leaves the session open for the next invocation, as CLI sessions are
            from otel_expansion import collect as session

            self._ended = session.end_session(self.settings.home, time.time_ns())
        with self._slices_lock:
            self._closing = True
            current = self._current
            spilled_replay = self._spilled_replay  # the thread is replaying spilled records (shared staging)
            handed = [sl.body for sl in self._backlog] + self._drain(size=JOURNAL_COMMANDS)
            self._backlog.clear()
            if current is not None and not current.claimed:
                current.handed = True  # the thread will find it claimed by the journal and drop its copy
                handed.insert(0, current.body)
        if current is not None and current.claimed:
            current.done.wait(COMMIT_WAIT_S)  # inside its write transaction already: milliseconds
        self._to_journal(handed, final=True)
        if (current is None and not spilled_replay) or (
                current is not None and current.claimed and current.done.is_set()):
            self._commit_others()  # the thread is idle: nothing of the replay can be in staging
        if self._counts:  # drop and sampling counters no commit took (a journal that refused a spill after
            self._keep({}, True, time.time_ns())  # the thread's last commit): a small record past the bounds
        if self.settings.debug and (self._journaled or self._catch_up):  # debug: show what was handed over
            from otel_expansion.workers.inline import ingest_now

            try:
                ingest_now(self.settings, {})
            except Exception as exc:  # the debug view never costs the host
                log.warning("debug conversion failed: %s", exc)
        from otel_expansion.export import launcher

        # A program that ends takes its last data with it unless a sender picks it up now: start one
        # whatever the send interval says, but respect a failing collector's backoff.
        home = self.settings.home
        in_backoff = launcher.next_send_at(home) > time.time() and self._failing
        # A round under way in the thread dies with the process, lock and all; a sender (this program's or
        # any other) may still be replaying records listed before this program's spilled ones were
        # written: either way the exit's sender waits for the lock instead of leaving them for next time.
        wait = SENDER_LOCK_WAIT_S if self._in_round or self._spawned_at or self._catch_up else 0.0
        if self.cli_like and not long_running:
            # a CLI run: one sender when sending is due (or the journal has grown), like init()'s CLI runs;
            # a forced send per run made every run of a CLI its own three requests
            if launcher.should_start(home, self.settings.send):
                launcher.spawn(home, self.settings.endpoint, self.settings.send, lock_wait_s=wait, entry=SENDER_ENTRY)
            return
        if self.settings.send and not in_backoff:
            launcher.spawn(home, self.settings.endpoint, self.settings.send, force=True, lock_wait_s=wait,
                           entry=SENDER_ENTRY)
        elif self._journaled or self._catch_up:
            launcher.spawn(home, self.settings.endpoint, False, lock_wait_s=wait, entry=SENDER_ENTRY)  # send later

    def _commit_others(self) -> None:
        """Spans and metrics of other instrumentations (through our providers) staged since the thread's
        last step: commit them here, the thread has stopped taking slices."""
        try:
            self.pipeline.collect()
        except Exception as exc:
            log.warning("telemetry collection failed: %s", exc)
        points, spans = self.staging.take()
        if points or spans:
            self._commit(_Slice({}), points, spans)
            self._close_spool()
