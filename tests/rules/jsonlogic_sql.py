"""Running JsonLogic rules both ways: the streaming evaluator over a dict per entity, and
the SQL compiler over a table of the same entities (SQLite, DuckDB, PostgreSQL if up)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlglot import exp

from tagloop.rules import DictContext, Scope
from tagloop.rules import bound as b
from tagloop.rules.jsonlogic import compile_jsonlogic
from tagloop.rules.sql.dialects import DIALECTS
from tagloop.rules.sql.expr import Compiler, V, json_value
from tagloop.store.db import register_functions
from tests.conftest import PG_ADMIN

SCOPE = Scope(
    "customer",
    {
        "country": "string",
        "name": "string",
        "spend": "number",
        "orders": "integer",
        "vip": "boolean",
        "joined": "date",
        "signup": "datetime",
    },
)


class _Resolver:
    """Profile attributes come from the JSON column ``attributes``; nothing else exists."""

    def __init__(self, dialect: str) -> None:
        self.d = DIALECTS[dialect]

    def attr(self, node: b.Attr) -> V:
        return json_value(self.d, exp.column("attributes"), node.path, node.type)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a profile-only rule asked for {name}")


def sql_of(dialect: str, node: b.B) -> str:
    """``SELECT eid, <node> FROM ent`` in ``dialect``; raises `Unsupported` as it may."""
    value = Compiler(DIALECTS[dialect], _Resolver(dialect)).compile(node)
    sql = value.json if value.type == "any" else value.sql
    query = exp.select(exp.column("eid"), sql or exp.Null()).from_("ent").order_by("eid")
    return DIALECTS[dialect].sql(query)


def decode(raw: Any, kind: str) -> Any:
    if raw is None:
        return None
    if kind == "boolean":
        return bool(raw)
    if kind in ("integer", "number"):
        return float(raw)
    return raw


@contextmanager
def databases(profiles: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Connections by dialect, each holding ``ent(eid, attributes)`` of ``profiles``."""
    rows = [(f"e{i:03}", json.dumps(p, ensure_ascii=False)) for i, p in enumerate(profiles)]
    found: dict[str, Any] = {}
    lite = sqlite3.connect(":memory:")
    register_functions(lite)
    lite.execute("CREATE TABLE ent (eid TEXT, attributes TEXT)")
    lite.executemany("INSERT INTO ent VALUES (?, ?)", rows)
    found["sqlite"] = lite
    import duckdb

    duck = duckdb.connect()
    duck.execute("CREATE TABLE ent (eid VARCHAR, attributes VARCHAR)")
    if rows:
        duck.executemany("INSERT INTO ent VALUES (?, ?)", rows)
    found["duckdb"] = duck
    pg = _postgres(rows)
    if pg is not None:
        found["postgresql"] = pg
    try:
        yield found
    finally:
        for conn in found.values():
            conn.close()


def _postgres(rows: list[tuple[str, str]]) -> Any:
    try:
        import psycopg

        conn = psycopg.connect(PG_ADMIN, connect_timeout=2, autocommit=True)
    except Exception:
        return None
    # A temporary table: private to this connection, gone with it.
    conn.execute("CREATE TEMP TABLE ent (eid TEXT, attributes JSONB)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO ent VALUES (%s, %s::jsonb)", rows)
    return conn


def run_sql(conn: Any, dialect: str, node: b.B) -> list[Any]:
    rows = conn.execute(sql_of(dialect, node)).fetchall()
    return [decode(r[1], node.type) for r in rows]


def run_stream(rule: Any, profiles: list[dict[str, Any]]) -> list[Any]:
    return [rule.evaluate(DictContext(p)) for p in profiles]


def agree(a: Any, c: Any) -> bool:
    """Same value and kind: booleans are not numbers, NaN is what JSON makes of it."""
    if isinstance(a, float) and math.isnan(a):
        a = None
    if isinstance(a, bool) or isinstance(c, bool):
        return a is c
    return bool(a == c) and (a is None) == (c is None)


def compile_both(logic: Any, want: str | None = "boolean") -> Any:
    return compile_jsonlogic(logic, SCOPE, want=want)
