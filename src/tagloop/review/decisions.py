"""Decisions on review items: approve (the proposal applies), reject (it stays off, with a
reason from ``reviews.reasons``), override (the reviewer's value applies instead, as a pin).

Each decision is stored on its item with who and when, appended to the tag history and
written to the audit trail (``review.approve``, ``review.reject``, ``review.override``) in
the transaction that applies it. A decision applies only to an item still pending whose
assignment still holds its proposal; one that recomputation has since changed is closed
as ``withdrawn`` and reported as stale instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import update

from tagloop import audit
from tagloop.engine.evaluator import same
from tagloop.errors import Conflict, NotFound, ValidationFailed
from tagloop.names import suggest
from tagloop.review import effects as fx
from tagloop.review import pins
from tagloop.store import reviews as store
from tagloop.store import tags as tag_store
from tagloop.store.tables import tag_assignments

if TYPE_CHECKING:
    from tagloop.runtime import Runtime

Action = Literal["approve", "reject", "override"]
ACTIONS: tuple[Action, ...] = ("approve", "reject", "override")
STATUS = {"approve": "approved", "reject": "rejected", "override": "overridden"}
CHUNK = 200  # items per transaction: short write locks, bounded audit batches
MAX_BULK = 10_000  # items one bulk decision may take


@dataclass
class Outcome:
    """What a (bulk) decision did."""

    action: str
    decided: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # no longer matched their assignment
    skipped: list[int] = field(default_factory=list)  # not pending (already decided)
    propagated: int = 0  # changes of tags reading the decided ones
    flows_queued: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "decided": len(self.decided),
            "ids": self.decided,
            "stale": self.stale,
            "skipped": self.skipped,
            "propagated": self.propagated,
        }


def check_reason(rt: Runtime, action: str, reason: str | None) -> str | None:
    """A rejection needs a reason from the configured list; other decisions take none."""
    reasons = rt.workspace.project.reviews.reasons
    if action != "reject":
        if reason is not None:
            raise ValidationFailed("a reason is given with a rejection only")
        return None
    if reason is None:
        raise ValidationFailed(f"a rejection needs a reason: one of {', '.join(reasons)}")
    if reason not in reasons:
        raise ValidationFailed(
            f"unknown reason {reason!r}{suggest(reason, reasons)}; reasons (reviews.reasons "
            f"in tagloop.yaml): {', '.join(reasons)}"
        )
    return reason


def decide(
    rt: Runtime,
    chosen: store.Filters,
    action: str,
    actor: audit.Actor,
    *,
    reason: str | None = None,
    note: str | None = None,
    value: Any = None,
    limit: int = MAX_BULK,
    single: bool = False,
) -> Outcome:
    """Apply one decision to every pending item ``chosen`` selects (at most ``limit``).

    ``single``: the filter names one item, which must exist (404) and be pending (409).
    """
    if action not in ACTIONS:
        raise ValidationFailed(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    reason = check_reason(rt, action, reason)
    if note is not None and len(note) > 2000:
        raise ValidationFailed("note: at most 2000 characters")
    if not 1 <= limit <= MAX_BULK:
        raise ValidationFailed(f"limit must be 1 to {MAX_BULK}")
    outcome = Outcome(action)
    with rt.db.read() as conn:
        if single:
            _check_single(conn, chosen)
        pending = dataclasses.replace(chosen, status=store.PENDING)
        rows = store.items(conn, pending, limit=limit)
    if action == "override":
        for tag in {row.tag for row in rows}:  # a bad value fails before anything is written
            _override(rt, tag, value)
    elif value is not None:
        raise ValidationFailed("a value is given with an override only")
    ids = [row.id for row in rows]
    for start in range(0, len(ids), CHUNK):
        _decide_chunk(rt, ids[start : start + CHUNK], action, actor, reason, note, value, outcome)
    if outcome.flows_queued:
        rt.ingestor.flows_queued()
    return outcome


def _override(rt: Runtime, tag: str, value: Any) -> tuple[pins.Mode, Any]:
    """The pin an override makes: ``false`` for a boolean tag keeps it off (an exclusion),
    anything else is the value that applies."""
    if value is False and rt.workspace.tags[tag].value_type == "boolean":
        return "exclude", None
    if value is None:
        raise ValidationFailed("an override needs the 'value' that applies instead")
    return "include", pins.checked_value(rt, tag, value)


def _check_single(conn: Any, chosen: store.Filters) -> None:
    (item_id,) = chosen.ids or (0,)
    row = store.item(conn, item_id)
    if row is None or (
        chosen.entity_types is not None and row.entity_type not in chosen.entity_types
    ):
        raise NotFound(f"no review item {item_id}")
    if row.status != store.PENDING:
        by = f" by {row.decided_by}" if row.decided_by else ""
        raise Conflict(f"review item {item_id} is {row.status}{by}, not pending")


def _decide_chunk(
    rt: Runtime,
    ids: list[int],
    action: str,
    actor: audit.Actor,
    reason: str | None,
    note: str | None,
    value: Any,
    outcome: Outcome,
) -> None:
    db, now = rt.db, rt.clock()
    effects = fx.Effects()
    records: list[dict[str, Any]] = []
    with rt.engine.lock, db.write() as conn:  # lock first: the order commits take
        rows = [r for r in (store.item(conn, i) for i in ids) if r is not None]
        keys = [(r.entity_type, r.entity_id) for r in rows]
        held = tag_store.current(db, conn, keys, {r.tag for r in rows})
        for row in rows:
            if row.status != store.PENDING:
                outcome.skipped.append(row.id)
                continue
            key = (row.entity_type, row.entity_id)
            now_held = held.get((*key, row.tag))
            if (
                now_held is None
                or now_held.status != store.PENDING
                or not same(now_held.value, row.value)
            ):
                store.close(conn, row.id, "withdrawn", now)
                outcome.stale.append(row.id)
                continue
            if action == "override":
                mode, checked = _override(rt, row.tag, value)
                pins.place_in(
                    rt, conn, effects, key, row.tag, mode=mode, value=checked,
                    expires=None, reason=note, actor=actor, now=now, review_id=row.id,
                )  # fmt: skip
            else:
                _set_status(
                    conn, key, row.tag, "active" if action == "approve" else "rejected", now
                )
                fx.history(conn, [_history(row, action, actor, now)])
                effects.touch(row.tag, key)
                if action == "approve":
                    effects.changes.append(_assigned(row, now))
            store.decide(
                conn,
                row.id,
                status=STATUS[action],
                at=now,
                actor=actor.name,
                actor_kind=actor.kind,
                reason=reason,
                note=note,
                override=value if action == "override" else None,
            )
            outcome.decided.append(row.id)
            records.append(
                {
                    "target_id": str(row.id),
                    "before": {"status": store.PENDING, "value": row.value},
                    "after": {
                        "status": STATUS[action],
                        "entity": {"type": row.entity_type, "id": row.entity_id},
                        "tag": row.tag,
                        "value": value if action == "override" else row.value,
                        "reason": reason,
                        "note": note,
                    },
                }
            )
        before = len(effects.changes)
        fx.finish(rt, conn, effects, now)
        outcome.propagated += len(effects.changes) - before
        outcome.flows_queued = outcome.flows_queued or effects.flows_queued
        for record in records:  # last in the transaction: see `audit.record`
            audit.record(
                db, conn, actor=actor, action=f"review.{action}", target_type="review", **record
            )


def _set_status(conn: Any, key: tuple[str, str], tag: str, status: str, now: int) -> None:
    c = tag_assignments.c
    conn.execute(
        update(tag_assignments)
        .where(c.entity_type == key[0], c.entity_id == key[1], c.tag == tag)
        .values(status=status, updated_at=now)
    )


def _history(row: Any, action: str, actor: audit.Actor, now: int) -> dict[str, Any]:
    return {
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "tag": row.tag,
        "change": STATUS[action],
        "value": row.value,
        "previous": None,
        "version": row.version,
        "source": f"review:{actor.name}",
        "evidence": {"review": row.id},
        "at": now,
    }


def _assigned(row: Any, now: int) -> tag_store.TagChange:
    """An approval as the tag change flows see: the entity now holds the tag."""
    return tag_store.TagChange(
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        tag=row.tag,
        change="assigned",
        value=row.value,
        previous=None,
        version=row.version,
        source=row.source,
        evidence=row.evidence,
        at=now,
    )
