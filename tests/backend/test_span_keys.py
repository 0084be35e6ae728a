"""Schema 6's span keys: every span stored once per (start, trace id, span id) without a unique index on spans.

A store created at schema 6 keeps the keys in two levels: the spans above a merged mark (their keys held in
memory by the writer, read back from the table whenever they may be stale) and ``span_keys``, which they join
in sorted batches. These tests drive resends, merges, rolled-back requests, restarts and pruning against a
model (the set of distinct keys sent) and check the stored spans and session counts equal it exactly; and that
a store created before schema 6 keeps its unique index and its path.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from otel_expansion.backend import store as store_module
from otel_expansion.backend.decoding import prepare_packed
from otel_expansion.backend.ingest import PROTOBUF, flatten
from otel_expansion.backend.limits import Limits
from otel_expansion.backend.store import Store, WriteResult, prune, span_keys_kept

from .conftest import LINUX, STATUS, ns, span, traces_request

Key = tuple[int, int, int]  # (start, trace, span id) as the test builds them


def _request(keys: list[Key], session: str = "s-1") -> object:
    attrs = {**STATUS, "session.id": session}
    return traces_request((LINUX, [span("status", attrs, start, start + 10**9, trace, sid)
                                   for start, trace, sid in keys]))


def _stored(db: Path) -> tuple[int, int, int]:
    """(spans stored, distinct keys among them, commands counted in sessions)."""
    with sqlite3.connect(db) as conn:
        n, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT start_ns || trace_id || span_id) FROM spans").fetchone()
        commands = conn.execute("SELECT COALESCE(SUM(commands), 0) FROM sessions").fetchone()[0]
        counted = conn.execute("SELECT n FROM counters WHERE name = 'spans'").fetchone()
    assert counted is None or counted[0] == n  # the stored-row counter agrees with the table
    return n, distinct, commands


def test_new_store_has_no_unique_span_index(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        assert span_keys_kept(store._conn)
        assert not [row for row in store._conn.execute("PRAGMA index_list(spans)")]


@pytest.mark.parametrize("seed", range(6))
def test_resends_merges_rollbacks_and_restarts_store_each_span_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random requests drawn from a small pool of spans (so most are resent, in other batches, twice in one
    request, across merges), some grouped with a request that fails, the writer restarted now and then, through
    the decoding worker's packed rows and the named rows alike: the store holds each distinct span once and its
    sessions count each once."""
    rng = random.Random(seed)
    monkeypatch.setattr(store_module, "MERGE_SPANS", rng.choice([1, 3, 7, 20]))
    pool = [(ns(2, 1) + rng.randrange(3600) * 10**9, rng.randrange(1, 2**64), rng.randrange(1, 2**63))
            for _ in range(60)]
    db = tmp_path / "s.sqlite"
    sent: set[Key] = set()
    store = Store(db)
    try:
        for i in range(40):
            keys = rng.sample(pool, rng.randint(1, 8))
            if rng.random() < 0.3:
                keys.append(keys[0])  # the same span twice in one request
            message = _request(keys)
            if rng.random() < 0.5:
                resources = prepare_packed("traces", message.SerializeToString(), None, PROTOBUF, Limits(), True)
            else:
                resources = flatten("traces", message)
            batch = f"b-{i}" if rng.random() < 0.8 else None
            if rng.random() < 0.25:  # grouped with a request that fails after its spans were looked at
                bad_keys = rng.sample(pool, 3)
                bad = flatten("traces", traces_request(
                    (LINUX, [span("status", {**STATUS, "session.id": "s-1"}, s, s + 10**9, t, sid)
                             for s, t, sid in bad_keys]),
                    (LINUX, [span("x", {}, 2**64 - 1, 2**64 - 1, 2, 2)])))
                order = [("traces", bad, f"bad-{i}"), ("traces", resources, batch)]
                if rng.random() < 0.5:
                    order.reverse()
                results = store.write_group(order)
                assert sum(isinstance(r, OverflowError) for r in results) == 1
            else:
                store.write("traces", resources, batch)
            sent.update(keys)
            if rng.random() < 0.15:  # a restart: nothing but the file carries over
                store.close()
                store = Store(db)
    finally:
        store.close()
    assert _stored(db) == (len(sent), len(sent), len(sent))


