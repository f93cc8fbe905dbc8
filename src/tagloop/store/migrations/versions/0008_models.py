"""models: trained versions in a registry, their metrics, and entity scores

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("features_digest", sa.String(length=64), nullable=False),
        sa.Column("workspace_revision", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("data_from", sa.BigInteger(), nullable=False),
        sa.Column("data_until", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trained_at", sa.BigInteger(), nullable=False),
        sa.Column("promoted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("model", "version", name=op.f("pk_model_versions")),
    )
    op.create_index(op.f("ix_model_versions_model_status"), "model_versions", ["model", "status"])
    op.create_table(
        "model_scores",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scored_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "entity_type", "entity_id", name=op.f("pk_model_scores")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_pending",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("due", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "entity_type", "entity_id", name=op.f("pk_model_pending")),
    )
    op.create_index(op.f("ix_model_pending_due"), "model_pending", ["due"])


def downgrade() -> None:
    op.drop_index(op.f("ix_model_pending_due"), table_name="model_pending")
    op.drop_table("model_pending")
    op.drop_table("model_scores")
    op.drop_index(op.f("ix_model_versions_model_status"), table_name="model_versions")
    op.drop_table("model_versions")
