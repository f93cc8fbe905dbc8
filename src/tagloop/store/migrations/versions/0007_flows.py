"""flows: versions, runs, their trace, dedupe windows, work orders

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "flow_versions",
        sa.Column("flow", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("flow", "version", name=op.f("pk_flow_versions")),
        sa.UniqueConstraint("flow", "digest", name=op.f("uq_flow_versions_flow_digest")),
    )
    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=255), nullable=False),
        sa.Column("trigger_key", sa.String(length=255), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("scope", JSON, nullable=False),
        sa.Column("next_at", sa.BigInteger(), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_runs")),
        sa.UniqueConstraint("flow", "trigger_key", name=op.f("uq_flow_runs_flow_trigger_key")),
    )
    op.create_index(op.f("ix_flow_runs_status_next_at"), "flow_runs", ["status", "next_at"])
    op.create_index(
        op.f("ix_flow_runs_flow_status_created_at"), "flow_runs", ["flow", "status", "created_at"]
    )
    op.create_index(
        op.f("ix_flow_runs_entity_type_entity_id"), "flow_runs", ["entity_type", "entity_id"]
    )
    op.create_table(
        "flow_steps",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("args", JSON, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_flow_steps")),
    )
    op.create_index(op.f("ix_flow_steps_run_id_seq"), "flow_steps", ["run_id", "seq"])
    op.create_table(
        "flow_dedupe",
        sa.Column("flow", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("flow", "key", name=op.f("pk_flow_dedupe")),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", SEQ, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("assignee", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=20), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=True),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("flow", sa.String(length=255), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
        sa.UniqueConstraint("key", name=op.f("uq_work_orders_key")),
    )
    op.create_index(op.f("ix_work_orders_status_due_at"), "work_orders", ["status", "due_at"])
    op.create_index(
        op.f("ix_work_orders_entity_type_entity_id"), "work_orders", ["entity_type", "entity_id"]
    )


def downgrade() -> None:
    for table in ("work_orders", "flow_dedupe", "flow_steps", "flow_runs", "flow_versions"):
        op.drop_table(table)
