"""Request bodies to storable rows in worker processes: the receiver's CPU-heavy half, run in parallel.

Why processes: decompressing, parsing protobuf and flattening every point and span is pure Python work
that holds the GIL; in one process it took as long as SQLite itself, so request threads could not decode
in parallel and the single writer waited for them. Here each request body goes to a pool of worker
processes (``spawn``: no fork of a threaded server) that return compact rows with everything that needs
no database already done (:func:`prepare`: the content digest for de-duplication, the length limits, the
exponential buckets at the rollup's scale, and the entry's rollup with its dimension values as received),
the rows packed as plain tuples in one ``marshal`` blob per entry (:meth:`ResourceData.pack`: the server
unpickles no object per row); the server's one writer thread checks those values are admitted as they are
and stores.

Workers never outlive the server: :meth:`DecodePool.close` shuts them down, killing any that has not exited
within ``STOP_TIMEOUT_S`` (stopped, stuck in a decode: logged with its pid), so the server's own exit never
waits on one (the executor's and multiprocessing's exit hooks join every worker without a bound); and each
worker watches its parent and exits as soon as the parent is gone (killed with SIGKILL, say), so none is left
orphaned.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from otel_expansion.backend.ingest import ResourceData, content_id, decode, decompress, digest, flatten
from otel_expansion.backend.limits import Limits, clip_resource
from otel_expansion.backend.rollup import ROLLUP_SCALE, roll_ahead
from otel_expansion.otlp.exponential import downscale

__all__ = [
    "GC_THRESHOLDS", "STOP_TIMEOUT_S", "DecodePool", "PoolBroken", "default_workers", "prepare", "prepare_packed",
    "prepare_resources",
]

logger = logging.getLogger("otel_expansion.backend.server")

_PARENT_CHECK_S = 0.5
STOP_TIMEOUT_S = 5.0
"""How long :meth:`DecodePool.close` lets the workers finish the request each holds and exit before it kills
them (a decode takes milliseconds; a worker still there after this is stopped or stuck)."""

GC_THRESHOLDS = (50_000, 20, 10)
"""The cyclic garbage collector's thresholds while this process serves (and in its decoding workers): ingest
allocates containers by the hundred thousand, nearly all freed by reference counting, and the default
(700, 10, 10) ran a collection every few hundred of them, full ones over the writer's caches: 6% of the
server's CPU and 3% of a worker's at 8 senders. Cyclic garbage is still collected, every 50,000 net
allocations."""


class PoolBroken(RuntimeError):
    """A worker process died mid-request (the pool is rebuilt; the request may be retried)."""


def default_workers() -> int:
    """One decoding process per core beyond the writer's, at least one, at most four: each decodes about
    28k rows per CPU-second, so four outpace the one writer several times over (and each costs ~50 MiB)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def prepare(
    signal: str, body: bytes, content_encoding: str | None, encoding: str, limits: Limits, tagged: bool
) -> list[ResourceData]:
    """Decompress, decode and flatten one request, then do the database-free part of storing it.

    ``tagged`` (the request has a batch id header) asks for every entry's digest; an entry with a batch id
    attribute always gets one. The digest is of the entry as received, before the limits cut it.
    """
    return prepare_resources(flatten(signal, decode(signal, decompress(body, content_encoding), encoding)),
                             limits, tagged)


def prepare_packed(
    signal: str, body: bytes, content_encoding: str | None, encoding: str, limits: Limits, tagged: bool
) -> list[ResourceData]:
    """:func:`prepare`, with each entry's rows packed for the trip to the server (ResourceData.pack)."""
    resources = prepare(signal, body, content_encoding, encoding, limits, tagged)
    for resource in resources:
        resource.pack()
    return resources


