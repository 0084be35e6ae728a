"""Decoding in worker processes, backpressure and the WAL bound: the receiver's parallel ingest path.

Worker processes must return exactly what decoding in the request thread returns, hand back payload
errors intact, never outlive the server (SIGTERM or SIGKILL), and the writer must answer 429 when it is
behind and keep the WAL under its bound through a long ingest with readers running.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_expansion.backend.decoding import DecodePool, prepare
from otel_expansion.backend.ingest import PROTOBUF, PayloadError, ResourceData
from otel_expansion.backend.limits import Limits
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import report_from
from otel_expansion.backend.server import serve
from otel_expansion.backend.store import open_readonly, stored_counts

from .conftest import LINUX, LiveServer, known_data, span, traces_request


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    left = set(pids)
    while left and time.monotonic() < deadline:
        left = {p for p in left if _alive(p)}
        time.sleep(0.05)
    return left


def _fresh_spans(seed: int, n: int) -> bytes:
    """A gzip traces body of ``n`` spans with ids no other call uses."""
    now = time.time_ns()
    spans = [span("build", {"cli.command.name": "build", "cli.command.outcome": "success",
                            "session.id": f"s{seed}"}, now - 10**9, now, seed * 10**6 + i + 1, seed * 10**6 + i + 1)
             for i in range(n)]
    return gzip.compress(traces_request((LINUX, spans)).SerializeToString(), 1)


class TestWorkers:
    def test_worker_returns_what_the_thread_computes(self) -> None:
        """Rows, digests and limit cuts from a worker process equal those computed in-process."""
        pool = DecodePool(1, Limits(value_chars=8))
        try:
            for signal_name, message in known_data():
                body = gzip.compress(message.SerializeToString())
                here = prepare(signal_name, body, "gzip", PROTOBUF, Limits(value_chars=8), True)
                there = pool.prepare(signal_name, body, "gzip", PROTOBUF, True)
                assert all(r.packed is not None for r in there)  # handed over packed (ResourceData.pack)
                assert sum(r.rows() for r in there) == sum(r.rows() for r in here)
                for resource in there:
                    resource.unpack()
                assert there == here
                assert all(r.digest for r in there) and any(r.cut for r in there)
        finally:
            pool.close()

    def test_payload_error_crosses_intact(self) -> None:
        """A malformed body decoded in a worker is still a PayloadError with its HTTP status."""
        pool = DecodePool(1, Limits())
        try:
            with pytest.raises(PayloadError) as caught:
                pool.prepare("traces", b"\x0a\xff\xff", None, PROTOBUF, False)
            assert caught.value.status == 400
        finally:
            pool.close()


    def test_a_dead_worker_is_replaced(self) -> None:
        """A worker killed mid-service: the request that met it gets PoolBroken (answered 503 + Retry-After),
        the pool is rebuilt and the next request is decoded."""
        from otel_expansion.backend.decoding import PoolBroken

        pool = DecodePool(1, Limits())
        try:
            body = _fresh_spans(7, 3)
            assert pool.prepare("traces", body, "gzip", PROTOBUF, False)[0].rows() == 3
            (victim,) = pool.pids()
            os.kill(victim, signal.SIGKILL)
            assert _gone_within({victim}, 5) == set()
            with pytest.raises(PoolBroken):
                pool.prepare("traces", body, "gzip", PROTOBUF, False)
            assert pool.prepare("traces", body, "gzip", PROTOBUF, False)[0].rows() == 3
            assert victim not in pool.pids()
        finally:
            pool.close()


def _serve_process(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "otel_expansion.cli.main", "backend", "serve", "--port", "0", "--db",
         str(tmp_path / "b.sqlite"), "--workers", "2", "--json"],
        stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    return server, int(line.split('"port": ')[1].split(",")[0])


def _post(port: int, body: bytes, batch: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body, {"Content-Type": PROTOBUF, "Content-Encoding": "gzip",
                                                   "X-Otel-Expansion-Batch-Id": batch})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


class TestNoOrphans:
    def test_sigterm_stops_every_worker(self, tmp_path: Path) -> None:
        """SIGTERM shuts the server down cleanly (exit 0) and no process it started is left."""
        server, port = _serve_process(tmp_path)
        try:
            assert _post(port, _fresh_spans(1, 10), "a") == 200
            children = _children(server.pid)
            assert len(children) >= 2  # the two decoding workers (and multiprocessing's tracker)
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        assert _gone_within(children, 5) == set()
        assert stored_counts(open_readonly(tmp_path / "b.sqlite"))["spans"] == 10

    def test_sigkill_leaves_no_orphans(self, tmp_path: Path) -> None:
        """Killed outright, the server cannot stop its workers: they notice their parent is gone and exit."""
        server, port = _serve_process(tmp_path)
        try:
            assert _post(port, _fresh_spans(2, 10), "b") == 200
            children = _children(server.pid)
            assert len(children) >= 2
        finally:
            server.kill()
            server.wait()
        assert _gone_within(children, 10) == set()


class TestBoundedStop:
    def test_a_stuck_worker_cannot_hold_the_stop(self, tmp_path: Path) -> None:
        """A decoding worker that never takes its stop (stopped with SIGSTOP) is killed after the pool's bound,
        in the log: the server exits 0 and every process holding its stdout and stderr is gone (the pipes reach
        end of file; the stop used to wait for that worker without end, and the pipes stayed open)."""
        from otel_expansion.backend.decoding import STOP_TIMEOUT_S

        server = subprocess.Popen(
            [sys.executable, "-m", "otel_expansion.cli.main", "backend", "serve", "--port", "0", "--db",
             str(tmp_path / "b.sqlite"), "--workers", "1", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert server.stdout is not None
        port = int(server.stdout.readline().split('"port": ')[1].split(",")[0])
        children: set[int] = set()
        try:
            assert _post(port, _fresh_spans(3, 10), "c") == 200
            children = _children(server.pid)
            (worker,) = [pid for pid in children
                         if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
            os.kill(worker, signal.SIGSTOP)
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            _, err = server.communicate(timeout=60)  # end of file: no process holds the pipes any more
            took = time.monotonic() - started
        finally:
            if server.poll() is None:
                for pid in children:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                server.kill()
                server.communicate()
        assert server.returncode == 0
        assert f"decoding worker {worker} did not stop within {STOP_TIMEOUT_S:.1f} s" in err
        assert STOP_TIMEOUT_S <= took < STOP_TIMEOUT_S + 20
        assert _gone_within(children, 5) == set()
        assert stored_counts(open_readonly(tmp_path / "b.sqlite"))["spans"] == 10

    def test_a_stop_stuck_anywhere_ends_in_the_bound(self, tmp_path: Path) -> None:
        """Whatever step of a stop hangs (here the server's close never returns), a process that serving owns
        exits within STOP_BOUND_S of SIGTERM with status 70, the stuck thread's stack in its log."""
        script = (
            "import sys, time\n"
            "from pathlib import Path\n"
            "from otel_expansion.backend import server\n"
            "server.STOP_BOUND_S = 2.0\n"
            "def never_returns(self): time.sleep(3600)\n"
            "server._Server.server_close = never_returns\n"
            "server.serve('127.0.0.1', 0, Path(sys.argv[1]), ready=lambda p: print(p, flush=True), workers=0)\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "s.sqlite")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip().isdigit()
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 70
        assert "stop did not finish within 2 s; exiting anyway" in err
        assert "never_returns" in err
        assert 2.0 <= took < 20


def _session_gone_within(session: int, seconds: float) -> bool:
    """Every process of the session (the server, its workers, multiprocessing's tracker) has exited."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(session, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _serve_in_session(tmp_path: Path, port: int = 0, workers: int = 2,
                      ignore_sigint: bool = False) -> subprocess.Popen[str]:
    """``backend serve`` in a session of its own (as a shell job is), its stdout and stderr piped; with
    ``ignore_sigint``, started as a shell starts a background job (``serve &``: SIGINT ignored)."""

    def signals() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-m", "otel_expansion.cli.main", "backend", "serve", "--port", str(port), "--db",
         str(tmp_path / "b.sqlite"), "--workers", str(workers), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=signals,
    )


def _listening(port: int, seconds: float = 30) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.005)


def _stopped(server: subprocess.Popen[str], seconds: float = 60) -> str:
    """The server's stderr once both pipes reached end of file (no process holds them), killing its whole
    session if they did not in time."""
    try:
        return server.communicate(timeout=seconds)[1]
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.communicate()
        raise


class TestSignals:
    """How people and shells stop a server: every way ends with the pipes closed, no process left in the
    session, no traceback, and exit 0 (or 130 when interrupted twice)."""

    def test_the_handler_survives_a_signal_at_every_line_it_runs(self) -> None:
        """A signal handler runs between two bytecodes, and a second signal can interrupt the first handler
        anywhere, inside any lock it holds. Simulated here with a tracer that calls the handler again at each
        line the handler runs, in its callees too: a handler that took a lock (the old ``Event.set``) waits
        for itself forever; this one finishes, and every signal is noted."""
        from otel_expansion.backend.server import _StopSignals

        signals = _StopSignals(lambda: [])
        nested = [False]
        lines = [0]
        done = threading.Event()

        def tracer(frame: object, event: str, arg: object) -> object:
            if event == "line" and not nested[0]:
                lines[0] += 1
                nested[0] = True
                try:
                    signals._handle(signal.SIGTERM, None)  # a signal arriving at this line
                finally:
                    nested[0] = False
            return tracer

        def run() -> None:
            sys.settrace(tracer)  # type: ignore[arg-type]
            try:
                signals._handle(signal.SIGTERM, None)
            finally:
                sys.settrace(None)
            done.set()

        try:
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            thread.join(10)
            assert done.is_set(), "the handler deadlocked on a signal that arrived while it ran"
            assert lines[0] >= 1 and signals.received == [signal.SIGTERM] * (1 + lines[0])
        finally:
            signals.received.clear()
            signals.restore()

    @pytest.mark.parametrize("gap_s", [0.0, 0.05, 0.3])
    def test_a_second_sigterm_during_the_stop_is_ignored(self, tmp_path: Path, gap_s: float) -> None:
        """``kill %1`` and then a shell's exit trap: the second SIGTERM used to kill the server halfway
        through its stop (exit -15, the workers' tracebacks and multiprocessing's leaked-semaphore warning
        on the terminal)."""
        server = _serve_in_session(tmp_path)
        assert server.stdout is not None
        port = int(server.stdout.readline().split('"port": ')[1].split(",")[0])
        assert _post(port, _fresh_spans(11, 10), "t") == 200
        server.send_signal(signal.SIGTERM)
        time.sleep(gap_s)
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGTERM)
        err = _stopped(server)
        assert server.returncode == 0, err
        assert "Traceback" not in err and "leaked" not in err, err
        assert _session_gone_within(server.pid, 5)
        assert stored_counts(open_readonly(tmp_path / "b.sqlite"))["spans"] == 10

    def test_ctrl_c_reaches_the_whole_group_quietly(self, tmp_path: Path) -> None:
        """A terminal's Ctrl-C goes to every process of the foreground group: the workers used to print a
        KeyboardInterrupt traceback each; they now leave the stop to the server."""
        server = _serve_in_session(tmp_path)
        assert server.stdout is not None
        port = int(server.stdout.readline().split('"port": ')[1].split(",")[0])
        assert _post(port, _fresh_spans(12, 10), "i") == 200
        os.killpg(server.pid, signal.SIGINT)
        err = _stopped(server)
        assert server.returncode == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert _session_gone_within(server.pid, 5)

    @pytest.mark.parametrize("group_sigint", [False, True], ids=["sigterm", "ctrl-c"])
    def test_a_signal_while_the_workers_start_is_a_quiet_stop(self, tmp_path: Path, group_sigint: bool) -> None:
        """The port listens before the decoding workers have started. A SIGTERM then used to be the default
        action (the server dead, exit -15) instead of a stop; a Ctrl-C to the group made each worker, its
        handler not in place yet, print a KeyboardInterrupt traceback, and the server died of a broken pool.
        The handlers now go in first, and the workers start with SIGINT and SIGTERM blocked and ignore both
        before letting them in."""
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        server = _serve_in_session(tmp_path, port)
        _listening(port)
        if group_sigint:
            os.killpg(server.pid, signal.SIGINT)
        else:
            server.send_signal(signal.SIGTERM)
        err = _stopped(server)
        assert server.returncode == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert _session_gone_within(server.pid, 5)

    def test_sigint_ignored_by_the_parent_stays_ignored(self, tmp_path: Path) -> None:
        """A shell starts `serve &` with SIGINT ignored, so a terminal's Ctrl-C is not for it: the server kept
        that until it installed its own handler, then took a later Ctrl-C as a stop. It now keeps the parent's
        choice (as Python itself does); SIGTERM still stops it."""
        server = _serve_in_session(tmp_path, ignore_sigint=True)
        assert server.stdout is not None
        port = int(server.stdout.readline().split('"port": ')[1].split(",")[0])
        os.killpg(server.pid, signal.SIGINT)
        time.sleep(1)
        assert server.poll() is None
        assert _post(port, _fresh_spans(14, 10), "g") == 200
        server.send_signal(signal.SIGTERM)
        err = _stopped(server)
        assert server.returncode == 0, err
        assert _session_gone_within(server.pid, 5)

    def test_a_second_ctrl_c_stops_at_once(self, tmp_path: Path) -> None:
        """Interrupted again while a stop waits (here on a worker stopped with SIGSTOP, which the stop would
        wait STOP_TIMEOUT_S for): the server kills its workers and exits 130 at once."""
        from otel_expansion.backend.decoding import STOP_TIMEOUT_S

        server = _serve_in_session(tmp_path, workers=1)
        assert server.stdout is not None
        port = int(server.stdout.readline().split('"port": ')[1].split(",")[0])
        assert _post(port, _fresh_spans(13, 10), "s") == 200
        (worker,) = [pid for pid in _children(server.pid)
                     if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.kill(worker, signal.SIGSTOP)
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        time.sleep(0.5)  # the stop is now waiting on the stopped worker
        server.send_signal(signal.SIGINT)
        err = _stopped(server)
        assert server.returncode == 130, err
        assert "stopped at once" in err
        assert time.monotonic() - started < STOP_TIMEOUT_S
        assert _gone_within({worker}, 5) == set()
        assert _session_gone_within(server.pid, 5)


@pytest.fixture
def tight_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose writer takes at most 5 pending rows and whose WAL limit is 1 MiB."""
    ports: list[int] = []
    bound = threading.Event()
    stop = threading.Event()
    db_path = tmp_path / "tight.sqlite"
    thread = threading.Thread(target=serve, kwargs={
        "host": "127.0.0.1", "port": 0, "db_path": db_path, "ready": lambda p: (ports.append(p), bound.set()),
        "stop": stop, "retention_days": 0, "workers": 1, "max_pending_rows": 5, "wal_limit_bytes": 2**20,
    }, daemon=True)
    thread.start()
    assert bound.wait(30)
    yield LiveServer(ports[0], db_path)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


class TestBackpressure:
    def test_429_while_the_writer_is_behind(self, tight_server: LiveServer) -> None:
        """With the writer stuck behind a lock, a request over the pending bound gets 429 + Retry-After; the
        one waiting is stored once the writer moves, and the refused one is stored when retried."""
        blocker = sqlite3.connect(tight_server.db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer's next transaction waits on this
        statuses: list[int] = []
        first = threading.Thread(target=lambda: statuses.append(_post(tight_server.port, _fresh_spans(3, 4), "c")))
        first.start()
        try:
            time.sleep(2)  # the first request is decoded and waits in the writer's queue (behind the lock)
            refused = tight_server.request("POST", "/v1/traces", _fresh_spans(4, 4), {
                "Content-Type": PROTOBUF, "Content-Encoding": "gzip", "X-Otel-Expansion-Batch-Id": "d"})
            assert refused.status == 429 and refused.headers["retry-after"] == "1"
            assert statuses == []  # still waiting: a 200 only once stored
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            first.join(30)
        assert statuses == [200]
        assert _post(tight_server.port, _fresh_spans(4, 4), "d") == 200
        assert stored_counts(open_readonly(tight_server.db_path))["spans"] == 8


@pytest.mark.slow
class TestWalBound:
    def test_wal_stays_bounded_during_a_long_ingest(self, tmp_path: Path) -> None:
        """Four senders store ~30 MiB while readers run reports; the WAL never passes its 1 MiB limit plus
        what one transaction writes (a group, a merge of span keys), and every row sent is stored."""
        limit = 2**20
        ports: list[int] = []
        bound = threading.Event()
        stop = threading.Event()
        db = tmp_path / "wal.sqlite"
        thread = threading.Thread(target=serve, kwargs={
            "host": "127.0.0.1", "port": 0, "db_path": db, "ready": lambda p: (ports.append(p), bound.set()),
            "stop": stop, "retention_days": 0, "workers": 1, "wal_limit_bytes": limit,
        }, daemon=True)
        thread.start()
        assert bound.wait(30)
        wal = Path(str(db) + "-wal")
        peak = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.005):
                with contextlib.suppress(OSError):
                    peak[0] = max(peak[0], wal.stat().st_size)

        def read() -> None:
            while not done.is_set():
                engine = SQLiteEngine(open_readonly(db))
                try:
                    report_from(engine, Filter())
                finally:
                    engine.close()

        per_sender, spans = 60, 400
        bodies = [[_fresh_spans(1000 + s * per_sender + i, spans) for i in range(per_sender)] for s in range(4)]
        statuses: list[int] = []

        def send(s: int) -> None:
            statuses.extend(_post(ports[0], body, f"w{s}-{i}") for i, body in enumerate(bodies[s]))

        # two readers whose reports overlap: some read transaction always pins the WAL, so SQLite's own
        # checkpoints can never start it over (how a busy dashboard let it grow to 632 MB)
        helpers = [threading.Thread(target=watch), threading.Thread(target=read), threading.Thread(target=read)]
        senders = [threading.Thread(target=send, args=(s,)) for s in range(4)]
        for t in (*helpers, *senders):
            t.start()
        for t in senders:
            t.join()
        done.set()
        for t in helpers:
            t.join()
        stop.set()
        thread.join(30)
        assert statuses == [200] * (4 * per_sender)
        assert stored_counts(open_readonly(db))["spans"] == 4 * per_sender * spans
        written = os.path.getsize(db)
        assert written > 20 * limit  # far more went through the WAL than its bound
        # the limit plus one transaction's pages: a group (at most 4 requests of 400 spans here) or a merge of
        # span keys, each well under 1 MiB (checked between them: group then merge reached 2.1 MiB in CI);
        # without the writer's checkpoints this run's WAL passed 5 MiB, and it grows with the data
        assert peak[0] <= limit + 2**20, f"WAL peaked at {peak[0] / 2**20:.1f} MiB"


class TestFlattenText:
    def test_cached_and_written_out_text_is_canonical_json(self) -> None:
        """Attribute maps (remembered across points) and exponential buckets (written without the encoder)
        are the canonical JSON text: a bool and an int of the same value stay distinct."""
        import json

        from opentelemetry.proto.metrics.v1 import metrics_pb2

        from otel_expansion.backend.ingest import flatten

        from .conftest import kvs, metrics_request

        points = []
        for attrs in ({"flag": True}, {"flag": 1}, {"flag": True}):
            point = metrics_pb2.ExponentialHistogramDataPoint(
                attributes=kvs(attrs), start_time_unix_nano=1, time_unix_nano=2, count=4, sum=-1.0, scale=3,
                zero_count=1)
            point.positive.offset, point.negative.offset = -7, 2
            point.positive.bucket_counts.extend([1, 0, 1])
            point.negative.bucket_counts.extend([1])
            points.append(point)
        metric = metrics_pb2.Metric(name="m", exponential_histogram=metrics_pb2.ExponentialHistogram(
            data_points=points, aggregation_temporality=1))
        rows = flatten("metrics", metrics_request((LINUX, [metric])))[0].points
        assert [r.attributes for r in rows] == ['{"flag":true}', '{"flag":1}', '{"flag":true}']
        meta = {"scale": 3, "zero_count": 1, "offset": -7, "negative_offset": 2, "negative_counts": [1]}
        assert rows[0].bounds == json.dumps(meta, sort_keys=True, separators=(",", ":"))
        assert rows[0].bucket_counts == "[1,0,1]"


class TestRolledAhead:
    """What a decoding worker prepares (digest, cuts, rollup) stores exactly what the writer alone stores."""

    @staticmethod
    def _ahead(todo: list[tuple[str, list[ResourceData], str | None]], limits: Limits, pack: bool = False) -> list[
            tuple[str, list[ResourceData], str | None]]:
        import copy

        from otel_expansion.backend.decoding import prepare_resources

        out = [(s, prepare_resources(copy.deepcopy(r), limits, b is not None), b) for s, r, b in todo]
        for _, resources, _ in out if pack else ():
            for resource in resources:
                resource.pack()
        return out

    @pytest.mark.parametrize("pack", [False, True], ids=["named", "packed"])
    @pytest.mark.parametrize("limits", [Limits(), Limits(value_chars=6, distinct_values=2)], ids=["plain", "cut"])
    def test_prepared_requests_store_the_same_tables(self, tmp_path: Path, limits: Limits, pack: bool) -> None:
        """Rollups, sessions, limits counts, raw rows: equal with and without the worker's preparation, also
        when values are cut and dimensions overflow to (other) (the writer then rolls the entry itself), and
        with the rows packed as a worker hands them over, also when some of a request's spans are already
        stored (the writer then reads which from the named rows) and when one sampled span stands for 4."""
        import copy

        from otel_expansion.backend.ingest import flatten
        from otel_expansion.backend.store import Store

        from .conftest import STATUS, ns
        from .test_group_commit import requests, same, snapshot

        todo = requests()
        again = [copy.deepcopy(r) for s, r, b in todo if b == "sp-2"]  # all three spans already stored
        mixed = [span("status", {**STATUS, "session.id": "s-1"}, ns(5, 3), ns(5, 3) + 10**9, 103, j) for j in (2, 7)]
        sampled = span("status", {**STATUS, "session.id": "s-9"}, ns(5, 9), ns(5, 9) + 10**9, 909, 1)
        sampled.trace_state = "ot=th:c"  # kept with probability 1/4: it stands for 4 commands
        todo += [("traces", again[0], None), ("traces", again[0], "sp-2-again"),
                 ("traces", flatten("traces", traces_request((LINUX, mixed))), "mixed"),
                 ("traces", flatten("traces", traces_request((LINUX, [sampled]))), None)]
        ahead = self._ahead(todo, limits, pack)
        assert any(r.rolled is not None for _, rs, _ in ahead for r in rs)
        if pack:
            assert all(r.packed is not None and not r.spans for _, rs, _ in ahead for r in rs)
            assert any(r.packed is not None and r.packed.point_rows for _, rs, _ in ahead for r in rs)
        with Store(tmp_path / "writer.sqlite", limits) as store:
            expected = store.write_group([copy.deepcopy(r) for r in todo])  # each as if decoded anew
        with Store(tmp_path / "ahead.sqlite", limits) as store:
            got = store.write_group(ahead[:7]) + store.write_group(ahead[7:])
        assert got == expected
        same(snapshot(tmp_path / "ahead.sqlite"), snapshot(tmp_path / "writer.sqlite"))
        if limits.distinct_values == 2:  # the limits did cut and overflow (else this case proves nothing)
            cut = {row[1] for row in snapshot(tmp_path / "ahead.sqlite")["limits"]}
            assert any("distinct" in what for what in cut) and any("truncated" in what for what in cut), cut

    def test_another_writer_between_groups_is_not_overwritten(self, tmp_path: Path) -> None:
        """The writer's remembered exponential rows are dropped when another connection wrote: no merge lost."""
        import copy

        from otel_expansion.backend.store import Store

        from .test_group_commit import requests, same, snapshot

        exp = next(r for r in requests() if r[2] == "exp-0")
        todo = self._ahead([(exp[0], copy.deepcopy(exp[1]), f"exp-{i}") for i in range(3)], Limits())
        once = Store(tmp_path / "one.sqlite")
        first, second = Store(tmp_path / "two.sqlite"), Store(tmp_path / "two.sqlite")
        try:
            for request, store in zip(todo, (first, second, first), strict=True):
                once.write(*request)
                store.write(*request)  # the first store's rows are stale after the second one's write
        finally:
            once.close()
            first.close()
            second.close()
        same(snapshot(tmp_path / "two.sqlite"), snapshot(tmp_path / "one.sqlite"))
