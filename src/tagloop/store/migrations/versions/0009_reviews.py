"""reviews: the review queue, decisions and pins

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", _SEQ, autoincrement=True, nullable=False),
        sa.Column("entity_type", sa.String(100), nullable=False),
        sa.Column("entity_id", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("value", _JSON, nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("evidence", _JSON, nullable=True),
        sa.Column("policy", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_by_kind", sa.String(20), nullable=True),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("override", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    op.create_index(op.f("ix_review_items_status_tag_id"), "review_items", ["status", "tag", "id"])
    op.create_index(
        op.f("ix_review_items_entity_type_entity_id_tag"),
        "review_items",
        ["entity_type", "entity_id", "tag"],
    )
    op.create_index(op.f("ix_review_items_tag_decided_at"), "review_items", ["tag", "decided_at"])
    op.create_table(
        "review_pins",
        sa.Column("id", _SEQ, autoincrement=True, nullable=False),
        sa.Column("entity_type", sa.String(100), nullable=False),
        sa.Column("entity_id", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("value", _JSON, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("review_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_by_kind", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("lifted_at", sa.BigInteger(), nullable=True),
        sa.Column("lifted_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_pins")),
    )
    op.create_index(
        op.f("ix_review_pins_entity_type_entity_id_tag"),
        "review_pins",
        ["entity_type", "entity_id", "tag"],
    )
    op.create_index(op.f("ix_review_pins_tag_lifted_at"), "review_pins", ["tag", "lifted_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_review_pins_tag_lifted_at"), table_name="review_pins")
    op.drop_index(op.f("ix_review_pins_entity_type_entity_id_tag"), table_name="review_pins")
    op.drop_table("review_pins")
    op.drop_index(op.f("ix_review_items_tag_decided_at"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_entity_type_entity_id_tag"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_status_tag_id"), table_name="review_items")
    op.drop_table("review_items")