def test_resent_span_dropped_from_either_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A span already in span_keys and one still in the recent level are both dropped when re-sent, one new span
    beside them stored; a restart in between changes nothing."""
    monkeypatch.setattr(store_module, "MERGE_SPANS", 2)
    a, b, c, d = ((ns(3, h), h, h) for h in (1, 2, 3, 4))
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        assert store.write("traces", flatten("traces", _request([a, b])), "t-1").spans == 2
        assert store.write("traces", flatten("traces", _request([c])), "t-2").spans == 1  # a, b merged first
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM span_keys").fetchone()[0] == 2
    with Store(db) as store:
        assert store.write("traces", flatten("traces", _request([a, c, d])), "t-3") == WriteResult(1, 0, 1, 0, 0)
        assert store.write("traces", flatten("traces", _request([b, d])), "t-4").spans == 0
    assert _stored(db) == (4, 4, 4)


def test_prune_deletes_from_both_levels_and_keeps_new_ids_above_the_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruning every span (the latest ids too) leaves the mark at the largest id left, so spans stored after it
    (ids counted again from there) are still recognised when re-sent; pruned spans re-sent are stored again, as a
    unique index's pruned entries were."""
    monkeypatch.setattr(store_module, "MERGE_SPANS", 3)
    old = [(ns(1, h), h, h) for h in range(1, 6)]
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        store.write("traces", flatten("traces", _request(old[:4])), "t-1")
        store.write("traces", flatten("traces", _request(old[4:])), "t-2")  # merges the first four
        with sqlite3.connect(db) as conn:
            assert prune(conn, ns(2))["spans"] == 5
            assert conn.execute("SELECT COUNT(*) FROM span_keys").fetchone()[0] == 0
        new = [(ns(4, h), 100 + h, h) for h in range(1, 4)]
        assert store.write("traces", flatten("traces", _request(new, "s-2")), "t-3").spans == 3
    with Store(db) as store:
        assert store.write("traces", flatten("traces", _request(new, "s-2")), "t-4").spans == 0
        assert store.write("traces", flatten("traces", _request(old[:1], "s-3")), "t-5").spans == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 4


def test_store_created_before_schema_six_keeps_its_unique_index(tmp_path: Path) -> None:
    """A schema-5 store (a unique index on spans) is upgraded to 6 without touching its spans and stores through
    INSERT OR IGNORE as before: a re-sent span is still stored once."""
    db = tmp_path / "s.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(store_module._SCHEMA.replace(
        "received_ns INTEGER NOT NULL\n);\nCREATE TABLE IF NOT EXISTS span_keys",
        "received_ns INTEGER NOT NULL, UNIQUE (start_ns, trace_id, span_id)\n);\nCREATE TABLE IF NOT EXISTS span_keys"))
    conn.execute("PRAGMA user_version = 5")
    conn.close()
    a, b = (ns(3, 1), 1, 1), (ns(3, 2), 2, 2)
    with Store(db) as store:
        assert not store._keyed
        assert store.write("traces", flatten("traces", _request([a])), "t-1").spans == 1
        assert store.write("traces", flatten("traces", _request([a, b])), "t-2").spans == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION == 6
        assert conn.execute("SELECT COUNT(*) FROM span_keys").fetchone()[0] == 0
    assert _stored(db) == (2, 2, 2)


def test_request_rolled_back_alone_takes_out_only_its_keys(tmp_path: Path) -> None:
    """A request that fails after its spans were looked at takes its keys back out of what the writer holds
    (no re-read of the recent level per failed request): its span is stored when sent again, the others stay
    duplicates."""
    a, c = (ns(3, 1), 1, 1), (ns(3, 2), 2, 2)
    bad = flatten("traces", traces_request(
        (LINUX, [span("status", {**STATUS, "session.id": "s-1"}, c[0], c[0] + 10**9, c[1], c[2])]),
        (LINUX, [span("x", {}, 2**64 - 1, 2**64 - 1, 9, 9)])))
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        store.write("traces", flatten("traces", _request([a])), "t-1")
        held = store._recent
        assert held is not None and len(held) == 1
        results = store.write_group([("traces", bad, "bad"), ("traces", flatten("traces", _request([a])), "t-2")])
        assert isinstance(results[0], OverflowError) and results[1] == WriteResult(1, 0, 0, 0, 0)
        assert store._recent is held and len(held) == 1
        assert store.write("traces", flatten("traces", _request([c, a])), "t-3").spans == 1
    assert _stored(db) == (2, 2, 2)


def test_failed_merge_keeps_the_group_and_both_levels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge runs in its own transaction after the group's: when it fails the group is still stored and
    answered as stored, the keys stay in the recent level, and the next merge moves them."""
    monkeypatch.setattr(store_module, "MERGE_SPANS", 1)
    real = store_module.merge_span_keys

    def failing(conn: sqlite3.Connection) -> None:
        real(conn)
        raise sqlite3.OperationalError("disk I/O error")

    a, b = (ns(3, 1), 1, 1), (ns(3, 2), 2, 2)
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        monkeypatch.setattr(store_module, "merge_span_keys", failing)
        assert store.write("traces", flatten("traces", _request([a])), "t-1").spans == 1
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM span_keys").fetchone()[0] == 0
        assert store.write("traces", flatten("traces", _request([a, b])), "t-2").spans == 1
        monkeypatch.setattr(store_module, "merge_span_keys", real)
        assert store.write("traces", flatten("traces", _request([b])), "t-3").spans == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM span_keys").fetchone()[0] == 2
    assert _stored(db) == (2, 2, 2)
