"""The migrations produce exactly the schema the code declares, on every backend."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tagloop.store.db import Database
from tagloop.store.migrate import current_revision, head_revision, upgrade
from tagloop.store.tables import metadata


def test_migrations_match_the_tables(database_url: str, tmp_path: Path) -> None:
    # database_url's SQLite store is migrated already (a copy): from nothing here
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    db = Database(fresh if database_url.startswith("sqlite") else database_url)
    try:
        upgrade(db)
        upgrade(db)  # idempotent
        assert current_revision(db) == head_revision()
        with db.read() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        db.dispose()
