"""The spool's write side: ``add`` (one transaction per unit of work), ingest marks, and the size and age bounds."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Sequence

from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM, Attrs, MetricPoint, SeriesKey, SpanRecord
from otel_expansion.spool import schema
from otel_expansion.spool.core import (
    _AGE_CHECK_EVERY_NS,
    _GC_RESOURCES,
    _INSERT_SPAN,
    _SERIES_ROW_OVERHEAD,
    _SHRINK_TO,
    _SPAN_ROW_OVERHEAD,
    _UPSERT_KEPT,
    _UPSERT_SERIES,
    OPEN,
    SpoolCore,
    _chunks,
    _insert_rows,
    _point_values,
)
from otel_expansion.spool.merge import DAY_NS, merge, within_day


class SpoolWrites(SpoolCore):
    """``add`` and the bounds it enforces."""

    # ------------------------------------------------------------------------------------------ ingest

    def add(
        self,
        points: Sequence[MetricPoint] = (),
        spans: Sequence[SpanRecord] = (),
        source_ids: Sequence[str] = (),
        claim: Callable[[], bool] | None = None,
    ) -> bool:
        """Store one unit of work in one transaction; points merge into their series' open row.

        ``claim``, when given, is called once the write lock is held: returning False abandons the call
        with nothing written (a service hands its unfinished work to the journal at exit and must know
        whether it was stored). Returns whether the call went ahead.

        ``source_ids`` (journal record ids) are recorded in the same transaction; if any of them was
        already ingested the whole call is skipped (counted in ``dropped.duplicate``), so a record can never
        be counted twice even when two processes replay it at once. Malformed points (bucket counts that do
        not fit the bounds, attributes marshal cannot encode) are counted in ``dropped.invalid``.
        """
        if not points and not spans and not source_ids:
            return claim() if claim is not None else True
        merged: dict[tuple[SeriesKey, int], MetricPoint] = {}
        invalid = 0
        for p in points:
            explicit = p.key.kind != EXPONENTIAL_HISTOGRAM
            if p.bucket_counts and explicit and len(p.bucket_counts) != len(p.key.bounds) + 1:
                invalid += 1
                continue
            p = within_day(p)  # a series keeps one open row per UTC day: a merge never spans two days
            try:
                slot = (p.key, p.time_ns // DAY_NS)
                prev = merged.get(slot)
            except TypeError:  # an unhashable attribute value slipped past attrs_of
                invalid += 1
                continue
            merged[slot] = p if prev is None else merge(prev, p)
        series_rows: list[tuple[tuple[bytes, bytes], MetricPoint, bytes, bytes]] = []
        for (key, day), p in merged.items():
            try:
                kh, res_hash, res_blob, key_blob = self._key_parts(key)
            except (ValueError, TypeError):
                invalid += 1
                continue
            series_rows.append(((res_hash, res_blob), p, schema.day_key_hash(kh, day), key_blob))
        span_rows: list[tuple[tuple[bytes, bytes], SpanRecord]] = []
        last_resource: Attrs | None = None
        last_parts = (b"", b"")
        for s in spans:
            try:
                if s.resource is not last_resource:  # spans of one batch share one resource object
                    last_parts, last_resource = self._resource_parts(s.resource), s.resource
                span_rows.append((last_parts, s))
            except (ValueError, TypeError):
                invalid += 1
        ids = list(dict.fromkeys(source_ids))
        wall = time.time_ns()
        with self._write() as conn:
            if claim is not None and not claim():
                return False
            age_due = wall >= self._next_age_check
            if age_due or not self._clock_synced:
                self._sync_clock(conn, wall)
            now = wall + self._offset_ns  # stamps on the spool's clock, which a clock correction cannot jump
            if ids:
                if self._seen(conn, ids):
                    self._incr(conn, "dropped.duplicate", len(points) + len(spans))
                    return True
                conn.executemany(
                    "INSERT INTO ingested (source_id, at_ns) VALUES (?, ?)", [(i, now) for i in ids]
                )
            resource_ids: dict[bytes, int] = {}
            for upsert, exponential in ((_UPSERT_SERIES, False), (_UPSERT_KEPT, True)):
                conn.executemany(
                    upsert,
                    [
                        (
                            kh,
                            self._resource_id(conn, resource_ids, res),
                            key_blob,
                            *_point_values(p),
                            now,
                        )
                        for res, p, kh, key_blob in series_rows
                        if (p.key.kind == EXPONENTIAL_HISTOGRAM) is exponential
                    ],
                )
            span_values = []
            last_res: tuple[bytes, bytes] | None = None
            rid = 0
            for res, s in span_rows:
                if res is not last_res:
                    rid, last_res = self._resource_id(conn, resource_ids, res), res
                span_values.append((rid, s.scope_name, s.scope_version, s.data, s.end_ns, len(s.data), now))
            _insert_rows(conn, _INSERT_SPAN, span_values)
            if invalid:
                self._incr(conn, "dropped.invalid", invalid)
            self._enforce_bounds(conn, wall, age_due)
            self._pending_changed(conn)  # ~0.2 ms: a sender's chunk of records or a service's export interval
        return True

    @staticmethod
    def _resource_id(conn: sqlite3.Connection, known: dict[bytes, int], res: tuple[bytes, bytes]) -> int:
        """Row id of a resource inside the current transaction (never cached across transactions)."""
        res_hash, blob = res
        rid = known.get(res_hash)
        if rid is None:
            row = conn.execute("SELECT id FROM resources WHERE hash = ?", (res_hash,)).fetchone()
            if row is None:
                cur = conn.execute("INSERT INTO resources (hash, attrs) VALUES (?, ?)", (res_hash, blob))
                rid = int(cur.lastrowid or 0)
            else:
                rid = int(row[0])
            known[res_hash] = rid
        return rid

    @staticmethod
    def _seen(conn: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT source_id FROM ingested WHERE source_id IN ({marks})"
            found.update(str(r[0]) for r in conn.execute(sql, chunk))
        return found

    def seen(self, source_ids: Sequence[str]) -> set[str]:
        """The subset of ``source_ids`` already ingested (kept while their journal file may still exist)."""
        ids = list(dict.fromkeys(source_ids))
        if not ids:
            return set()
        return self._read(lambda conn: self._seen(conn, ids))

    def forget_sources(self, source_ids: Sequence[str]) -> None:
        """Drop the ingest marks of journal records whose files are gone: they can never be replayed.

        The marks only guard against replaying a record whose file survived its ingest (a crash between
        the spool commit and the file's deletion); keeping them longer costs space and guards nothing.
        """
        ids = list(dict.fromkeys(source_ids))
        if not ids:
            return
        with self._write() as conn:
            for chunk in _chunks(ids):
                conn.execute(f"DELETE FROM ingested WHERE source_id IN ({','.join('?' * len(chunk))})", chunk)

    def retain_sources(self, existing: Collection[str]) -> int:
        """Keep ingest marks only for ``existing`` journal record ids (call under the sender's lock, with
        the journal's current listing); returns how many marks were dropped."""
        keep = set(existing)
        with self._write() as conn:
            stale = [str(r[0]) for r in conn.execute("SELECT source_id FROM ingested") if str(r[0]) not in keep]
            for chunk in _chunks(stale):
                conn.execute(f"DELETE FROM ingested WHERE source_id IN ({','.join('?' * len(chunk))})", chunk)
        return len(stale)

    # ------------------------------------------------------------------------------------------ bounds

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _overhead_bytes(self, conn: sqlite3.Connection) -> int:
        """Bytes that are not pending data: one root page per table and index, and the ingest marks.

        The cap is about pending data: bookkeeping must never push telemetry out (issue 12).
        """
        roots = int(conn.execute("SELECT count(*) FROM sqlite_master WHERE rootpage > 0").fetchone()[0]) + 1
        n, id_bytes = conn.execute("SELECT count(*), coalesce(sum(length(source_id)), 0) FROM ingested").fetchone()
        # each mark is stored twice (table and at_ns index) with its key, ~24 bytes of headers, ~70 % full pages
        marks = (2 * int(id_bytes) + 40 * int(n)) * 10 // 7
        return roots * self._page_size + marks

    def _enforce_bounds(self, conn: sqlite3.Connection, wall: int, age_due: bool) -> None:
        if age_due:
            self._expire(conn, wall + self._offset_ns)
            self._next_age_check = wall + _AGE_CHECK_EVERY_NS
        used = self._used_bytes(conn)
        if used > self._max_bytes:
            overhead = self._overhead_bytes(conn)
            if used - overhead > self._max_bytes:
                self._shrink(conn, used - overhead, overhead)

    def _expire(self, conn: sqlite3.Connection, now: int) -> None:
        """Delete open rows stored longer ago than the age limit; a batch in flight goes whole or not at all.

        ``now`` and the stamps are on the spool's clock (:meth:`_sync_clock`): how long the spool has held
        a row, not the data's own timestamps, which a wrong clock at recording time puts anywhere.
        """
        cutoff = now - self._max_age_ns
        n = conn.execute("DELETE FROM spans WHERE (CASE WHEN stored_ns > 0 THEN stored_ns ELSE end_ns END) < ? "
                         "AND batch_id IS NULL", (cutoff,)).rowcount
        n += conn.execute(f"DELETE FROM series WHERE updated_ns < ? AND {OPEN}", (cutoff,)).rowcount
        for (batch_id,) in conn.execute("SELECT id FROM batches WHERE created_ns < ?", (cutoff,)).fetchall():
            n += self._delete_batch(conn, str(batch_id))
        conn.execute("DELETE FROM ingested WHERE at_ns < ?", (cutoff,))
        if n > 0:
            self._incr(conn, "dropped.age", n)
            conn.execute(_GC_RESOURCES)

    def _shrink(self, conn: sqlite3.Connection, used: int, overhead: int = 0) -> None:
        """Delete oldest open spans, then least recently updated open series, then (last resort) the oldest
        batches in flight whole, until under ~90 % of the cap.

        ``used`` is the pending data's share of the file (``overhead`` excluded). A reserved row is never
        deleted alone: a retry must resend exactly what its batch id stood for (the receiver de-duplicates
        by batch id and content).
        """
        target = int(self._max_bytes * _SHRINK_TO)
        dropped = 0
        queries = (
            (
                "spans",
                f"SELECT id, bytes + {_SPAN_ROW_OVERHEAD} FROM spans WHERE batch_id IS NULL ORDER BY id LIMIT 4096",
            ),
            (
                "series",
                f"SELECT id, length(key) + coalesce(length(buckets), 0) + {_SERIES_ROW_OVERHEAD} FROM series "
                f"WHERE {OPEN} ORDER BY time_ns, id LIMIT 4096",
            ),
        )
        for table, query in queries:
            while used > target:
                excess = used - target
                victims: list[int] = []
                freed = 0
                for row_id, size in conn.execute(query):
                    victims.append(int(row_id))
                    freed += int(size)
                    if freed >= excess:
                        break
                if not victims:
                    break
                for chunk in _chunks(victims):
                    marks = ",".join("?" * len(chunk))
                    conn.execute(f"DELETE FROM {table} WHERE id IN ({marks})", chunk)
                dropped += len(victims)
                used = self._used_bytes(conn) - overhead
        while used > target:
            row = conn.execute("SELECT id FROM batches ORDER BY created_ns, id LIMIT 1").fetchone()
            if row is None:
                break
            dropped += self._delete_batch(conn, str(row[0]))
            used = self._used_bytes(conn) - overhead
        if dropped:
            self._incr(conn, "dropped.size", dropped)
            conn.execute(_GC_RESOURCES)

