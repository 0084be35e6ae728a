"""What the spool holds, kept beside it: so a spool that is lost (corrupt, truncated, replaced by
something else) is counted as the runs and items it held, not as "one" or, for a 0-byte file, nothing.

After every transaction that changes what is pending for runs (an ingest, an ack, a drop, a clear), the
handle writes ``<spool>.pending`` (atomically, 0600): ``runs=<n> items=<m>``. ``runs`` is the sum of the
pending ``cli.command.invocations`` points (one per command run: the unit people count), ``items`` the
pending rows. When the spool must be moved aside, what can still be read from it is counted; where it
cannot (random bytes, truncated to nothing), the last note is. The note can lag a crash by one transaction:
it is an estimate of a loss that already happened, never a reason to drop anything.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import suppress
from pathlib import Path

__all__ = ["Pending", "count_rows", "note_path", "read_note", "recover", "write_note"]

RUN_METRIC = b"cli.command.invocations"


class Pending:
    """Runs and items pending in one spool."""

    __slots__ = ("items", "runs")

    def __init__(self, runs: int, items: int) -> None:
        self.runs, self.items = max(0, int(runs)), max(0, int(items))

    def __repr__(self) -> str:
        return f"Pending(runs={self.runs}, items={self.items})"


def note_path(spool: Path) -> Path:
    return spool.with_name(spool.name + ".pending")


def count_rows(conn: sqlite3.Connection, not_indexed: bool = False) -> Pending:
    """Pending runs and items in an open spool (``not_indexed``: scan tables only, for damaged files)."""
    hint = " NOT INDEXED" if not_indexed else ""
    items = runs = 0
    for table in ("spans", "series"):
        with suppress(sqlite3.Error, TypeError, ValueError):
            items += int(conn.execute(f"SELECT count(*) FROM {table}{hint}").fetchone()[0])
    with suppress(sqlite3.Error, TypeError, ValueError):
        runs = int(conn.execute(f"SELECT coalesce(sum(value), 0) FROM series{hint} WHERE instr(key, ?) > 0",
                                (RUN_METRIC,)).fetchone()[0])
    return Pending(runs, items)


_NOTE_WIDTH = 64


def write_note(spool: Path, pending: Pending) -> None:
    """Record what the spool holds (best effort: a failure leaves the previous note).

    Updated in place, one fixed-width ``pwrite`` (never through a link, 0600): a temp file and a rename
    per transaction cost ~1 ms, ten times the transaction itself; a write this small within one block is
    seen whole by readers, and a torn one reads as no note (the loss is then counted from the file)."""
    from otel_expansion.config.paths import open_private

    data = f"runs={pending.runs} items={pending.items}".encode().ljust(_NOTE_WIDTH - 1) + b"\n"
    try:
        fd = open_private(str(note_path(spool)), os.O_RDWR | os.O_CREAT)
    except OSError:
        return
    try:
        os.pwrite(fd, data, 0) if hasattr(os, "pwrite") else os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_note(spool: Path) -> Pending | None:
    """The last note, or None when there is none (or it cannot be read)."""
    from otel_expansion.config.paths import read_small

    raw = read_small(str(note_path(spool)), 128)
    if not raw:
        return None
    values: dict[str, int] = {}
    for part in raw.decode("ascii", "replace").split():
        key, _, value = part.partition("=")
        with suppress(ValueError):
            values[key] = int(value)
    if "runs" not in values or "items" not in values:
        return None
    return Pending(values["runs"], values["items"])


def recover(aside: Path | None, spool: Path) -> Pending:
    """What a spool moved aside (at ``aside``) held: the larger of what can still be read from it and the
    last note. At least one item when nothing at all is known (something was lost)."""
    found = Pending(0, 0)
    if aside is not None and os.path.isfile(aside):
        with suppress(sqlite3.Error):
            from urllib.parse import quote

            conn = sqlite3.connect(f"file:{quote(str(aside))}?mode=ro&immutable=1", uri=True)
            try:
                found = count_rows(conn, not_indexed=True)
            finally:
                conn.close()
    note = read_note(spool)
    runs = max(found.runs, note.runs if note else 0)
    items = max(found.items, note.items if note else 0, 1 if runs else 0)
    if items == 0 and note is None:
        items = 1  # nothing readable and no note: at least one item was lost
    return Pending(runs, items)
