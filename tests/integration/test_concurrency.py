"""Commands that overlap in time (threads, asyncio tasks) are each recorded: one command in progress per
thread or task, not per process. A command begun inside another of the same thread or task is still part
of it. ``@command`` on an ``async def`` or a generator times the work, not the call that creates it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import clean_env, journal_records


def commands(tmp_path: Path, source: str) -> list[dict[str, Any]]:
    home = tmp_path / "home"
    script = tmp_path / "app.py"
    script.write_text(source)
    result = subprocess.run([sys.executable, str(script)], env=clean_env(home, OTEL_EXPANSION_SEND="false"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [c for rec in journal_records(home) for c in rec["commands"]]  # type: ignore[attr-defined]


THREADS = r"""
import threading, time, otel_expansion
otel_expansion.init("threaded", mode="cli", instrument=False)
barrier = threading.Barrier(4)

def work(i):
    barrier.wait()
    for n in range(250):
        name = ("get", "put", "fail")[n % 3]
        try:
            with otel_expansion.command(name):
                with otel_expansion.command("inner"):  # nested in this thread's command: part of it
                    time.sleep(0.0002)  # every thread is inside a command at once
                if name == "fail":
                    raise KeyError(n)
        except KeyError:
            pass

threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_commands_of_concurrent_threads_are_each_recorded(tmp_path: Path) -> None:
    """4 threads x 250 commands, all overlapping: 1,000 recorded (not those that happened to start while
    another thread's command ran), each with its own outcome; nested ones belong to their thread's command."""
    recorded = commands(tmp_path, THREADS)
    assert Counter(c["name"] for c in recorded) == {"get": 336, "put": 332, "fail": 332}
    assert sum(1 for c in recorded if c["exit"] != 0) == 332


TASKS = r"""
import asyncio, otel_expansion
otel_expansion.init("tasks", mode="cli", instrument=False)

async def handler(i):
    for n in range(100):
        with otel_expansion.command("handle"):
            await asyncio.sleep(0)  # another task's command runs meanwhile

@otel_expansion.command("job")
async def job(fail):
    await asyncio.sleep(0.05)
    if fail:
        raise ValueError("boom")

async def main():
    await asyncio.gather(*(handler(i) for i in range(10)))
    results = await asyncio.gather(job(False), job(True), job(False), job(True), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["NoneType", "ValueError", "NoneType", "ValueError"]

asyncio.run(main())
"""


def test_commands_of_concurrent_asyncio_tasks_and_async_commands(tmp_path: Path) -> None:
    """10 tasks x 100 commands interleaved at every await: 1,000 recorded; an ``async def`` decorated with
    ``@command`` is timed while it runs (>= 50 ms, not the microseconds of creating the coroutine) and
    its failures are recorded."""
    recorded = commands(tmp_path, TASKS)
    assert sum(1 for c in recorded if c["name"] == "handle") == 1000
    jobs = [c for c in recorded if c["name"] == "job"]
    assert len(jobs) == 4 and sum(1 for c in jobs if c["exit"] != 0) == 2
    assert all(c["end"] - c["start"] >= 45_000_000 for c in jobs), [c["end"] - c["start"] for c in jobs]


GENERATOR = r"""
import asyncio, time, otel_expansion
otel_expansion.init("gen", mode="cli", instrument=False)

@otel_expansion.command("stream")
def stream(n):
    for i in range(n):
        time.sleep(0.01)
        yield i

@otel_expansion.command("search")
def search():
    yield from range(10)

@otel_expansion.command("read_a")
def read_a():
    yield from range(3)

@otel_expansion.command("read_b")
def read_b():
    yield from range(3)

@otel_expansion.command("agen")
async def agen():
    for i in range(3):
        await asyncio.sleep(0.02)
        yield i

async def consume():
    return [i async for i in agen()]

assert list(stream(5)) == [0, 1, 2, 3, 4]
assert stream.__name__ == "stream"
for x in search():
    if x == 3:
        break  # the consumer stops early: the generator is closed, the command succeeded
for _ in zip(read_a(), read_b()):  # two generators in turns, one thread: two commands
    pass
assert asyncio.run(consume()) == [0, 1, 2]
"""


def test_generator_commands_are_timed_while_iterated(tmp_path: Path) -> None:
    """A generator (and an async generator) is timed while iterated; one the consumer stops early ends
    as a success; two generators iterated in turns are two commands, not one nested in the other."""
    recorded = {c["name"]: c for c in commands(tmp_path, GENERATOR)}
    assert set(recorded) == {"stream", "search", "read_a", "read_b", "agen"}, recorded
    assert recorded["stream"]["end"] - recorded["stream"]["start"] >= 45_000_000
    assert recorded["agen"]["end"] - recorded["agen"]["start"] >= 50_000_000
    assert all(c["exit"] == 0 for c in recorded.values()), recorded
