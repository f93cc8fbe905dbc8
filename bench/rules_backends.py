"""Batch recompute of every tag on SQLite, PostgreSQL and DuckDB, timed and cross-checked.

PostgreSQL gets the same data by copying the four tables batch queries read (plus the tag
definitions) from the SQLite store with ``COPY``: ingesting 2,000,000 events through the
engine again would measure streaming, not batch.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tagloop.engine import batch, duck
from tagloop.engine.definitions import sync
from tagloop.engine.evaluator import Engine
from tagloop.engine.plans import ActiveTag
from tagloop.rules.sql.dialects import DIALECTS, Dialect
from tagloop.store.db import Database
from tagloop.store.migrate import upgrade
from tagloop.workspace import load_workspace

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_NAME = "tagloop_bench_rules"
COPIED = ["entities", "events", "event_links", "tag_assignments"]


@dataclass
class BatchRun:
    backend: str
    seconds: float  # the whole recompute (build + SQL + decoding), without loading
    sql_seconds: float  # inside the database
    queries: int
    holders: dict[str, int]
    streamed: dict[str, str]
    load_seconds: float = 0.0  # DuckDB: copying the store in; PostgreSQL: the COPY
    changes: int = 0
    notes: list[str] = field(default_factory=list)


def timed_recompute(
    backend: str,
    db: Database,
    engine: Engine,
    active: list[ActiveTag],
    now: int,
    fetch: batch.Fetch | None = None,
    dialect: Dialect | None = None,
    write: bool = False,
) -> BatchRun:
    inner = fetch or batch.fetcher(db)
    spent = [0.0, 0]

    def timed(sql: str) -> list[tuple[Any, ...]]:
        began = time.perf_counter()
        try:
            return inner(sql)
        finally:
            spent[0] += time.perf_counter() - began
            spent[1] += 1

    names = [t.name for t in active if t.computed]
    started = time.perf_counter()
    report = batch.recompute(
        db, engine, active, names, now, fetch=timed, dialect=dialect, write=write
    )
    seconds = time.perf_counter() - started
    return BatchRun(
        backend,
        seconds,
        spent[0],
        int(spent[1]),
        dict(report.by_tag),
        dict(report.streamed),
        changes=report.changes,
    )


def duckdb_run(db: Database, engine: Engine, active: list[ActiveTag], now: int) -> BatchRun:
    started = time.perf_counter()
    con = duck.load(db)
    loaded = time.perf_counter() - started
    try:
        run = timed_recompute(
            "duckdb", db, engine, active, now, fetch=duck.fetcher(con), dialect=DIALECTS["duckdb"]
        )
    finally:
        con.close()
    run.load_seconds = loaded
    return run


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def postgres_copy(
    sqlite_path: Path, root: Path, clock: Callable[[], int]
) -> tuple[Database, Engine, list[ActiveTag], float]:
    """A PostgreSQL workspace (database ``tagloop_bench_rules``, recreated) holding the
    SQLite store's data; returns it with the seconds the copy took."""
    _admin(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{PG_NAME}"')
    workspace = load_workspace(root)
    db = Database(workspace.database_url)
    upgrade(db)
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_NAME}"
    started = time.perf_counter()
    source = sqlite3.connect(sqlite_path)
    with psycopg.connect(url) as conn:
        for table in COPIED:
            columns = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
            names = ", ".join(columns)
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[arg-type]
                for row in source.execute(f"SELECT {names} FROM {table}"):
                    copy.write_row(row)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), "
            "(SELECT coalesce(max(seq), 1) FROM events))"
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    source.close()
    seconds = time.perf_counter() - started
    active = sync(db, workspace).active
    engine = Engine(workspace, active, clock=clock, tick=workspace.project.engine.now_tick)
    return db, engine, active, seconds


def drop_postgres() -> None:
    _admin(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')


def disagreements(runs: list[BatchRun]) -> list[str]:
    """Tags whose holder counts differ between backends, described."""
    out = []
    names = sorted(set().union(*(r.holders for r in runs)))
    for name in names:
        counts = {r.backend: r.holders.get(name) for r in runs}
        if len(set(counts.values())) > 1:
            out.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return out
