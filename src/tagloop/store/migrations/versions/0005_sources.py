"""source checkpoints and status; dead letters keep their stream and parsed record

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("stream", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("record", JSON, nullable=True))
        batch.add_column(sa.Column("record_key", sa.String(length=1000), nullable=True))
        batch.add_column(sa.Column("replayed_at", sa.BigInteger(), nullable=True))
    op.create_index(
        op.f("ix_dead_letters_source_record_key"), "dead_letters", ["source", "record_key"]
    )
    op.create_table(
        "source_checkpoints",
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("stream", sa.String(length=255), nullable=False),
        sa.Column("position", JSON, nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "stream", name=op.f("pk_source_checkpoints")),
    )
    op.create_table(
        "source_versions",
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("stream", sa.String(length=255), nullable=False),
        sa.Column("record_key", sa.String(length=1000), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("source", "stream", "record_key", name=op.f("pk_source_versions")),
    )
    op.create_table(
        "source_status",
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("records_read", sa.BigInteger(), nullable=False),
        sa.Column("events_written", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("lag_us", sa.BigInteger(), nullable=True),
        sa.Column("last_success_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.BigInteger(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_status")),
    )


def downgrade() -> None:
    op.drop_table("source_status")
    op.drop_table("source_versions")
    op.drop_table("source_checkpoints")
    op.drop_index(op.f("ix_dead_letters_source_record_key"), table_name="dead_letters")
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("replayed_at")
        batch.drop_column("record_key")
        batch.drop_column("record")
        batch.drop_column("stream")