def prepare_resources(resources: list[ResourceData], limits: Limits, tagged: bool) -> list[ResourceData]:
    """The database-free part of storing decoded entries, done in place (see :func:`prepare`)."""
    for resource in resources:
        keyed = tagged or resource.batch_id is not None
        if keyed:
            resource.digest = content_id(resource)
        cut: Counter[str] = Counter()
        received = resource.spans, resource.points, resource.logs  # clip_resource replaces the lists
        clip_resource(resource, limits, cut)
        if keyed and cut:  # the rows no longer give the pre-schema-5 digest: keep it (rare: a value was cut)
            resource.legacy_digest = digest(ResourceData({}, None, resource.fingerprint, *received))
        resource.cut = dict(cut)
        if resource.exp:  # the rollup keeps ROLLUP_SCALE at most: downscale here, not in the writer
            resource.exp = {key: downscale(b, ROLLUP_SCALE) for key, b in resource.exp.items()}
        resource.rolled = roll_ahead(resource, limits)
        if resource.rolled is not None:  # the writer reads the buckets only to roll the entry itself (rare)
            resource.exp = {}
    return resources


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit when the server process is gone (its pid is no longer our parent); ignore
    SIGINT and SIGTERM (a Ctrl-C reaches the whole process group, a service manager may stop the whole group:
    the server stops its workers, bounded, and a worker interrupted mid-read only printed a traceback); and
    collect cyclic garbage less often (GC_THRESHOLDS)."""
    import gc
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the same from a service manager's stop of the whole group
    if hasattr(signal, "pthread_sigmask"):  # started with both blocked (server.block_stop_signals): let them in,
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # ignored from now on
    gc.set_threshold(*GC_THRESHOLDS)

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="otel-expansion-parent-watch", daemon=True).start()


class DecodePool:
    """``workers`` decoding processes (0: decode in the calling thread, as before the pool)."""

    def __init__(self, workers: int, limits: Limits) -> None:
        self.workers = workers
        self._limits = limits
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._retired: list[Any] = []  # workers of executors replaced after one broke (see prepare)
        self._stopping: list[Any] = []  # the workers close() is stopping (see pids)
        if workers > 0:
            self._executor = self._start()
            try:
                # start every worker now (an import takes a while): the first requests should not wait for it
                for future in [self._executor.submit(os.getpid) for _ in range(workers)]:
                    future.result()
            except BaseException:  # a worker that died starting (a Ctrl-C to the group): none left behind
                self.close()
                raise

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_watch_parent,
            initargs=(os.getpid(),),
        )

    def pids(self) -> list[int]:
        """The worker processes' ids, those being stopped included (for a forced stop, tests and the benchmark's
        CPU accounting)."""
        processes = [*_processes(self._executor), *self._retired, *self._stopping]
        return sorted({int(p.pid) for p in processes if p.pid is not None and _running(p)})

    def prepare(
        self, signal: str, body: bytes, content_encoding: str | None, encoding: str, tagged: bool
    ) -> list[ResourceData]:
        """:func:`prepare_packed` in a worker process (:func:`prepare` with no workers); raises what it raised
        (PayloadError...), or PoolBroken."""
        executor = self._executor
        if self.workers <= 0:
            return prepare(signal, body, content_encoding, encoding, self._limits, tagged)
        if executor is None or self._closed:
            raise PoolBroken("the decoding pool is stopped")
        try:
            return executor.submit(prepare_packed, signal, body, content_encoding, encoding, self._limits,
                                   tagged).result()
        except BrokenProcessPool:
            with self._lock:  # one replacement pool, however many requests saw this one break
                if self._executor is executor and not self._closed:
                    self._retired += _processes(executor)  # stopped with the pool at close, like its own
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._start()
            raise PoolBroken("a decoding worker died") from None

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the workers (queued requests are cancelled), within about ``timeout_s`` whatever they do.

        Why bounded: ``ProcessPoolExecutor.shutdown(wait=True)``, and at interpreter exit the executor's and
        multiprocessing's own hooks, join every worker without a timeout, so one worker that never takes its
        stop (stopped, stuck) kept the whole server alive, and with it whatever pipe it was started with. Here
        the workers get the stop, ``timeout_s`` to exit, and are then killed, each kill logged."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
            processes, self._retired = [*self._retired, *_processes(executor)], []
            self._stopping = processes
            manager = getattr(executor, "_executor_manager_thread", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        _stop_processes(processes, timeout_s)
        if manager is not None:  # it joins the workers (now gone) and closes the queues
            manager.join(timeout_s)
            if manager.is_alive():
                logger.warning("the decoding pool's manager thread did not stop within %.1f s", timeout_s)


def _running(process: Any) -> bool:
    """The process has not exited (a reaped pid may be another process's by now: never listed, never killed)."""
    try:
        return process.exitcode is None
    except ValueError:  # a closed Process object: its process is gone
        return False


def _processes(executor: ProcessPoolExecutor | None) -> list[Any]:
    """An executor's worker processes (multiprocessing.Process objects) while it has them."""
    return list((getattr(executor, "_processes", None) or {}).values())


def _stop_processes(processes: list[Any], timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for the processes to exit (by their sentinels: no wait() raced with the executor's
    own), then kill and reap those still there, saying so in the log."""
    from multiprocessing.connection import wait

    deadline = time.monotonic() + timeout_s
    alive: dict[Any, Any] = {}
    for process in processes:
        try:
            alive[process.sentinel] = process
        except ValueError:  # a closed Process object: its process is gone
            continue
    while alive:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for sentinel in wait(list(alive), left):
            alive.pop(sentinel)
    for process in alive.values():
        logger.warning("decoding worker %d did not stop within %.1f s of the server's stop: killed", process.pid,
                       timeout_s)
        process.kill()
    for process in alive.values():
        process.join(timeout_s)
        if process.is_alive():
            logger.warning("decoding worker %d is still there after SIGKILL", process.pid)
