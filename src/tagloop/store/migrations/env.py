"""Alembic environment: always driven programmatically with a connection (store/migrate.py)."""

from __future__ import annotations

from alembic import context

from tagloop.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
context.run_migrations()
