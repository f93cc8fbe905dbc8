"""entity aliases and merges; events keep the entity id they were sent with

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # A nullable column without a default: no table rewrite on either backend.
    op.add_column("events", sa.Column("sent_entity_id", sa.String(length=255), nullable=True))
    op.create_table(
        "entity_aliases",
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entity_type", "alias", name=op.f("pk_entity_aliases")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_entity_aliases_entity_type_entity_id"),
        "entity_aliases",
        ["entity_type", "entity_id"],
    )
    op.create_table(
        "entity_merges",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("merged_id", sa.String(length=255), nullable=False),
        sa.Column("into_id", sa.String(length=255), nullable=False),
        sa.Column("cause", JSON, nullable=False),
        sa.Column("merged_profile", JSON, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_entity_merges")),
    )
    op.create_index(
        op.f("ix_entity_merges_entity_type_into_id"), "entity_merges", ["entity_type", "into_id"]
    )
    op.create_index(
        op.f("ix_entity_merges_entity_type_merged_id"),
        "entity_merges",
        ["entity_type", "merged_id"],
    )


def downgrade() -> None:
    op.drop_table("entity_merges")
    op.drop_table("entity_aliases")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("sent_entity_id")
