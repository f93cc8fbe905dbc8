"""Why an entity has a tag, or has not: the stored assignment with its evidence, and the
rule evaluated again now with every value it looked at (``tagloop explain``, the API)."""

from __future__ import annotations

from typing import Any

from tagloop.engine.evaluator import Engine
from tagloop.engine.plans import ActiveTag
from tagloop.errors import NotFound
from tagloop.names import suggest
from tagloop.store import entities as entity_store
from tagloop.store import tags as tag_store
from tagloop.store.db import Database
from tagloop.store.models import scores_for
from tagloop.timeutil import time_text


def explain(
    db: Database,
    engine: Engine,
    active: list[ActiveTag],
    entity_type: str,
    entity_id: str,
    tag_name: str,
) -> dict[str, Any]:
    """The explanation of ``tag_name`` on one entity as a JSON-ready dict.

    ``assignment`` is what is stored (value, since, source, and the evidence recorded when
    it was assigned); ``now`` is the rule evaluated at this moment, held or not, with its
    values, so a missing tag is explained too.
    """
    tag = next((t for t in active if t.name == tag_name), None)
    if tag is None:
        raise NotFound(f"unknown tag {tag_name!r}" + suggest(tag_name, [t.name for t in active]))
    if tag.definition.entity != entity_type:
        raise NotFound(
            f"tag {tag_name!r} is a tag of {tag.definition.entity}, not of {entity_type}"
        )
    now = engine.clock()
    with engine.lock, db.read() as conn:
        row = entity_store.get(conn, entity_type, entity_id)
        if row is None:
            raise NotFound(f"no {entity_type} with id {entity_id!r}")
        stored = next(
            (a for a in tag_store.for_entity(conn, entity_type, entity_id) if a.tag == tag_name),
            None,
        )
        key = (entity_type, entity_id)
        names = engine.tag_names.get(entity_type, [])
        held = {name: h for (_, _, name), h in tag_store.current(db, conn, [key], names).items()}
        if tag.computed:
            engine.prepare(db, conn, {key: row})
            ctx = engine.context(key, row, held, now)
            if tag.definition.deps.scores:  # score('m') reads the stored scores
                ctx.scores = scores_for(db, conn, [key], tag.definition.deps.scores).get(key, {})
            is_held, value = tag.evaluate(ctx)
            body = engine.explain(tag, ctx)
            current = {
                "held": is_held,
                "value": value if is_held else None,
                "values": body["values"],
            }
        else:
            kept = held.get(tag_name)
            valid = kept is not None and (kept.expires is None or kept.expires > now)
            current = {"held": valid, "value": kept.value if valid and kept else None, "values": {}}
    definition = tag.definition
    return {
        "entity": {"type": entity_type, "id": entity_id},
        "tag": tag_name,
        "kind": definition.spec.kind,
        "rule": definition.rule.text if definition.rule is not None else None,
        "value": definition.value.text if definition.value is not None else None,
        "version": tag.version,
        "defined_at": definition.location,
        "assignment": None
        if stored is None
        else {
            "value": stored.value,
            "since": time_text(stored.since),
            "source": stored.source,
            "version": stored.version,
            "expires_at": time_text(stored.expires_at) if stored.expires_at else None,
            "evidence": stored.evidence,
        },
        "now": {"at": time_text(now), **current},
    }
