"""The SQLite spool: merging, batches, bounds, permissions and fault handling, on real files."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM, HISTOGRAM, SUM, MetricPoint, SeriesKey, SpanRecord
from otel_expansion.spool import schema
from otel_expansion.spool.store import Spool, SpoolUnavailable

RESOURCE = (("service.name", "tool"), ("service.version", "1.2.3"), ("os.type", "linux"))
SCOPE = ("otel_expansion", "0.1.0")
BOUNDS = (0.01, 0.1, 1.0, 10.0)


def sum_key(name: str = "cli.command.invocations", cmd: str = "build") -> SeriesKey:
    return SeriesKey(RESOURCE, *SCOPE, name, SUM, unit="{invocation}", attributes=(("cli.command", cmd),))


def hist_key(cmd: str = "build") -> SeriesKey:
    return SeriesKey(
        RESOURCE,
        *SCOPE,
        "cli.command.duration",
        HISTOGRAM,
        unit="s",
        attributes=(("cli.command", cmd),),
        bounds=BOUNDS,
    )


def now_ns() -> int:
    return time.time_ns()


def counter(value: float, key: SeriesKey | None = None, t: int | None = None) -> MetricPoint:
    t = now_ns() if t is None else t
    return MetricPoint(key or sum_key(), t - 1000, t, value=value)


def observation(seconds: float, key: SeriesKey | None = None, t: int | None = None) -> MetricPoint:
    t = now_ns() if t is None else t
    buckets = [0] * (len(BOUNDS) + 1)
    buckets[sum(1 for b in BOUNDS if seconds > b)] = 1
    return MetricPoint(
        key or hist_key(),
        t - 1000,
        t,
        count=1,
        sum=seconds,
        min=seconds,
        max=seconds,
        bucket_counts=tuple(buckets),
    )


def span(payload: bytes = b"span", t: int | None = None) -> SpanRecord:
    return SpanRecord(RESOURCE, *SCOPE, payload, now_ns() if t is None else t)


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "spool.sqlite"


@pytest.fixture
def spool(spool_path: Path) -> Iterator[Spool]:
    s = Spool.open(spool_path)
    yield s
    s.close()


def cmd_of(point: MetricPoint) -> str:
    return str(dict(point.key.attributes)["cli.command"])


def by_name(points: list[MetricPoint]) -> dict[tuple[str, str], MetricPoint]:
    return {(p.key.name, cmd_of(p)): p for p in points}


class TestMerging:
    def test_ten_thousand_adds_leave_one_row_per_series_with_exact_totals(self, spool: Spool) -> None:
        """10,000 adds of a few keys leave a handful of rows whose totals equal what was added."""
        cmds = ("build", "test", "lint")
        for i in range(10_000):
            cmd = cmds[i % 3]
            spool.add([counter(1.0, sum_key(cmd=cmd)), observation(0.05 * (i % 7), hist_key(cmd))])
        stats = spool.stats()
        assert stats.series == 6
        points = by_name(spool.pending()[0])
        for j, cmd in enumerate(cmds):
            n = len(range(j, 10_000, 3))
            assert points[("cli.command.invocations", cmd)].value == n
            hist = points[("cli.command.duration", cmd)]
            assert hist.count == n
            assert sum(hist.bucket_counts) == n
            expected_sum = math.fsum(0.05 * (i % 7) for i in range(j, 10_000, 3))
            assert hist.sum == pytest.approx(expected_sum, rel=1e-9)
            assert hist.min == 0.0
            assert hist.max == pytest.approx(0.3)

    def test_points_of_one_call_merge_before_writing(self, spool: Spool) -> None:
        """Several points of one key in one add become one row holding their merge."""
        t = now_ns()
        spool.add([counter(2.0, t=t), counter(3.0, t=t + 5), counter(4.0, t=t - 5)])
        (point,), _ = spool.pending()
        assert point.value == 9.0
        assert point.start_ns == t - 5 - 1000
        assert point.time_ns == t + 5

    def test_distinct_resources_and_attributes_are_distinct_series(self, spool: Spool) -> None:
        """A different resource or attribute value makes a separate row, not a merge."""
        other_resource = SeriesKey((("service.name", "other"),), *SCOPE, "cli.command.invocations", SUM)
        spool.add([counter(1.0), counter(1.0, sum_key(cmd="x")), counter(1.0, other_resource)])
        spool.add([counter(1.0), counter(1.0, other_resource)])
        points = spool.pending()[0]
        assert sorted(p.value for p in points) == [1.0, 2.0, 2.0]
        assert {p.key for p in points} == {sum_key(), sum_key(cmd="x"), other_resource}

    def test_spans_are_kept_individually(self, spool: Spool) -> None:
        """Spans never merge: each one comes back with its bytes, scope and resource."""
        payloads = [f"span-{i}".encode() for i in range(25)]
        for p in payloads:
            spool.add(spans=[span(p)])
        spool.add(spans=[span(b"same"), span(b"same")])
        _, spans = spool.pending()
        assert [s.data for s in spans] == [*payloads, b"same", b"same"]
        assert all(s.resource == RESOURCE and (s.scope_name, s.scope_version) == SCOPE for s in spans)
        assert spool.stats().spans == 27

    def test_histogram_extremes_and_nan_round_trip(self, spool: Spool) -> None:
        """Infinite defaults survive storage, and NaN (stored by SQLite as NULL) reads back as NaN."""
        t = now_ns()
        spool.add([MetricPoint(hist_key(), t, t, count=0, bucket_counts=())])
        spool.add([MetricPoint(sum_key(), t, t, value=math.nan)])
        points = by_name(spool.pending()[0])
        empty = points[("cli.command.duration", "build")]
        assert (empty.min, empty.max, empty.bucket_counts) == (math.inf, -math.inf, ())
        assert math.isnan(points[("cli.command.invocations", "build")].value)
        spool.add([observation(0.5)])  # empty buckets merge as zeros with a real observation
        merged = by_name(spool.pending()[0])[("cli.command.duration", "build")]
        assert (merged.count, merged.min, merged.max, merged.bucket_counts) == (1, 0.5, 0.5, (0, 0, 1, 0, 0))

    def test_malformed_points_are_dropped_and_counted(self, spool: Spool) -> None:
        """Buckets that do not fit the bounds, or unencodable attributes, are counted, not stored."""
        bad_buckets = MetricPoint(hist_key(), 0, now_ns(), count=1, bucket_counts=(1, 0))
        bad_attr = counter(1.0, SeriesKey(RESOURCE, *SCOPE, "x", SUM, attributes=(("k", object()),)))  # type: ignore[arg-type]
        spool.add([bad_buckets, bad_attr, counter(1.0)])
        assert [p.value for p in spool.pending()[0]] == [1.0]
        assert spool.counters()["dropped.invalid"] == 2


class TestBatches:
    def test_lifecycle_reserve_then_ack(self, spool: Spool) -> None:
        """next_batch reserves pending rows; ack deletes exactly them."""
        spool.add([counter(1.0), observation(0.2)], [span(b"a"), span(b"b")])
        batch = spool.next_batch()
        assert batch is not None
        assert batch.attempts == 1 and len(batch.id) == 32
        assert len(batch.points) == 2 and [s.data for s in batch.spans] == [b"a", b"b"]
        assert spool.stats().batches == 1
        spool.ack(batch.id)
        stats = spool.stats()
        assert (stats.series, stats.spans, stats.batches) == (0, 0, 0)
        assert spool.next_batch() is None

    def test_next_batch_is_none_when_nothing_pending(self, spool: Spool) -> None:
        """An empty spool yields no batch and creates none."""
        assert spool.next_batch() is None
        assert spool.stats().batches == 0

    def test_retry_returns_same_batch_with_more_attempts(self, spool: Spool) -> None:
        """An unacknowledged batch comes back first, same id and contents, attempts incremented."""
        spool.add([counter(5.0)], [span(b"x")])
        first = spool.next_batch()
        spool.add([counter(7.0)], [span(b"y")])
        second = spool.next_batch()
        third = spool.next_batch()
        assert first is not None and second is not None and third is not None
        assert first.id == second.id == third.id
        assert (first.attempts, second.attempts, third.attempts) == (1, 2, 3)
        assert [p.value for p in third.points] == [5.0] and [s.data for s in third.spans] == [b"x"]

    def test_retry_survives_reopening(self, spool_path: Path) -> None:
        """A batch reserved by a process that died is retried by the next one with the same id."""
        with Spool.open(spool_path) as s:
            s.add([counter(1.0)])
            batch = s.next_batch()
        with Spool.open(spool_path) as s:
            again = s.next_batch()
        assert batch is not None and again is not None
        assert (again.id, again.attempts) == (batch.id, 2)

    def test_points_added_in_flight_go_to_new_open_row(self, spool: Spool) -> None:
        """Points arriving while a batch is out start a new row; acking the batch does not lose them."""
        spool.add([counter(1.0), observation(0.5)])
        batch = spool.next_batch()
        assert batch is not None
        spool.add([counter(2.0), observation(2.0)])
        spool.add([counter(3.0)])
        assert spool.stats().series == 4
        spool.ack(batch.id)
        points = by_name(spool.pending()[0])
        assert points[("cli.command.invocations", "build")].value == 5.0
        assert points[("cli.command.duration", "build")].count == 1
        assert points[("cli.command.duration", "build")].bucket_counts == (0, 0, 0, 1, 0)

    def test_release_merges_back_into_new_open_row(self, spool: Spool) -> None:
        """Releasing a batch whose series gained an open row merges the two, keeping the older position."""
        spool.add([counter(1.0, sum_key(cmd="a"))])
        spool.add([counter(1.0), observation(0.05)])
        batch = spool.next_batch()
        assert batch is not None
        spool.add([counter(10.0), observation(5.0), counter(1.0, sum_key(cmd="new"))])
        spool.release(batch.id)
        stats = spool.stats()
        assert (stats.series, stats.batches) == (4, 0)
        points = spool.pending()[0]
        assert [cmd_of(p) for p in points] == ["a", "build", "build", "new"]
        merged = by_name(points)
        assert merged[("cli.command.invocations", "build")].value == 11.0
        hist = merged[("cli.command.duration", "build")]
        assert (hist.count, hist.min, hist.max, hist.bucket_counts) == (2, 0.05, 5.0, (0, 1, 0, 1, 0))

    def test_release_then_smaller_batches(self, spool: Spool) -> None:
        """After a release the rows can be re-formed into smaller batches under new ids."""
        spool.add(
            [counter(1.0, sum_key(cmd=str(i))) for i in range(10)], [span(bytes([i])) for i in range(6)]
        )
        big = spool.next_batch()
        assert big is not None and len(big.points) == 10 and len(big.spans) == 6
        spool.release(big.id)
        sizes = []
        while (b := spool.next_batch(max_spans=4, max_points=4)) is not None:
            assert b.id != big.id and b.attempts == 1
            sizes.append((len(b.points), len(b.spans)))
            spool.ack(b.id)
        assert sizes == [(4, 4), (4, 2), (2, 0)]

    def test_next_batch_takes_oldest_first_within_limits(self, spool: Spool) -> None:
        """Batches take open rows oldest first and never more than the limits."""
        for i in range(5):
            spool.add([counter(1.0, sum_key(cmd=f"c{i}"))], [span(f"s{i}".encode())])
        batch = spool.next_batch(max_spans=2, max_points=3)
        assert batch is not None
        assert [cmd_of(p) for p in batch.points] == ["c0", "c1", "c2"]
        assert [s.data for s in batch.spans] == [b"s0", b"s1"]

    def test_drop_deletes_and_counts(self, spool: Spool) -> None:
        """drop removes the batch's rows and counts them under dropped.<reason>."""
        spool.add([counter(1.0), observation(0.1)], [span(), span(), span()])
        batch = spool.next_batch()
        assert batch is not None
        assert spool.drop(batch.id, "rejected") == 5
        assert spool.counters()["dropped.rejected"] == 5
        assert spool.stats().series == 0
        assert spool.drop(batch.id, "rejected") == 0
        assert spool.counters()["dropped.rejected"] == 5


