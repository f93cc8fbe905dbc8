"""DuckDB as a batch engine: the store's tables loaded into an in-memory DuckDB.

DuckDB cannot attach SQLite or PostgreSQL here (its extensions download at run time), so
the tables batch queries read are copied through Arrow; the query is then the same
one the store would run, in DuckDB's dialect.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from tagloop.engine.batch import Fetch
from tagloop.store.db import Database

TABLES: dict[str, tuple[str, ...]] = {
    "entities": ("type", "id", "attributes", "event_count", "first_seen", "last_seen"),
    "events": ("seq", "id", "type", "entity_type", "entity_id", "time", "properties"),
    "event_links": ("event_seq", "entity_type", "entity_id", "time"),
    "tag_assignments": ("entity_type", "entity_id", "tag", "value", "status", "expires_at"),
    "model_scores": ("model", "entity_type", "entity_id", "score"),
}
_JSON = {"attributes", "properties", "value"}


def load(db: Database) -> Any:
    """An in-memory DuckDB holding the tables of ``db`` that batch queries read."""
    import duckdb

    con = duckdb.connect()
    with db.read() as conn:
        for table, columns in TABLES.items():
            rows = db.fetch(conn, f"SELECT {', '.join(columns)} FROM {table}", ())
            data = {}
            for i, name in enumerate(columns):
                values = [r[i] for r in rows]
                if name in _JSON:
                    values = [
                        v if isinstance(v, str) or v is None else orjson.dumps(v).decode()
                        for v in values
                    ]
                kind = pa.int64() if name in _INTS else pa.string()
                data[name] = pa.array(values, type=pa.float64() if name == "score" else kind)
            arrow = pa.table(data)
            con.register(f"{table}_arrow", arrow)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_arrow")
            con.unregister(f"{table}_arrow")
    return con


_INTS = {"seq", "event_seq", "time", "event_count", "first_seen", "last_seen", "expires_at"}


def fetcher(con: Any) -> Fetch:
    def fetch(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in con.execute(sql).fetchall()]

    return fetch
