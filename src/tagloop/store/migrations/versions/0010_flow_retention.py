"""flow retention: finished runs found by when they finished (engine.flow_runs_kept)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_flow_runs_finished_at"), "flow_runs", ["finished_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_runs_finished_at"), table_name="flow_runs")
