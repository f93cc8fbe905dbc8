"""Schema migrations with Alembic, run programmatically (no alembic.ini to carry around)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from tagloop.store.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision; safe to call from concurrent processes."""
    config = alembic_config()
    with db.write() as conn:
        if db.dialect == "postgresql":
            # Serialise concurrent upgrades (two servers starting at once).
            conn.execute(text("SELECT pg_advisory_xact_lock(7340033)"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def current_revision(db: Database) -> str | None:
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
