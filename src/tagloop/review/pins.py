"""Pins: an entity's manual tag (``include``, with a value) or manual exclusion
(``exclude``) that recomputation leaves alone until it is lifted or expires.

A pin is an assignment with source ``pin:<actor>`` (status ``active`` for an include,
``excluded`` for an exclusion, ``expires_at`` its expiry), which both evaluators skip as
they skip imported values; tags reading the pinned one see what it makes the entity hold.
Pins are kept in ``review_pins`` with who, when and why, lifted ones too. When a pin ends
(lifted, or expired: the entity's timer fires then) the rule's proposal applies again,
through the tag's review policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from tagloop import audit
from tagloop.dictionary.types import BadValue, check_value
from tagloop.errors import NotFound, ValidationFailed
from tagloop.names import suggest
from tagloop.review import effects as fx
from tagloop.review.queue import pin_view
from tagloop.store import entities as entity_store
from tagloop.store import reviews as store
from tagloop.store import tags as tag_store
from tagloop.store.tags import TagChange
from tagloop.timeutil import parse_duration, time_text

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from tagloop.runtime import Runtime

Mode = Literal["include", "exclude"]
SOURCE = "pin:"
EXCLUDED = "excluded"


def checked_value(rt: Runtime, tag: str, value: Any) -> Any:
    """``value`` checked against the tag's value type (a boolean tag's default: true)."""
    definition = rt.workspace.tags[tag]
    value_type = definition.value_type
    if value is None:
        if value_type == "boolean":
            return True
        raise ValidationFailed(f"tag {tag!r} holds values of type {value_type}: give a value")
    try:
        if value_type == "list":
            if not isinstance(value, list) or not value:
                raise BadValue("expected a non-empty list of values")
            return value
        checked = check_value(value_type, value)
    except BadValue as exc:
        raise ValidationFailed(f"value for tag {tag!r}: {exc}") from None
    if value_type == "boolean" and checked is not True:
        raise ValidationFailed(
            f"tag {tag!r} is held or not: pin it with mode exclude to keep it off"
        )
    return checked


def _check_target(
    rt: Runtime, conn: Connection, entity_type: str, entity_id: str, tag: str
) -> None:
    definition = rt.workspace.tags.get(tag)
    if definition is None:
        raise NotFound(f"unknown tag {tag!r}" + suggest(tag, list(rt.workspace.tags)))
    if definition.entity != entity_type:
        raise ValidationFailed(f"tag {tag!r} is a tag of {definition.entity}, not {entity_type}")
    if not entity_store.load(rt.db, conn, [(entity_type, entity_id)]):
        raise NotFound(f"no {entity_type} with id {entity_id!r}")


def place(
    rt: Runtime,
    entity_type: str,
    entity_id: str,
    tag: str,
    *,
    mode: Mode,
    actor: audit.Actor,
    value: Any = None,
    expires: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Pin an entity's tag (replacing any earlier pin of it); audited as ``review.pin``."""
    if mode not in ("include", "exclude"):
        raise ValidationFailed(f"mode must be include or exclude, not {mode!r}")
    if mode == "exclude" and value is not None:
        raise ValidationFailed("an exclusion takes no value")
    if reason is not None and len(reason) > 2000:
        raise ValidationFailed("reason: at most 2000 characters")
    now = rt.clock()
    until = None
    if expires is not None:
        try:
            span = parse_duration(expires)
        except ValueError as exc:
            raise ValidationFailed(f"expires: {exc}") from None
        if span <= 0:
            raise ValidationFailed("expires: give a positive duration such as 30d")
        until = now + span
    effects = fx.Effects()
    with rt.engine.lock, rt.db.write() as conn:
        _check_target(rt, conn, entity_type, entity_id, tag)
        checked = checked_value(rt, tag, value) if mode == "include" else None
        pin_id = place_in(
            rt, conn, effects, (entity_type, entity_id), tag, mode=mode, value=checked,
            expires=until, reason=reason, actor=actor, now=now,
        )  # fmt: skip
        fx.finish(rt, conn, effects, now)
        row = store.pin(conn, pin_id)
        body = pin_view(row)
        audit.record(
            rt.db, conn, actor=actor, action="review.pin", target_type="pin",
            target_id=str(pin_id), after=body,
        )  # fmt: skip
    if effects.flows_queued:
        rt.ingestor.flows_queued()
    return body