class TestSourceIds:
    def test_seen_reports_ingested_ids(self, spool: Spool) -> None:
        """seen() returns exactly the journal record ids stored by earlier adds."""
        spool.add([counter(1.0)], source_ids=["r1", "r2"])
        spool.add(source_ids=["r3"])
        assert spool.seen(["r1", "r3", "r4"]) == {"r1", "r3"}
        assert spool.seen([]) == set()
        assert spool.seen([f"x{i}" for i in range(1200)] + ["r2"]) == {"r2"}

    def test_add_with_an_already_ingested_id_is_skipped_whole(self, spool: Spool) -> None:
        """Replaying a record already ingested changes nothing and is counted as a duplicate."""
        spool.add([counter(1.0)], [span()], source_ids=["r1"])
        spool.add([counter(1.0)], [span()], source_ids=["r1", "r2"])
        assert spool.pending()[0][0].value == 1.0
        assert spool.stats().spans == 1
        assert spool.seen(["r2"]) == set()
        assert spool.counters()["dropped.duplicate"] == 2


class TestFiles:
    @pytest.mark.parametrize("umask", [0o000, 0o277])
    def test_private_permissions_whatever_the_umask(self, tmp_path: Path, umask: int) -> None:
        """Directories are created 0700 and the file, -wal and -shm 0600, even under odd umasks."""
        path = tmp_path / "a" / "b" / "spool.sqlite"
        old = os.umask(umask)
        try:
            with Spool.open(path) as s:
                s.add([counter(1.0)])
                modes = {
                    name: stat.S_IMODE(os.stat(f"{path}{name}").st_mode) for name in ("", "-wal", "-shm")
                }
                assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
        finally:
            os.umask(old)
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path.parent.parent).st_mode) == 0o700

    def test_existing_loose_file_is_tightened(self, tmp_path: Path) -> None:
        """A spool file found with group/other bits is made 0600 before use."""
        path = tmp_path / "spool.sqlite"
        path.touch()
        path.chmod(0o644)
        Spool.open(path).close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_wal_mode_and_schema_version(self, spool: Spool, spool_path: Path) -> None:
        """The file is in WAL mode and stamped with the current schema version."""
        spool.add([counter(1.0)])
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION

    def test_newer_schema_is_left_alone(self, spool_path: Path) -> None:
        """A file from a newer version makes open raise SpoolUnavailable without touching it."""
        Spool.open(spool_path).close()
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
            conn.commit()
        with pytest.raises(SpoolUnavailable, match="newer"):
            Spool.open(spool_path)
        assert [p.name for p in spool_path.parent.iterdir() if "corrupt" in p.name] == []

    def test_a_previous_release_spool_gains_the_additions_and_keeps_its_rows(self, spool_path: Path) -> None:
        """A spool of format 1.0 (0.2.x: no ``stored_ns``, no ``meta``) is upgraded in place: its rows stay,
        the major version stays (so 0.2.x still opens it), and ``meta`` records the format and the writer."""
        spool_path.parent.mkdir(parents=True)
        with contextlib.closing(sqlite3.connect(spool_path, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            schema.migrate(conn)  # exactly what 0.2.x creates
            conn.execute("INSERT INTO resources (id, hash, attrs) VALUES (1, x'00', ?)", (schema.encode_attrs(()),))
            conn.execute("INSERT INTO spans (resource_id, scope_name, scope_version, data, end_ns, bytes) "
                         "VALUES (1, 's', '1', x'01', 5, 1)")
        with Spool.open(spool_path) as s:
            assert s.pending()[1][0].data == b"\x01"
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 1
            assert dict(conn.execute("SELECT key, value FROM meta")) == {"format": schema.FORMAT,
                                                                          "written_by": "0.3.0"}
            assert schema.has_column(conn, "spans", "stored_ns")
            # what 0.2.x writes into it still works (it names its columns)
            conn.execute("INSERT INTO spans (resource_id, scope_name, scope_version, data, end_ns, bytes) "
                         "VALUES (1, 's', '1', x'02', 6, 1)")
            conn.commit()
        with Spool.open(spool_path) as s:
            assert [sp.data for sp in s.pending()[1]] == [b"\x01", b"\x02"]

    def test_a_newer_minor_format_is_kept(self, spool_path: Path) -> None:
        """A file whose meta says a newer minor format (a later release's additions) is used as is and its
        format mark is not lowered."""
        Spool.open(spool_path).close()
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            conn.execute("UPDATE meta SET value = '1.99' WHERE key = 'format'")
            conn.commit()
        with Spool.open(spool_path) as s:
            s.add([counter(1.0)])
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0] == "1.99"

    def test_migrations_run_once_and_in_order(self, tmp_path: Path) -> None:
        """migrate applies only missing steps, each under the version it produces."""
        steps = (("CREATE TABLE a (x)",), ("CREATE TABLE b (x)", "INSERT INTO b VALUES (1)"))
        with contextlib.closing(sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)) as conn:
            assert schema.migrate(conn, steps[:1]) == 1
            assert schema.migrate(conn, steps) == 2
            assert schema.migrate(conn, steps) == 2
            assert conn.execute("SELECT count(*) FROM b").fetchone()[0] == 1
            with pytest.raises(schema.SchemaError):
                schema.migrate(conn, steps[:1])

    def test_failed_migration_rolls_back(self, tmp_path: Path) -> None:
        """A migration that fails midway leaves neither its tables nor a bumped version."""
        steps = (("CREATE TABLE a (x)", "CREATE TABLE a (y)"),)
        with contextlib.closing(sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)) as conn:
            with pytest.raises(sqlite3.OperationalError):
                schema.migrate(conn, steps)
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


