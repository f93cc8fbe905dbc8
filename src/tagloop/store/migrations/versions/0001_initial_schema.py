"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("hash", name=op.f("uq_api_keys_hash")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("location", sa.String(length=1000), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("replayed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_dead_letters")),
    )
    op.create_index(
        op.f("ix_dead_letters_source_received_at"),
        "dead_letters",
        ["source", "received_at"],
        unique=False,
    )

    op.create_table(
        "entities",
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("attribute_times", JSON, nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("type", "id", name=op.f("pk_entities")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "events",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("attributes", JSON, nullable=True),
        sa.Column("related", JSON, nullable=True),
        sa.Column("context", JSON, nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    op.create_index(
        op.f("ix_events_entity_type_entity_id_time"),
        "events",
        ["entity_type", "entity_id", "time"],
        unique=False,
    )

    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "tag_assignments",
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("evidence", JSON, nullable=True),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entity_type", "entity_id", "tag", name=op.f("pk_tag_assignments")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_tag_assignments_tag_status_entity_type_entity_id"),
        "tag_assignments",
        ["tag", "status", "entity_type", "entity_id"],
        unique=False,
    )

    op.create_table(
        "tag_history",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.Column("previous", JSON, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("evidence", JSON, nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_tag_history")),
    )
    op.create_index(
        op.f("ix_tag_history_entity_type_entity_id_at"),
        "tag_history",
        ["entity_type", "entity_id", "at"],
        unique=False,
    )
    op.create_index(op.f("ix_tag_history_tag_at"), "tag_history", ["tag", "at"], unique=False)

    op.create_table(
        "tag_versions",
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("workspace_revision", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tag", "version", name=op.f("pk_tag_versions")),
    )
    op.create_table(
        "tags",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tags")),
    )
    op.create_table(
        "event_links",
        sa.Column("event_seq", SEQ, nullable=False),
        sa.Column("entity_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            ["events.seq"],
            name=op.f("fk_event_links_event_seq_events"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_event_links_entity_type_entity_id_time"),
        "event_links",
        ["entity_type", "entity_id", "time"],
        unique=False,
    )
    op.create_index(op.f("ix_event_links_event_seq"), "event_links", ["event_seq"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_event_links_event_seq"), table_name="event_links")
    op.drop_index(op.f("ix_event_links_entity_type_entity_id_time"), table_name="event_links")

    op.drop_table("event_links")
    op.drop_table("tags")
    op.drop_table("tag_versions")
    op.drop_index(op.f("ix_tag_history_tag_at"), table_name="tag_history")
    op.drop_index(op.f("ix_tag_history_entity_type_entity_id_at"), table_name="tag_history")

    op.drop_table("tag_history")
    op.drop_index(
        op.f("ix_tag_assignments_tag_status_entity_type_entity_id"), table_name="tag_assignments"
    )

    op.drop_table("tag_assignments")
    op.drop_table("settings")
    op.drop_index(op.f("ix_events_entity_type_entity_id_time"), table_name="events")

    op.drop_table("events")
    op.drop_table("entities")
    op.drop_index(op.f("ix_dead_letters_source_received_at"), table_name="dead_letters")

    op.drop_table("dead_letters")
    op.drop_table("api_keys")
