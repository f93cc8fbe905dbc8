"""Write transactions: durable by default, and a non-durable one leaves nothing behind."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tagloop.store.db import Database


def _durability(db: Database) -> str:
    """The setting a write transaction of this pool commits with."""
    with db.write() as conn:
        if db.is_sqlite:
            return {0: "off", 1: "normal", 2: "full", 3: "extra"}[
                conn.execute(text("PRAGMA synchronous")).scalar_one()
            ]
        return str(conn.execute(text("SHOW synchronous_commit")).scalar_one())


def _drop(db: Database) -> None:
    with db.write() as conn:
        conn.execute(text("DROP TABLE IF EXISTS t_durable"))
        conn.execute(text("DROP TABLE IF EXISTS t_durable2"))
    db.dispose()


def _non_durable_setting(db: Database) -> str:
    with db.write(durable=False) as conn:
        if db.is_sqlite:
            return str(conn.execute(text("PRAGMA synchronous")).scalar_one())
        return str(conn.execute(text("SHOW synchronous_commit")).scalar_one())


def test_a_non_durable_write_commits_and_the_next_write_is_durable_again(
    database_url: str,
) -> None:
    db = Database(database_url, pool=True)
    try:
        with db.write() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t_durable (v integer)"))
            conn.execute(text("DELETE FROM t_durable"))
        expected = "full" if db.is_sqlite else "on"
        assert _durability(db) == expected
        assert _non_durable_setting(db) == ("1" if db.is_sqlite else "off")
        with db.write(durable=False) as conn:
            conn.execute(text("INSERT INTO t_durable VALUES (1)"))
        # Same pooled connection: the relaxed setting did not outlive its transaction.
        assert _durability(db) == expected
        with db.read() as conn:
            assert conn.execute(text("SELECT v FROM t_durable")).scalars().all() == [1]
    finally:
        _drop(db)


def test_a_failed_non_durable_write_rolls_back_and_restores_durability(
    database_url: str,
) -> None:
    db = Database(database_url, pool=True)
    try:
        with db.write() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t_durable2 (v integer)"))
            conn.execute(text("DELETE FROM t_durable2"))
        with pytest.raises(RuntimeError), db.write(durable=False) as conn:
            conn.execute(text("INSERT INTO t_durable2 VALUES (1)"))
            raise RuntimeError("boom")
        with db.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM t_durable2")).scalar_one() == 0
        assert _durability(db) == ("full" if db.is_sqlite else "on")
    finally:
        _drop(db)