class TestBounds:
    def test_size_cap_drops_oldest_spans_first_and_counts(self, tmp_path: Path) -> None:
        """Over the cap, the oldest spans go first (series survive), down to ~90 %, every drop counted."""
        cap = 256 * 1024
        with Spool.open(tmp_path / "spool.sqlite", max_bytes=cap) as s:
            s.add([counter(1.0)])
            for i in range(400):
                s.add(spans=[span(i.to_bytes(4, "big") + os.urandom(1000))])
            stats = s.stats()
            _, kept = s.pending(limit=10_000)
            used = self_used_bytes(tmp_path / "spool.sqlite")
        dropped = stats.counters["dropped.size"]
        assert dropped > 0
        assert stats.spans + dropped == 400
        assert stats.series == 1
        indices = [int.from_bytes(sp.data[:4], "big") for sp in kept]
        assert indices == list(range(400 - len(kept), 400))
        assert used <= cap + 20 * 4096  # the cap bounds pending data; one root page per table/index beside it

    def test_size_cap_then_drops_least_recent_open_series(self, tmp_path: Path) -> None:
        """With no spans left to drop, the series updated longest ago go, and are counted."""
        cap = 128 * 1024
        t0 = now_ns()
        with Spool.open(tmp_path / "spool.sqlite", max_bytes=cap) as s:
            for i in range(3000):
                s.add([counter(1.0, sum_key(cmd=f"{i:05d}" + "x" * 100), t=t0 + i)])
            stats = s.stats()
            points = s.pending(limit=10_000)[0]
        assert stats.counters["dropped.size"] == 3000 - stats.series
        assert 0 < stats.series < 3000
        kept = sorted(int(cmd_of(p)[:5]) for p in points)
        assert kept == list(range(3000 - len(kept), 3000))

    def test_age_bound_deletes_and_counts_old_rows(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Rows the spool has held longer than max_age_s (on its own clock) are deleted and counted in
        dropped.age; the data's own timestamps do not decide (issue 24: a wrong clock is not an age)."""
        real = time.time_ns
        monkeypatch.setattr(time, "time_ns", lambda: real() - 2 * 3600 * 10**9)
        with Spool.open(tmp_path / "spool.sqlite", max_age_s=3600) as s:
            s.add([counter(1.0, sum_key(cmd="old"))], [span(b"old")])
            monkeypatch.setattr(time, "time_ns", real)
            s._next_age_check = 0  # white-box: the age check is due (it runs once a minute)
            s.add([counter(1.0, sum_key(cmd="new"))], [span(b"new")])
            points, spans = s.pending()
            assert [cmd_of(p) for p in points] == ["new"]
            assert [sp.data for sp in spans] == [b"new"]
            assert s.counters()["dropped.age"] == 2

    def test_old_timestamps_are_not_an_age(self, tmp_path: Path) -> None:
        """Data stamped long ago but stored now is kept (it may come from a run under a wrong clock)."""
        old = now_ns() - 2 * 3600 * 10**9
        with Spool.open(tmp_path / "spool.sqlite", max_age_s=3600) as s:
            s.add([counter(1.0, sum_key(cmd="old"), t=old)], [span(b"old", t=old)])
            s.add([counter(1.0, sum_key(cmd="new"))])
            assert (s.stats().series, s.stats().spans) == (2, 1)
            assert "dropped.age" not in s.counters()

    def test_age_bound_applies_to_existing_rows_on_reopen(self, spool_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """Old rows already in the file are removed by the first add of a spool with a shorter bound."""
        real = time.time_ns
        monkeypatch.setattr(time, "time_ns", lambda: real() - 3 * 3600 * 10**9)
        with Spool.open(spool_path) as s:
            s.add([counter(1.0)], [span()], source_ids=["old-record"])
        monkeypatch.setattr(time, "time_ns", real)
        with Spool.open(spool_path, max_age_s=3600) as s:
            s.add([counter(1.0, sum_key(cmd="new"))])
            stats = s.stats()
            assert (stats.series, stats.spans, stats.counters["dropped.age"]) == (1, 0, 2)

def self_used_bytes(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


class TestCorruption:
    def test_garbage_file_is_moved_aside(self, spool_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A non-SQLite file is renamed <name>.corrupt-<ts>, one warning logged, a fresh spool works."""
        spool_path.parent.mkdir(parents=True)
        garbage = os.urandom(8192)
        spool_path.write_bytes(garbage)
        with caplog.at_level(logging.WARNING, logger="otel_expansion.spool"):
            s = Spool.open(spool_path)
        try:
            records = [r for r in caplog.records if r.name == "otel_expansion.spool"]
            assert len(records) == 1 and "corrupt" in records[0].getMessage()
            (aside,) = spool_path.parent.glob("spool.sqlite.corrupt-*")
            assert aside.read_bytes() == garbage
            assert s.counters() == {"dropped.corrupt": 1}
            s.add([counter(1.0)])
            assert s.pending()[0][0].value == 1.0
        finally:
            s.close()

    def test_truncated_spool_is_moved_aside(self, spool_path: Path) -> None:
        """A real spool cut off mid-file fails its integrity check and is replaced by a fresh one."""
        with Spool.open(spool_path) as s:
            for i in range(300):
                s.add([counter(1.0, sum_key(cmd=str(i)))], [span(os.urandom(500))])
        size = spool_path.stat().st_size
        os.truncate(spool_path, size // 2)
        with Spool.open(spool_path) as s:
            stats = s.stats()
            # the 300 runs (one invocation each) and 600 rows it held, not "one" (issue 24, #2)
            assert (stats.series, stats.spans, stats.counters) == (
                0, 0, {"dropped.corrupt": 600, "dropped.corrupt_runs": 300})
        (aside,) = spool_path.parent.glob("spool.sqlite.corrupt-*")
        assert aside.stat().st_size == size // 2

    def test_leftover_wal_never_reaches_the_fresh_file(self, tmp_path: Path, spool_path: Path) -> None:
        """A valid WAL left beside a corrupt file is not replayed into its replacement."""
        Spool.open(tmp_path / "donor.sqlite").close()  # schema checkpointed into the file; page 1 stays there
        with Spool.open(tmp_path / "donor.sqlite") as donor:
            donor._conn.execute("PRAGMA wal_autocheckpoint = 0")  # type: ignore[union-attr]  # keep frames in the WAL
            donor.add([counter(1000.0, sum_key(cmd="donor"))], [span(b"donor")])
            wal = Path(f"{tmp_path / 'donor.sqlite'}-wal").read_bytes()
        assert len(wal) > 0
        spool_path.parent.mkdir(parents=True)
        spool_path.write_bytes(b"not a database" * 100)
        Path(f"{spool_path}-wal").write_bytes(wal)
        with Spool.open(spool_path) as s:
            s.add([counter(1.0)])
            points, spans = s.pending()
        assert [(cmd_of(p), p.value) for p in points] == [("build", 1.0)]
        assert spans == []
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real, size-limited filesystem (needs mount privileges)."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


class TestUnavailable:
    def test_read_only_directory(self, tmp_path: Path) -> None:
        """Opening in a read-only place raises only SpoolUnavailable, for a new or an existing file."""
        if os.geteuid() != 0:
            ro = tmp_path / "ro"
            ro.mkdir()
            Spool.open(ro / "existing.sqlite").close()
            ro.chmod(0o555)
            try:
                for name in ("existing.sqlite", "new.sqlite", "sub/new.sqlite"):
                    with pytest.raises(SpoolUnavailable):
                        Spool.open(ro / name)
            finally:
                ro.chmod(0o755)
            return
        with tmpfs(tmp_path / "ro", "1m") as ro:  # root ignores permission bits: use a read-only mount
            Spool.open(ro / "existing.sqlite").close()
            subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
            for name in ("existing.sqlite", "new.sqlite", "sub/new.sqlite"):
                with pytest.raises(SpoolUnavailable, match="Read-only"):
                    Spool.open(ro / name)

    def test_full_disk_on_a_tiny_filesystem(self, tmp_path: Path) -> None:
        """On a really full filesystem add rolls back and raises SpoolUnavailable; committed data stays."""
        with tmpfs(tmp_path / "tiny", "320k") as tiny:
            path = tiny / "spool.sqlite"
            committed = 0
            with Spool.open(path) as s, pytest.raises(SpoolUnavailable, match="full"):
                for i in range(10_000):
                    s.add([counter(1.0)], [span(i.to_bytes(4, "big") + os.urandom(2000))])
                    committed += 1
            with pytest.raises(SpoolUnavailable, match="full"):
                Spool.open(tiny / "other.sqlite")
            with Spool.open(path) as s:
                points, spans = s.pending(limit=100_000)
            assert committed > 0
            assert points[0].value == committed and len(spans) == committed
            with contextlib.closing(sqlite3.connect(path)) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    def test_full_database_via_max_page_count(self, spool: Spool) -> None:
        """SQLITE_FULL (forced with max_page_count, portable) rolls the whole add back."""
        spool.add([counter(1.0)])
        spool._conn.execute("PRAGMA max_page_count = 40")  # type: ignore[union-attr]  # white-box: force FULL
        with pytest.raises(SpoolUnavailable, match="full"):
            spool.add([counter(1.0)], [span(os.urandom(3000)) for _ in range(100)])
        points, spans = spool.pending()
        assert (points[0].value, len(spans)) == (1.0, 0)

    def test_closed_spool_raises_unavailable(self, spool_path: Path) -> None:
        """Every call on a closed spool raises SpoolUnavailable; close is idempotent."""
        s = Spool.open(spool_path)
        s.close()
        s.close()
        with pytest.raises(SpoolUnavailable):
            s.add([counter(1.0)])
        with pytest.raises(SpoolUnavailable):
            s.stats()

    def test_locked_past_busy_timeout(self, spool_path: Path) -> None:
        """A writer held up beyond the busy timeout gets SpoolUnavailable, not a raw sqlite error."""
        with Spool.open(spool_path, busy_timeout_ms=50) as s:
            blocker = sqlite3.connect(spool_path, isolation_level=None)
            try:
                blocker.execute("BEGIN IMMEDIATE")
                with pytest.raises(SpoolUnavailable, match="locked"):
                    s.add([counter(1.0)])
            finally:
                blocker.close()
            s.add([counter(1.0)])
            assert s.pending()[0][0].value == 1.0


class TestMisc:
    def test_counters_and_state(self, spool: Spool, spool_path: Path) -> None:
        """Counters accumulate and state values persist across handles."""
        spool.incr("export.attempts")
        spool.incr("export.attempts", 4)
        spool.set_state("backoff", "30")
        spool.set_state("backoff", "60")
        with Spool.open(spool_path) as other:
            assert other.counters() == {"export.attempts": 5}
            assert other.get_state("backoff") == "60"
            assert other.get_state("missing") is None

    def test_batch_scoped_state_goes_with_its_batch(self, spool: Spool) -> None:
        """State keys batch.<id>.* are deleted when that batch is acked, dropped or released; others stay."""
        spool.set_state("backoff.failures", "2")
        ids = []
        for finish in ("ack", "drop", "release"):
            spool.add([counter(1.0)])
            batch = spool.next_batch()
            assert batch is not None
            ids.append(batch.id)
            spool.set_state(f"batch.{batch.id}.done", "metrics")
            spool.set_state(f"batch.{batch.id}x.other", "kept")
            if finish == "ack":
                spool.ack(batch.id)
            elif finish == "drop":
                spool.drop(batch.id, "rejected")
            else:
                spool.release(batch.id)
            assert spool.get_state(f"batch.{batch.id}.done") is None
            assert spool.get_state(f"batch.{batch.id}x.other") == "kept"
        assert spool.get_state("backoff.failures") == "2"
        spool.clear()
        assert [spool.get_state(f"batch.{i}x.other") for i in ids] == [None, None, None]
        assert spool.get_state("backoff.failures") == "2"

    def test_stats(self, spool: Spool) -> None:
        """stats reports rows, batches, bytes on disk, the oldest timestamp and counters."""
        assert spool.stats().oldest_ns is None
        t = now_ns()
        spool.add([counter(1.0, t=t)], [span(t=t - 50), span(t=t)])
        spool.next_batch(max_spans=1, max_points=0)
        stats = spool.stats()
        assert (stats.series, stats.spans, stats.batches) == (1, 2, 1)
        assert stats.oldest_ns == t - 1000
        assert stats.bytes_on_disk >= spool.path.stat().st_size > 0

    def test_pending_is_read_only_and_limited(self, spool: Spool) -> None:
        """pending shows open and reserved rows up to the limit and changes nothing."""
        spool.add([counter(1.0, sum_key(cmd=str(i))) for i in range(5)], [span() for _ in range(5)])
        spool.next_batch(max_spans=2, max_points=2)
        points, spans = spool.pending(limit=3)
        assert (len(points), len(spans)) == (3, 3)
        assert spool.pending()[0] == spool.pending()[0]
        assert spool.stats().batches == 1

    def test_clear(self, spool: Spool) -> None:
        """clear removes all pending rows and batches, returning how many, and keeps counters."""
        spool.incr("export.attempts")
        spool.add([counter(1.0), observation(1.0)], [span()])
        spool.next_batch(max_points=1)
        assert spool.clear() == 3
        stats = spool.stats()
        assert (stats.series, stats.spans, stats.batches) == (0, 0, 0)
        assert stats.counters == {"export.attempts": 1}
        assert spool.next_batch() is None


def test_readonly_view_creates_no_side_files(tmp_path: Path) -> None:
    """status/show read through open_readonly: no WAL or shm file appears, even while it is open."""
    from otel_expansion.spool.store import Spool

    path = tmp_path / "spool.sqlite"
    Spool.open(path).close()
    before = sorted(p.name for p in tmp_path.iterdir())
    view = Spool.open_readonly(path)
    try:
        assert view.stats().series == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    finally:
        view.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


DAY = 86_400 * 10**9


def exp_key(cmd: str = "build") -> SeriesKey:
    return SeriesKey(RESOURCE, *SCOPE, "cli.command.duration", EXPONENTIAL_HISTOGRAM, unit="s",
                     attributes=(("cli.command", cmd),))


def exp_observation(seconds: float, t: int, cmd: str = "build") -> MetricPoint:
    """One exponential-histogram sample at scale 3 (bucket index floor(log2(v) * 8))."""
    index = math.floor(math.log2(seconds) * 8)
    return MetricPoint(exp_key(cmd), t - 1000, t, count=1, sum=seconds, min=seconds, max=seconds,
                       bucket_counts=(1,), scale=3, offset=index)


class TestDays:
    def test_a_series_keeps_one_row_per_utc_day_with_exact_day_totals(self, spool: Spool) -> None:
        """10,000 runs over 30 days: one row per series and day (bounded by series x days, not runs), each
        day's totals exactly that day's runs, every row's window inside its day (was: one row per series,
        from the first day to the last, filed by a backend under the last)."""
        first = now_ns() // DAY - 40
        expected: dict[int, int] = {}
        for i in range(10_000):
            day = first + (i * 7) % 30
            t = day * DAY + (i * 8_640_000_000) % DAY
            expected[day] = expected.get(day, 0) + 1
            spool.add([counter(1.0, t=t), exp_observation(0.05 + i % 5, t)])
        assert spool.stats().series == 2 * 30
        points = spool.pending(limit=1000)[0]
        runs: dict[int, float] = {}
        samples: dict[int, int] = {}
        for p in points:
            day = p.time_ns // DAY
            assert p.start_ns // DAY == day and p.start_ns <= p.time_ns
            if p.key.kind == SUM:
                runs[day] = runs.get(day, 0) + p.value
            else:
                samples[day] = samples.get(day, 0) + p.count
        assert runs == expected and samples == expected

    def test_a_point_across_midnight_is_filed_whole_on_the_day_it_ended(self, spool: Spool) -> None:
        """A long-running program's collection that straddled midnight: its window starts at midnight (the
        day before keeps its own row, windows never overlap), its counts go to the day it ended."""
        midnight = (now_ns() // DAY) * DAY
        spool.add([counter(2.0, t=midnight - 5 * 10**9)])
        spool.add([MetricPoint(sum_key(), midnight - 2 * 10**9, midnight + 2 * 10**9, value=3.0)])
        spool.add([counter(4.0, t=midnight + 10 * 10**9)])
        rows = sorted((p.start_ns, p.time_ns, p.value) for p in spool.pending()[0])
        assert rows == [(midnight - 5 * 10**9 - 1000, midnight - 5 * 10**9, 2.0),
                        (midnight, midnight + 10 * 10**9, 7.0)]

    def test_release_merges_back_within_each_day(self, spool: Spool) -> None:
        """Rows of a batch released after more points of the same days arrived merge back day by day."""
        day = now_ns() // DAY - 3
        spool.add([counter(1.0, t=day * DAY + 10), counter(1.0, t=(day + 1) * DAY + 10)])
        batch = spool.next_batch()
        assert batch is not None and len(batch.points) == 2
        spool.add([counter(5.0, t=day * DAY + 20), counter(7.0, t=(day + 1) * DAY + 20)])
        spool.release(batch.id)
        got = {p.time_ns // DAY: p.value for p in spool.pending()[0]}
        assert got == {day: 6.0, day + 1: 8.0} and spool.stats().series == 2


class TestKeptForNewerReleases:
    # release 0.2's statements that pick rows (otel_expansion/spool/store.py at 8963b28): the batch it forms,
    # the rows it expires and those it evicts over the size cap
    OLD_RELEASE_PICKS = (
        "SELECT id FROM series WHERE batch_id IS NULL ORDER BY id",
        "SELECT id FROM series WHERE time_ns < 1e30 AND batch_id IS NULL",
        "SELECT id FROM series WHERE batch_id IS NULL ORDER BY time_ns, id",
    )

    def _old_release_would_pick(self, path: Path) -> set[str]:
        """Keys of the rows 0.2 would send, expire or evict: open rows by its statements, and the rows of
        each batch it would retry (it loads a batch by its exact id: ``s.batch_id = ?``)."""
        with contextlib.closing(sqlite3.connect(path)) as conn:
            ids = [r[0] for sql in self.OLD_RELEASE_PICKS for r in conn.execute(sql)]
            for (batch_id,) in conn.execute("SELECT id FROM batches").fetchall():
                ids += [r[0] for r in conn.execute("SELECT id FROM series WHERE batch_id = ?", (batch_id,))]
            return {str(conn.execute("SELECT key FROM series WHERE id = ?", (i,)).fetchone()[0]) for i in ids}

    def test_exponential_rows_are_open_to_us_and_invisible_to_release_0_2(self, spool: Spool,
                                                                         spool_path: Path) -> None:
        """Open exponential rows are marked KEPT: 0.2 (which would send them as zero sums) never batches,
        expires or evicts them; this release batches, releases (back to KEPT) and sends them exactly."""
        t = now_ns()
        spool.add([counter(3.0, t=t), exp_observation(0.5, t), exp_observation(2.0, t)])
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            marks = sorted(str(r[0]) for r in conn.execute("SELECT batch_id FROM series"))
        assert marks == ["None", schema.KEPT]
        assert len(self._old_release_would_pick(spool_path)) == 1  # the sum only
        batch = spool.next_batch()
        assert batch is not None and sorted(p.key.kind for p in batch.points) == [EXPONENTIAL_HISTOGRAM, SUM]
        assert len(self._old_release_would_pick(spool_path)) == 1  # in flight too: the sum only
        spool.add([exp_observation(1.0, t)])  # arrives while the batch is in flight: a new KEPT row
        spool.release(batch.id)
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:
            marks = sorted(str(r[0]) for r in conn.execute("SELECT batch_id FROM series"))
        assert marks == ["None", schema.KEPT]
        assert len(self._old_release_would_pick(spool_path)) == 1
        (exp,) = [p for p in spool.pending()[0] if p.key.kind == EXPONENTIAL_HISTOGRAM]
        assert exp.count == 3 and exp.sum == 3.5 and (exp.min, exp.max) == (0.5, 2.0)

    def test_kept_rows_still_expire_and_count_here(self, tmp_path: Path) -> None:
        """The age bound of this release applies to KEPT rows like any open row (counted in dropped.age)."""
        path = tmp_path / "s" / "spool.sqlite"
        with Spool.open(path, max_age_s=3600) as s:
            s.add([exp_observation(0.5, now_ns())])
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("UPDATE series SET updated_ns = updated_ns - 7200 * 1000000000")
            conn.commit()
        with Spool.open(path, max_age_s=3600) as s:
            s.add([counter(1.0)])
            assert s.counters().get("dropped.age") == 1 and s.stats().series == 1

    def test_a_batch_the_old_release_acknowledged_leaves_its_histograms_to_us(self, spool: Spool,
                                                                              spool_path: Path) -> None:
        """A batch reserved here, retried and acknowledged by 0.2 after a downgrade (its statements, run on the
        file): 0.2 sent the sum only; the exponential rows of that batch come back open here and are sent
        once, merged with what arrived meanwhile."""
        t = now_ns()
        spool.add([counter(3.0, t=t), exp_observation(0.5, t)])
        batch = spool.next_batch()
        assert batch is not None and len(batch.points) == 2
        spool.add([exp_observation(2.0, t)])
        with contextlib.closing(sqlite3.connect(spool_path)) as conn:  # 0.2: load by exact id, send, ack
            sent = [r[0] for r in conn.execute("SELECT id FROM series WHERE batch_id = ?", (batch.id,))]
            assert len(sent) == 1
            conn.execute("DELETE FROM series WHERE batch_id = ?", (batch.id,))
            conn.execute("DELETE FROM batches WHERE id = ?", (batch.id,))
            conn.commit()
        again = spool.next_batch()
        assert again is not None and [p.key.kind for p in again.points] == [EXPONENTIAL_HISTOGRAM]
        (exp,) = again.points
        assert exp.count == 2 and exp.sum == 2.5
        spool.ack(again.id)
        assert spool.stats().series == 0

    def test_split_and_drop_keep_a_batchs_histograms_with_it(self, spool: Spool, spool_path: Path) -> None:
        """A 413 split moves the exponential rows into the parts (still invisible to 0.2); dropping a part
        deletes them with it."""
        t = now_ns()
        spool.add([counter(1.0, sum_key(cmd=c), t=t) for c in "abc"] + [exp_observation(0.5, t, c) for c in "abc"])
        batch = spool.next_batch()
        assert batch is not None and len(batch.points) == 6
        parts = spool.split(batch.id, "metrics")
        assert parts is not None
        picked = self._old_release_would_pick(spool_path)
        assert len(picked) == 3 and all("cli.command.invocations" in k for k in picked)  # the sums only
        first = spool.next_batch()
        assert first is not None and first.id == parts[0] and len(first.points) == 3
        assert spool.drop(first.id, "rejected") == 3
        second = spool.next_batch()
        assert second is not None and second.id == parts[1] and len(second.points) == 3
        spool.ack(second.id)
        assert spool.stats().series == 0 and spool.next_batch() is None
