"""entity timers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entity_timers",
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("due", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entity_type", "entity_id", name=op.f("pk_entity_timers")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_entity_timers_due"), "entity_timers", ["due"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_entity_timers_due"), table_name="entity_timers")
    op.drop_table("entity_timers")
