"""What a decision or a pin changes besides its own assignment, in the same transaction:
the tags that read the decided one are re-evaluated (they see what the entity now holds),
the entity's timers are set (a pin's expiry), and flows triggered by the tag start."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from tagloop.engine.batch import dependents
from tagloop.engine.evaluator import Touched
from tagloop.store import entities as entity_store
from tagloop.store import tags as tag_store
from tagloop.store import timers as timer_store
from tagloop.store.tables import tag_history
from tagloop.store.tags import TagChange

if TYPE_CHECKING:
    from tagloop.runtime import Runtime

Key = tuple[str, str]


@dataclass
class Effects:
    """The changes a decision made, gathered for the end of its transaction."""

    changes: list[TagChange] = field(default_factory=list)  # for flows and reporting
    touched: dict[str, set[Key]] = field(default_factory=dict)  # tag -> entities
    reevaluate: dict[str, set[Key]] = field(default_factory=dict)  # tag itself too (unpin)
    flows_queued: bool = False  # a flow run waits for a worker: wake it after the commit

    def touch(self, tag: str, key: Key, *, itself: bool = False) -> None:
        (self.reevaluate if itself else self.touched).setdefault(tag, set()).add(key)


def history(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Append decision entries (approved, rejected, pinned, unpinned) to the history."""
    listed = list(rows)
    if listed:
        conn.execute(tag_history.insert(), listed)


def finish(rt: Runtime, conn: Connection, effects: Effects, now: int) -> None:
    """Re-evaluate what reads the decided tags, set timers, and start triggered flows."""
    engine, db = rt.engine, rt.db
    groups = [(tag, keys, False) for tag, keys in effects.touched.items()]
    groups += [(tag, keys, True) for tag, keys in effects.reevaluate.items()]
    for tag, entity_keys, itself in groups:
        definition = rt.workspace.tags.get(tag)
        plan = engine.plans.get(definition.entity) if definition is not None else None
        if plan is None:
            continue
        names = dependents(plan.tags, [tag])
        if not itself:
            names.discard(tag)
        rows = entity_store.load(db, conn, entity_keys)
        engine.prepare(db, conn, rows)
        touched = {k: Touched(r, names=frozenset(names)) for k, r in rows.items()}
        changes, timers = engine.evaluate(db, conn, touched, {}, now)
        tag_store.apply(db, conn, changes)
        timer_store.set_due(db, conn, timers)
        effects.changes.extend(changes)
    held = [c for c in effects.changes if c.status == "active"]
    effects.flows_queued = rt.ingestor.start_flows(conn, held, now) or effects.flows_queued
