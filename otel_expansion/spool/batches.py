"""The spool's batch side: forming, retrying, acknowledging, dropping, releasing and splitting batches."""

from __future__ import annotations

import os
import sqlite3
import time

from otel_expansion.otlp.model import Batch, MetricPoint
from otel_expansion.spool import schema
from otel_expansion.spool.core import _SERIES_COLUMNS, OPEN, SpoolCore, _chunks, _point_values
from otel_expansion.spool.merge import merge


class SpoolBatches(SpoolCore):
    """The single consumer's side: batches out, acks and drops in."""

    # ---------------------------------------------------------------------------------------- batches

    def next_batch(self, max_spans: int = 512, max_points: int = 2048) -> Batch | None:
        """The oldest reserved batch again (same id, attempts + 1), else a new one of the oldest open rows.

        The limits apply when a batch is formed; a retried batch comes back whole (``release`` it to re-form
        smaller ones). Meant for one consumer at a time (the sender holds its own lock); producers may add
        meanwhile.
        """
        with self._write() as conn:
            while True:
                row = conn.execute(
                    "SELECT id, created_ns, attempts FROM batches ORDER BY created_ns, id LIMIT 1"
                ).fetchone()
                if row is None:
                    break
                batch_id, created_ns, attempts = str(row[0]), int(row[1]), int(row[2])
                batch = self._load_batch(conn, batch_id, created_ns, attempts + 1)
                if batch is None:
                    self._forget_batch(conn, batch_id)
                    continue
                conn.execute("UPDATE batches SET attempts = ? WHERE id = ?", (batch.attempts, batch_id))
                return batch
            batch_id = os.urandom(16).hex()
            if not self._clock_synced:
                self._sync_clock(conn, time.time_ns())
            now = time.time_ns() + self._offset_ns  # the spool's clock (age limits are measured on it)
            reserved = conn.execute(
                "UPDATE spans SET batch_id = ? WHERE id IN "
                "(SELECT id FROM spans WHERE batch_id IS NULL ORDER BY id LIMIT ?)",
                (batch_id, max(0, int(max_spans))),
            ).rowcount
            self._adopt_orphans(conn)
            reserved += conn.execute(  # exponential (KEPT) rows under the id plus KEPT_SUFFIX: see schema
                "UPDATE series SET batch_id = CASE WHEN batch_id IS NULL THEN ? ELSE ? END WHERE id IN "
                f"(SELECT id FROM series WHERE {OPEN} ORDER BY id LIMIT ?)",
                (batch_id, batch_id + schema.KEPT_SUFFIX, max(0, int(max_points))),
            ).rowcount
            if reserved == 0:
                return None
            conn.execute("INSERT INTO batches (id, created_ns, attempts) VALUES (?, ?, 1)", (batch_id, now))
            return self._load_batch(conn, batch_id, now, 1)

    def _load_batch(
        self, conn: sqlite3.Connection, batch_id: str, created_ns: int, attempts: int
    ) -> Batch | None:
        """The batch's rows; undecodable rows are deleted and counted in ``dropped.corrupt``."""
        points, spans, bad_series, bad_spans = self._load(conn, "s.batch_id IN (?, ?)",
                                                          (batch_id, batch_id + schema.KEPT_SUFFIX))
        for table, bad in (("series", bad_series), ("spans", bad_spans)):
            for chunk in _chunks(bad):
                conn.execute(f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        if bad_series or bad_spans:
            self._incr(conn, "dropped.corrupt", len(bad_series) + len(bad_spans))
        if not points and not spans:
            return None
        return Batch(id=batch_id, created_ns=created_ns, attempts=attempts, points=points, spans=spans)

    def ack(self, batch_id: str) -> None:
        """The batch was delivered (2xx): forget its rows."""
        with self._write() as conn:
            self._delete_batch(conn, batch_id)
            self._pending_changed(conn)

    def drop(self, batch_id: str, reason: str) -> int:
        """Give up on a batch (e.g. a permanent 4xx); its rows are counted in ``dropped.<reason>``."""
        with self._write() as conn:
            n = self._delete_batch(conn, batch_id)
            if n:
                self._incr(conn, f"dropped.{reason}", n)
            self._pending_changed(conn)
            return n

    def release(self, batch_id: str) -> None:
        """Return a batch's rows to the open pool (e.g. after a 413, to re-form smaller batches)."""
        with self._write() as conn:
            self._reopen(conn, "r.batch_id IN (?, ?)", (batch_id, batch_id + schema.KEPT_SUFFIX))
            conn.execute("UPDATE spans SET batch_id = NULL WHERE batch_id = ?", (batch_id,))
            self._forget_batch(conn, batch_id)

    def _reopen(self, conn: sqlite3.Connection, where: str, params: tuple[str, ...]) -> None:
        """Reserved series rows matching ``where`` (on alias ``r``) back to the open pool: merged into their
        series' open row of the day if one arrived meanwhile (the older row's id kept), exponential ones
        (``KEPT_SUFFIX``) as ``KEPT``, the others as NULL."""
        clashes = conn.execute(
            "SELECT r.id, o.id FROM series r JOIN series o "
            f"ON o.key_hash = r.key_hash AND (o.batch_id IS NULL OR o.batch_id = '{schema.KEPT}') WHERE {where}",
            params,
        ).fetchall()
        for reserved_id, open_id in clashes:
            self._merge_rows(conn, int(reserved_id), int(open_id))
        conn.execute(f"UPDATE series AS r SET batch_id = CASE WHEN r.batch_id LIKE '%{schema.KEPT_SUFFIX}' THEN "
                     f"'{schema.KEPT}' ELSE NULL END WHERE {where}", params)

    def _adopt_orphans(self, conn: sqlite3.Connection) -> None:
        """Exponential rows of a batch that is gone (release 0.2 acknowledged or dropped the rest of a batch
        this release had reserved, see ``schema.KEPT_SUFFIX``) go back to the open pool: never sent by 0.2,
        they are sent once by this release. Called when a new batch is formed, i.e. none is left."""
        if conn.execute("SELECT EXISTS (SELECT 1 FROM batches)").fetchone()[0]:
            return
        self._reopen(conn, f"r.batch_id IS NOT NULL AND r.batch_id LIKE '%{schema.KEPT_SUFFIX}'", ())

    def split(self, batch_id: str, signal: str) -> tuple[str, str] | None:
        """Persist a 413 split: move the batch's rows of one signal ("metrics" or "traces") into two new
        batches of fixed content, in order; returns their ids, or None if fewer than two rows remain.

        Each part gets a derived id (``<id>.m1``/``<id>.m2`` for metrics, ``.t1``/``.t2`` for traces) that it
        keeps through every retry, and its rows never change (reserved rows are neither merged nor evicted
        alone), so a receiver that de-duplicates by (batch id, content) stores each part exactly once
        whatever the order of splits, resets and retries. The parts come after the batch in send order;
        the batch itself is forgotten once it holds no rows.
        """
        table = {"metrics": "series", "traces": "spans"}[signal]
        with self._write() as conn:
            row = conn.execute("SELECT created_ns FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return None
            kept = batch_id + schema.KEPT_SUFFIX
            ids = [int(r[0]) for r in conn.execute(
                f"SELECT id FROM {table} WHERE batch_id IN (?, ?) ORDER BY id", (batch_id, kept))]
            if len(ids) < 2:
                return None
            half = len(ids) // 2
            parts = (f"{batch_id}.{signal[0]}1", f"{batch_id}.{signal[0]}2")
            for part, members in zip(parts, (ids[:half], ids[half:]), strict=True):
                conn.execute("INSERT INTO batches (id, created_ns, attempts) VALUES (?, ?, 0)", (part, int(row[0])))
                for chunk in _chunks(members):
                    conn.execute(f"UPDATE {table} SET batch_id = CASE WHEN batch_id = ? THEN ? ELSE ? END "
                                 f"WHERE id IN ({','.join('?' * len(chunk))})",
                                 (kept, part + schema.KEPT_SUFFIX, part, *chunk))
            left = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM series WHERE batch_id IN (?, ?)) OR EXISTS (SELECT 1 FROM spans WHERE "
                "batch_id = ?)", (batch_id, kept, batch_id)).fetchone()[0]
            if not left:
                self._forget_batch(conn, batch_id)
            return parts

    def _merge_rows(self, conn: sqlite3.Connection, keep_id: int, other_id: int) -> None:
        """Fold row ``other_id`` into ``keep_id`` (same series) and delete it."""
        rows = {
            int(r[0]): r
            for r in conn.execute(
                f"SELECT {_SERIES_COLUMNS} FROM series s LEFT JOIN resources r ON r.id = s.resource_id "
                "WHERE s.id IN (?, ?)",
                (keep_id, other_id),
            )
        }
        decoded: dict[int, MetricPoint] = {}
        for row_id in (keep_id, other_id):
            try:
                decoded[row_id] = self._decode_point(rows[row_id])
            except (ValueError, EOFError, TypeError, KeyError):
                conn.execute("DELETE FROM series WHERE id = ?", (row_id,))  # unreadable: count the loss
                self._incr(conn, "dropped.corrupt", 1)
        if len(decoded) < 2:
            return
        p = merge(decoded[keep_id], decoded[other_id])
        conn.execute("DELETE FROM series WHERE id = ?", (other_id,))
        conn.execute(
            "UPDATE series SET start_ns = ?, time_ns = ?, value = ?, count = ?, sum = ?, min = ?, max = ?, "
            "buckets = ?, updated_ns = ? WHERE id = ?",
            (*_point_values(p), time.time_ns() + self._offset_ns, keep_id),
        )

