"""review queue indexes: the queue read in id order per status, by age, by entity id

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

The console's review queue pages 25 items at a time over queues of 100,000s: without
these, the pending queue in id order sorted every pending row (the (status, tag, id)
index serves only a chosen tag), and age and entity-id filters scanned the table.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_review_items_status_id"), "review_items", ["status", "id"])
    op.create_index(
        op.f("ix_review_items_status_created_at"), "review_items", ["status", "created_at"]
    )
    op.create_index(op.f("ix_review_items_entity_id"), "review_items", ["entity_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_review_items_entity_id"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_status_created_at"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_status_id"), table_name="review_items")