def place_in(
    rt: Runtime,
    conn: Connection,
    effects: fx.Effects,
    key: tuple[str, str],
    tag: str,
    *,
    mode: Mode,
    value: Any,
    expires: int | None,
    reason: str | None,
    actor: audit.Actor,
    now: int,
    review_id: int | None = None,
) -> int:
    """Write a pin in the caller's transaction (an override places one too)."""
    db = rt.db
    store.lift_all(conn, key[0], key[1], tag, now, actor.name)
    pin_id = store.add_pin(
        conn,
        {
            "entity_type": key[0],
            "entity_id": key[1],
            "tag": tag,
            "mode": mode,
            "value": value,
            "reason": reason,
            "review_id": review_id,
            "created_by": actor.name,
            "created_by_kind": actor.kind,
            "created_at": now,
            "expires_at": expires,
        },
    )
    previous = tag_store.current(db, conn, [key], [tag]).get((*key, tag))
    status = "active" if mode == "include" else EXCLUDED
    evidence = {"pin": pin_id, "by": actor.name, "reason": reason, "at": time_text(now)}
    if expires is not None:
        evidence["expires"] = time_text(expires)
    version = next((t.version for t in rt.active if t.name == tag), 1)
    # The pin's own assignment (no review: it is a reviewer's decision already); any
    # pending proposal of the entity's tag is closed by it.
    change = TagChange(
        entity_type=key[0],
        entity_id=key[1],
        tag=tag,
        change="assigned" if previous is None else "changed",
        value=value,
        previous=previous.value if previous is not None else None,
        version=version,
        source=f"{SOURCE}{actor.name}",
        evidence=evidence,
        at=now,
        expires=expires,
        status=status,
    )
    tag_store.apply(db, conn, [change])
    if review_id is None:
        # a pin decides what the queue asked: close what is pending
        for row in store.items(conn, store.Filters(entity_type=key[0], entity_id=key[1], tag=tag)):
            store.close(conn, row.id, "superseded", now)
    if status == "active":
        effects.changes.append(change)
    effects.touch(tag, key)
    return pin_id


def lift(rt: Runtime, pin_id: int, actor: audit.Actor) -> dict[str, Any]:
    """Lift a pin: the rule's proposal applies again at once (through the tag's review
    policy), or an imported tag is left without a value until the next upload. Audited as
    ``review.unpin``."""
    now = rt.clock()
    effects = fx.Effects()
    with rt.engine.lock, rt.db.write() as conn:
        row = store.pin(conn, pin_id)
        if (
            row is None
            or row.lifted_at is not None
            or (row.expires_at is not None and row.expires_at <= now)
        ):
            state = "lifted" if row is not None and row.lifted_at is not None else "expired"
            raise NotFound(f"no live pin {pin_id}" + (f" (it is {state})" if row else ""))
        key = (row.entity_type, row.entity_id)
        held = tag_store.current(rt.db, conn, [key], [row.tag]).get((*key, row.tag))
        store.lift(conn, pin_id, now, actor.name)
        if held is not None and held.source.startswith(SOURCE):
            tag_store.apply(
                rt.db,
                conn,
                [
                    TagChange(
                        entity_type=key[0],
                        entity_id=key[1],
                        tag=row.tag,
                        change="removed",
                        value=None,
                        previous=held.value,
                        version=held.version,
                        source=held.source,
                        evidence={"unpinned": pin_id, "by": actor.name},
                        at=now,
                        status=held.status,
                    )
                ],
            )
        effects.touch(row.tag, key, itself=True)
        fx.finish(rt, conn, effects, now)
        body = pin_view(store.pin(conn, pin_id))
        audit.record(
            rt.db, conn, actor=actor, action="review.unpin", target_type="pin",
            target_id=str(pin_id), before=pin_view(row), after=body,
        )  # fmt: skip
    if effects.flows_queued:
        rt.ingestor.flows_queued()
    return body


def listing(
    rt: Runtime,
    *,
    tag: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    entity_types: frozenset[str] | None = None,
    after: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Live pins (neither lifted nor expired), oldest first, a page at a time."""
    if not 1 <= limit <= 1000:
        raise ValidationFailed("limit must be 1 to 1000")
    with rt.db.read() as conn:
        rows = store.live_pins(
            conn, rt.clock(), tag=tag, entity_type=entity_type, entity_id=entity_id,
            entity_types=entity_types, after=after, limit=limit + 1,
        )  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [pin_view(r) for r in rows], "next": rows[-1].id if more and rows else None}
