"""The relational schema, as SQLAlchemy Core tables (migrations in store/migrations).

Times are integer microseconds since the Unix epoch (UTC): exact, cheap to compare, and the
same on every backend, which the batch evaluator relies on.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

# Stable constraint names so migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (cheap, monotonic).
SeqId = BigInteger().with_variant(Integer(), "sqlite")

TYPE = 100  # entity type and event type names
KEY = 255  # entity ids, event ids, tag names

events = Table(
    "events",
    metadata,
    Column("seq", SeqId, primary_key=True, autoincrement=True),
    Column("id", String(KEY), nullable=False),
    Column("type", String(KEY), nullable=False),
    Column("entity_type", String(TYPE), nullable=False),
    Column("entity_id", String(KEY), nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("source", String(KEY), nullable=False),
    Column("properties", Json, nullable=False),
    Column("attributes", Json),
    Column("related", Json),
    Column("context", Json),
    # The id the event was sent with, when it belongs to another entity now (it named an
    # alias, or its entity was merged into another): the event's own facts stay as sent.
    Column("sent_entity_id", String(KEY)),
    UniqueConstraint("id"),
    Index(None, "entity_type", "entity_id", "time"),
)

# One row per (event, related entity): aggregates and profiles of related entities see the
# event too (a feedback related to product batch B-17 counts for B-17).
event_links = Table(
    "event_links",
    metadata,
    Column("event_seq", SeqId, ForeignKey("events.seq", ondelete="CASCADE"), nullable=False),
    Column("entity_type", String(TYPE), nullable=False),
    Column("entity_id", String(KEY), nullable=False),
    Column("time", BigInteger, nullable=False),
    Index(None, "entity_type", "entity_id", "time"),
    Index(None, "event_seq"),
)

entities = Table(
    "entities",
    metadata,
    Column("type", String(TYPE), primary_key=True),
    Column("id", String(KEY), primary_key=True),
    Column("attributes", Json, nullable=False),
    # attribute -> event time (µs) of the value held, so older events never overwrite newer
    Column("attribute_times", Json, nullable=False),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Rows clustered on (type, id): one b-tree per upsert instead of table plus key index.
    sqlite_with_rowid=False,
)

# Other ids of an entity (another system's id, a phone number, a Segment previousId): an
# event naming one belongs to ``entity_id``. Never an id that is itself an entity.
entity_aliases = Table(
    "entity_aliases",
    metadata,
    Column("entity_type", String(TYPE), primary_key=True),
    Column("alias", String(KEY), primary_key=True),
    Column("entity_id", String(KEY), nullable=False),
    Column("field", String(KEY), nullable=False),  # the identifier field, or "alias"/"merge"
    Column("event_id", String(KEY), nullable=False),  # the event that linked it
    Column("created_at", BigInteger, nullable=False),
    Index(None, "entity_type", "entity_id"),
    sqlite_with_rowid=False,
)

# Every merge of two entities, with its cause: nothing of either side is deleted but the
# merged profile row (its attributes, counts and tags live on in ``into_id``).
entity_merges = Table(
    "entity_merges",
    metadata,
    Column("seq", SeqId, primary_key=True, autoincrement=True),
    Column("entity_type", String(TYPE), nullable=False),
    Column("merged_id", String(KEY), nullable=False),
    Column("into_id", String(KEY), nullable=False),
    Column("cause", Json, nullable=False),  # event id, source, field, value that linked them
    Column("merged_profile", Json, nullable=False),  # the merged row as it was
    Column("at", BigInteger, nullable=False),
    Index(None, "entity_type", "into_id"),
    Index(None, "entity_type", "merged_id"),
)

# The tags the database knows, with the version currently in force.
tags = Table(
    "tags",
    metadata,
    Column("name", String(KEY), primary_key=True),
    Column("entity_type", String(TYPE), nullable=False),
    Column("version", Integer, nullable=False),
    Column("retired_at", BigInteger),
)

tag_versions = Table(
    "tag_versions",
    metadata,
    Column("tag", String(KEY), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("entity_type", String(TYPE), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("definition", Json, nullable=False),
    Column("workspace_revision", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

tag_assignments = Table(
    "tag_assignments",
    metadata,
    Column("entity_type", String(TYPE), primary_key=True),
    Column("entity_id", String(KEY), primary_key=True),
    Column("tag", String(KEY), primary_key=True),
    Column("value", Json),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(KEY), nullable=False),
    Column("confidence", Float),
    Column("evidence", Json),
    Column("since", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),  # imported values hold until then (None: for good)
    Index(None, "tag", "status", "entity_type", "entity_id"),
    sqlite_with_rowid=False,
)

tag_history = Table(
    "tag_history",
    metadata,
    Column("seq", SeqId, primary_key=True, autoincrement=True),
    Column("entity_type", String(TYPE), nullable=False),
    Column("entity_id", String(KEY), nullable=False),
    Column("tag", String(KEY), nullable=False),
    Column("change", String(20), nullable=False),  # assigned, changed, removed
    Column("value", Json),
    Column("previous", Json),
    Column("version", Integer, nullable=False),
    Column("source", String(KEY), nullable=False),
    Column("evidence", Json),
    Column("at", BigInteger, nullable=False),
    Index(None, "entity_type", "entity_id", "at"),
    Index(None, "tag", "at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(KEY), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("roles", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("revoked_at", BigInteger),
    Column("last_used_at", BigInteger),
    # Entity types the key may see (None: all), e.g. a logistics partner's ["shipment"].
    Column("entity_types", Json),
    # This key's own rate limit ({"rate": per second, "burst": n}), over its roles' limits.
    Column("limits", Json),
    UniqueConstraint("prefix"),
    UniqueConstraint("hash"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("username", String(KEY), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("roles", Json, nullable=False),
    Column("entity_types", Json),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger),
    # Brute-force throttling: consecutive failures and the time logins open again.
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", BigInteger),
    UniqueConstraint("username"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the cookie's token
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "user_id"),
)

# Append-only and hash-chained: each record carries the hash of the one before it.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", SeqId, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(KEY), nullable=False),  # key name / username / "cli:<os user>"
    Column("actor_kind", String(20), nullable=False),  # key, user, cli, system
    Column("origin", String(255), nullable=False),  # client address, or "cli"
    Column("action", String(TYPE), nullable=False),  # e.g. key.create, pii.read
    Column("target_type", String(TYPE), nullable=False),
    Column("target_id", String(KEY), nullable=False),
    Column("before", Json),
    Column("after", Json),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "at"),
    Index(None, "actor"),
    Index(None, "action"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("seq", SeqId, primary_key=True, autoincrement=True),
    Column("source", String(KEY), nullable=False),
    Column("location", String(1000), nullable=False),
    Column("error", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("replayed", Boolean, nullable=False, default=False),
    # The mapping the record was read for (a table of a SQL source, a topic pattern), and
    # the record as parsed (None when it could not be parsed): what a replay maps again.
    Column("stream", String(KEY), nullable=True),
    Column("record", Json, nullable=True),
    Column("record_key", String(1000), nullable=True),  # its identity: a replay keeps it
    Column("replayed_at", BigInteger, nullable=True),
    Index(None, "source", "received_at"),
    Index(None, "source", "record_key"),  # a redelivered bad record is kept once
)

# Where each source stream stands (a cursor value, a page link, a file offset): written in
# the transaction that commits the events read up to it.
source_checkpoints = Table(
    "source_checkpoints",
    metadata,
    Column("source", String(KEY), primary_key=True),
    Column("stream", String(KEY), primary_key=True),
    Column("position", Json),
    Column("updated_at", BigInteger, nullable=False),
)

# The version (a hash) of each record of a snapshot source, as last committed: a snapshot
# turns only new and changed records into events.
source_versions = Table(
    "source_versions",
    metadata,
    Column("source", String(KEY), primary_key=True),
    Column("stream", String(KEY), primary_key=True),
    Column("record_key", String(1000), primary_key=True),
    Column("version", String(64), nullable=False),
)

# What each source is doing, for `tagloop sources status` and /v1/sources, whichever
# process runs it.
source_status = Table(
    "source_status",
    metadata,
    Column("source", String(KEY), primary_key=True),
    Column("state", String(20), nullable=False),  # running, idle, failing, stopped
    Column("records_read", BigInteger, nullable=False, default=0),
    Column("events_written", BigInteger, nullable=False, default=0),
    Column("rejected", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("lag_us", BigInteger),  # now minus the newest record's time at the last commit
    Column("last_success_at", BigInteger),
    Column("last_error", Text),
    Column("last_error_at", BigInteger),
    Column("failures", Integer, nullable=False, default=0),  # consecutive
    Column("next_attempt_at", BigInteger),
    Column("host", String(255)),
    Column("updated_at", BigInteger, nullable=False),
)

# When an entity's tags may next change with time alone (see engine/timing.py).
entity_timers = Table(
    "entity_timers",
    metadata,
    Column("entity_type", String(TYPE), primary_key=True),
    Column("entity_id", String(KEY), primary_key=True),
    Column("due", BigInteger, nullable=False),
    Index(None, "due"),
    sqlite_with_rowid=False,
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(KEY), primary_key=True),
    Column("value", Json),
)

# -- flows (tagloop.flows) ---------------------------------------------------------------

# Each version of a flow definition a run started on (runs finish on their version).
flow_versions = Table(
    "flow_versions",
    metadata,
    Column("flow", String(KEY), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("definition", Json, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("flow", "digest"),
)

# One row per run; created in the transaction of the event or tag change that triggered it.
flow_runs = Table(
    "flow_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("flow", String(KEY), nullable=False),
    Column("version", Integer, nullable=False),
    # pending, running, waiting, retrying, succeeded, failed, skipped
    Column("status", String(20), nullable=False),
    Column("trigger", String(KEY), nullable=False),  # "event order_created", "manual" ...
    Column("trigger_key", String(KEY), nullable=False),  # one run per flow and trigger
    Column("entity_type", String(TYPE), nullable=False),
    Column("entity_id", String(KEY), nullable=False),
    Column("scope", Json, nullable=False),  # the trigger: event, related ids, chain
    Column("next_at", BigInteger),  # when it may run next (pending, waiting, retrying)
    Column("lease_until", BigInteger),  # a worker holds it until then (running)
    Column("error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    UniqueConstraint("flow", "trigger_key"),
    Index(None, "status", "next_at"),
    Index(None, "flow", "status", "created_at"),
    Index(None, "entity_type", "entity_id"),
    Index(None, "finished_at"),  # pruning (engine.flow_runs_kept)
)

# The trace: every condition, decision, wait and action attempt of a run, in order.
flow_steps = Table(
    "flow_steps",
    metadata,
    Column("seq", SeqId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("step", String(KEY), nullable=False),  # conditions[0], actions[2].then[0] ...
    Column("kind", String(20), nullable=False),  # condition, if, wait, action, dedupe
    Column("name", String(KEY), nullable=False),  # the action, or the condition's text
    Column("attempt", Integer, nullable=False, default=1),
    # ok, failed, retry, waiting, done
    Column("status", String(20), nullable=False),
    Column("args", Json),
    Column("result", Json),
    Column("error", Text),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Index(None, "run_id", "seq"),
)

# Dedupe windows: the run that holds a flow's key until a time.
flow_dedupe = Table(
    "flow_dedupe",
    metadata,
    Column("flow", String(KEY), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("until", BigInteger, nullable=False),
)

work_orders = Table(
    "work_orders",
    metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("key", String(KEY), nullable=False),  # the creating step's idempotency key
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("assignee", String(KEY)),
    Column("status", String(20), nullable=False),  # open, in_progress, done, cancelled
    Column("priority", String(20), nullable=False),
    Column("due_at", BigInteger),
    Column("entity_type", String(TYPE), nullable=False),
    Column("entity_id", String(KEY), nullable=False),
    Column("flow", String(KEY)),
    Column("run_id", String(36)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("key"),
    Index(None, "status", "due_at"),
    Index(None, "entity_type", "entity_id"),
)

# -- models (tagloop.models) -------------------------------------------------------------

# Every trained version of a model: the artifact scoring loads, what it was measured at,
# and what its features meant (the definition, its digest, the workspace revision).
model_versions = Table(
    "model_versions",
    metadata,
    Column("model", String(KEY), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("entity_type", String(TYPE), nullable=False),
    Column("status", String(20), nullable=False),  # active, candidate, retired
    Column("kind", String(20), nullable=False),  # full, incremental
    Column("base_version", Integer),  # an incremental version continues this one
    Column("artifact", LargeBinary, nullable=False),
    Column("metrics", Json, nullable=False),
    Column("definition", Json, nullable=False),
    Column("features_digest", String(64), nullable=False),
    Column("workspace_revision", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("data_from", BigInteger, nullable=False),
    Column("data_until", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),  # why it was promoted or kept as a candidate
    Column("trained_at", BigInteger, nullable=False),
    Column("promoted_at", BigInteger),
    Index(None, "model", "status"),
)

# The current score of each entity from a model's active version: what score('m') reads.
model_scores = Table(
    "model_scores",
    metadata,
    Column("model", String(KEY), primary_key=True),
    Column("entity_type", String(TYPE), primary_key=True),
    Column("entity_id", String(KEY), primary_key=True),
    Column("score", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Column("scored_at", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# Entities whose feature inputs changed, to be scored again once quiet until ``due``.
model_pending = Table(
    "model_pending",
    metadata,
    Column("model", String(KEY), primary_key=True),
    Column("entity_type", String(TYPE), primary_key=True),
    Column("entity_id", String(KEY), primary_key=True),
    Column("due", BigInteger, nullable=False),
    Index(None, "due"),
)

# -- reviews (tagloop.review) ------------------------------------------------------------

# One row per proposal that waited for a reviewer: the assignment as the rule or model
# proposed it, and the decision on it (who, when, why). Decided rows are never deleted:
# they are the labels of the next training and the basis of the error rate.
review_items = Table(
    "review_items",
    metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("entity_type", String(TYPE), nullable=False),
    Column("entity_id", String(KEY), nullable=False),
    Column("tag", String(KEY), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(KEY), nullable=False),  # the proposing rule or model version
    Column("value", Json),  # the proposed value
    Column("confidence", Float),
    Column("evidence", Json),
    Column("policy", String(20), nullable=False),  # all, confidence, sample
    # pending; approved, rejected, overridden (decided); superseded, withdrawn (closed)
    Column("status", String(20), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger),
    Column("decided_by", String(KEY)),  # key name / username / "cli:<os user>" / "system"
    Column("decided_by_kind", String(20)),  # key, user, cli, system
    Column("reason", String(KEY)),  # a rejection's reason (reviews.reasons in tagloop.yaml)
    Column("note", Text),
    Column("override", Json),  # the value a reviewer set instead
    Index(None, "status", "tag", "id"),
    Index(None, "entity_type", "entity_id", "tag"),
    Index(None, "tag", "decided_at"),
    # The queue in id order, by age, and by an entity id given without its type.
    Index(None, "status", "id"),
    Index(None, "status", "created_at"),
    Index(None, "entity_id"),
)

# Manual tags and manual exclusions of one entity: the assignment they make (source
# "pin:<actor>") survives recomputation until lifted or expired; rows stay as history.
review_pins = Table(
    "review_pins",
    metadata,
    Column("id", SeqId, primary_key=True, autoincrement=True),
    Column("entity_type", String(TYPE), nullable=False),
    Column("entity_id", String(KEY), nullable=False),
    Column("tag", String(KEY), nullable=False),
    Column("mode", String(20), nullable=False),  # include, exclude
    Column("value", Json),
    Column("reason", Text),
    Column("review_id", BigInteger),  # the review item an override made it for
    Column("created_by", String(KEY), nullable=False),
    Column("created_by_kind", String(20), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("lifted_at", BigInteger),
    Column("lifted_by", String(KEY)),
    Index(None, "entity_type", "entity_id", "tag"),
    Index(None, "tag", "lifted_at"),
)
