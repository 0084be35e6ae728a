"""A report engine over one OTLP request, on either backend: the embedded store (the request written
through ingest's flattening into a SQLite file) or ClickHouse (chDB with the exporter's DDL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def engine_for(engine_name: str, signal: str, request: Any, tmp_path: Path) -> Iterator[Any]:
    """``engine_name`` "embedded" or "clickhouse"; closed (with its database) on leaving."""
    if engine_name == "embedded":
        from otel_expansion.backend.ingest import flatten
        from otel_expansion.backend.query import SQLiteEngine
        from otel_expansion.backend.store import Store, open_readonly

        db = tmp_path / "b.sqlite"
        with Store(db) as store:
            store.write(signal, flatten(signal, request))
        engine = SQLiteEngine(open_readonly(db))
        try:
            yield engine
        finally:
            engine.close()
        return
    from tests.backend.chdb_loader import ChdbDatabase

    chdb = ChdbDatabase()
    chdb.load(signal, request)
    engine = chdb.engine()
    try:
        yield engine
    finally:
        engine.close()
        chdb.close()
