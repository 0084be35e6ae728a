"""Serving collects cyclic garbage less often (server.GC_THRESHOLDS), in its own process and its decoding
workers, and leaves an embedding process's collector as it found it."""

from __future__ import annotations

import gc
import threading

from otel_expansion.backend.decoding import GC_THRESHOLDS, DecodePool
from otel_expansion.backend.limits import Limits
from otel_expansion.backend.server import _fewer_collections


def test_main_thread_server_raises_and_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    assert before != GC_THRESHOLDS
    restore = _fewer_collections()
    try:
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        restore()
    assert gc.get_threshold() == before


def test_server_in_a_thread_leaves_the_process_alone() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []

    def serve_like() -> None:
        restore = _fewer_collections()
        seen.append(gc.get_threshold())
        restore()

    thread = threading.Thread(target=serve_like)
    thread.start()
    thread.join()
    assert seen == [before] and gc.get_threshold() == before


def test_decoding_workers_collect_less_often() -> None:
    pool = DecodePool(1, Limits())
    try:
        executor = pool._executor
        assert executor is not None
        assert executor.submit(gc.get_threshold).result() == GC_THRESHOLDS
    finally:
        pool.close()
