"""The streaming evaluator: events in, tag changes out, inside the ingestion transaction.

For each commit the engine (1) makes sure it holds the current state of every touched
entity, rebuilding from the events table any state it lacks or that another process has
made stale, (2) folds the new events into those states, (3) re-evaluates exactly the tags
that can have changed, in dependency order (a changed tag re-evaluates the tags that read
it), and (4) computes when each entity's tags may next change with time alone.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from tagloop.engine.context import EntityContext, evidence
from tagloop.engine.plans import RULE_SOURCE, ActiveTag, TypePlan, build_plans
from tagloop.engine.state import EntityState
from tagloop.engine.timing import Timing, timing
from tagloop.models.spec import confidence as model_confidence
from tagloop.review.policy import outcome
from tagloop.rules import bound as b
from tagloop.store import tags as tag_store
from tagloop.store.db import Database
from tagloop.store.entities import EntityRow
from tagloop.store.events import chunks
from tagloop.store.models import scores_for
from tagloop.store.tags import Held, TagChange
from tagloop.store.timers import Timer
from tagloop.timeutil import now_us, parse_duration, time_text
from tagloop.workspace import Workspace

EntityKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as rebuilt from the store: what aggregate inputs read."""

    id: str
    type: str
    time: int
    properties: dict[str, Any]


@dataclass
class Touched:
    """An entity to evaluate in this commit."""

    row: EntityRow
    created: bool = False
    changed: frozenset[str] = frozenset()
    recheck: bool = False  # a timer fired: re-evaluate its time-dependent tags
    names: frozenset[str] | None = None  # evaluate exactly these tags (recomputation)


class Engine:
    def __init__(
        self,
        workspace: Workspace,
        active: Iterable[ActiveTag],
        *,
        clock: Callable[[], int] = now_us,
        tick: str = "1m",
        cache_size: int = 200_000,
    ) -> None:
        active = list(active)
        self.workspace = workspace
        self.tz = workspace.timezone
        self.clock = clock
        self.tick = parse_duration(tick)
        self.plans: dict[str, TypePlan] = build_plans(active)
        self.timings: dict[str, Timing] = {
            tag.name: timing(_roots(tag), self.tick) for tag in active if tag.computed
        }
        self.tag_names = {
            entity_type: [t.name for t in active if t.definition.entity == entity_type]
            for entity_type in {t.definition.entity for t in active}
        }
        # models whose scores rules read (score('churn')): loaded with the assignments
        self.score_models: dict[str, set[str]] = defaultdict(set)  # by entity type
        for t in active:
            if t.computed and t.definition.deps.scores:
                self.score_models[t.definition.entity] |= t.definition.deps.scores
        self.cache: OrderedDict[EntityKey, EntityState] = OrderedDict()
        self.cache_size = cache_size
        # Whoever uses the cached states (commits, recomputation, explain) holds this.
        self.lock = threading.RLock()

    def keeps_state(self, entity_type: str) -> bool:
        plan = self.plans.get(entity_type)
        return plan is not None and bool(plan.inputs)

    # -- state --------------------------------------------------------------------------
    def prepare(
        self, db: Database, conn: Connection, rows: Mapping[EntityKey, EntityRow | None]
    ) -> None:
        """Make the cached state of these entities current, as of before this commit's
        events: a state is reused only if it reflects as many events as the profile."""
        stale = []
        for key, row in rows.items():
            if not self.keeps_state(key[0]):
                continue
            if row is None:  # a new entity: no stored event to rebuild from
                self._remember(key, EntityState(0))
                continue
            state = self.cache.get(key)
            if state is None or state.version != row.event_count:
                stale.append(key)
        if stale:
            self._rebuild(db, conn, stale, rows)

    def _rebuild(
        self,
        db: Database,
        conn: Connection,
        keys: list[EntityKey],
        rows: Mapping[EntityKey, EntityRow | None],
    ) -> None:
        now = self.clock()
        by_type: dict[str, list[str]] = defaultdict(list)
        for entity_type, entity_id in keys:
            by_type[entity_type].append(entity_id)
        for key in keys:
            row = rows.get(key)
            self._remember(key, EntityState(row.event_count if row is not None else 0))
        for entity_type, ids in by_type.items():
            plan = self.plans[entity_type]
            inputs = list(plan.inputs.values())
            for entity_id, seq, event in _stored_events(
                db, conn, entity_type, ids, plan.event_types
            ):
                state = self.cache[(entity_type, entity_id)]
                state.apply(inputs, event, seq, now, self.tz)

    def _remember(self, key: EntityKey, state: EntityState) -> None:
        self.cache[key] = state
        self.cache.move_to_end(key)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def forget(self, keys: Iterable[EntityKey]) -> None:
        """Drop states a failed transaction may have changed (they rebuild on next use)."""
        for key in keys:
            self.cache.pop(key, None)

    def apply(
        self, events: Iterable[tuple[Any, int]], now: int
    ) -> dict[EntityKey, list[b.AggInput]]:
        """Fold newly stored ``(event, seq)`` into the states of their entities; returns
        the aggregate inputs each entity's events entered."""
        entered: dict[EntityKey, list[b.AggInput]] = defaultdict(list)
        for event, seq in sorted(events, key=lambda pair: (pair[0].time, pair[1])):
            primary = (event.entity_type, event.entity_id)
            for key in (primary, *((t, i) for t, i in event.related.items() if (t, i) != primary)):
                plan = self.plans.get(key[0])
                if plan is None or not plan.inputs:
                    continue
                state = self.cache.get(key)
                if state is None:  # a new entity
                    state = EntityState(0)
                    self._remember(key, state)
                state.version += 1
                entered[key] += state.apply(plan.inputs.values(), event, seq, now, self.tz)
        return entered

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(
        self,
        db: Database,
        conn: Connection,
        touched: Mapping[EntityKey, Touched],
        entered: Mapping[EntityKey, list[b.AggInput]],
        now: int,
    ) -> tuple[list[TagChange], list[Timer]]:
        """Tag changes for the touched entities, and their next timer due times."""
        candidates = {k: v for k, v in touched.items() if k[0] in self.plans}
        lookup = [k for k, v in candidates.items() if not v.created]
        names = {n for k in lookup for n in self.tag_names.get(k[0], ())}
        held = tag_store.current(db, conn, lookup, names) if lookup else {}
        held_by_entity: dict[EntityKey, dict[str, Held]] = defaultdict(dict)
        for (entity_type, entity_id, name), value in held.items():
            held_by_entity[(entity_type, entity_id)][name] = value
        scores = (
            scores_for(
                db,
                conn,
                [k for k in lookup if k[0] in self.score_models],
                set().union(*self.score_models.values()),
            )
            if self.score_models and any(k[0] in self.score_models for k in lookup)
            else {}
        )
        changes: list[TagChange] = []
        timers: list[Timer] = []
        for key, info in candidates.items():
            plan = self.plans[key[0]]
            ctx = self.context(key, info.row, held_by_entity.get(key, {}), now)
            ctx.scores = scores.get(key, {})
            if info.names is not None:
                todo = set(info.names)
            else:
                todo = set(plan.affected(info.created, info.changed, entered.get(key, ())))
            if info.recheck:
                todo |= {t.name for t in plan.timed}
            for expired in _expire(key, ctx, now):
                changes.append(expired)
                # an expired pin hands a computed tag back to its rule
                todo |= {expired.tag, *(t.name for t in plan.by_tag.get(expired.tag, ()))}
            for tag in plan.tags:
                if tag.name not in todo:
                    continue
                change = self._diff(tag, key, ctx, now)
                if change is not None:
                    changes.append(change)
                    todo |= {t.name for t in plan.by_tag.get(tag.name, ())}
            expiring = [h.expires for h in ctx.tags.values() if h.expires is not None]
            if plan.timed or expiring or info.recheck:
                due = expiring + [
                    d
                    for t in plan.timed
                    if (d := self.timings[t.name].next_change(ctx)) is not None
                ]
                full = all(t.name in todo for t in plan.timed)
                timers.append((key[0], key[1], min(due) if due else None, full))
        return changes, timers

    def context(
        self, key: EntityKey, row: EntityRow, tags: dict[str, Held], now: int
    ) -> EntityContext:
        plan = self.plans.get(key[0])
        state = self.cache.get(key) if plan is not None and plan.inputs else None
        inputs = plan.inputs if plan is not None else {}
        if state is not None:
            for input_key, kept in state.inputs.items():
                kept.advance(inputs[input_key], now)
        return EntityContext(row, state, inputs, now, self.tz, dict(tags))

    def _diff(
        self, tag: ActiveTag, key: EntityKey, ctx: EntityContext, now: int
    ) -> TagChange | None:
        held = ctx.tags.get(tag.name)
        if held is not None and not held.source.startswith(RULE_SOURCE):
            return None  # imported and manual assignments are not the rule's to change
        is_held, value = tag.evaluate(ctx)
        kind = change_kind(tag, held, is_held, value)
        if kind is None:  # the common case, kept cheap: most evaluations change nothing
            return None
        # a model tag's confidence is the score it read (the same in batch: engine/batch.py)
        confidence = model_confidence(tag.definition.deps.scores, ctx.score) if is_held else None
        change = rule_change(
            tag,
            kind,
            key[0],
            key[1],
            held,
            is_held,
            value,
            confidence,
            now,
            evidence=lambda: self.explain(tag, ctx),
        )
        if change is None:
            return None
        # the tags evaluated after this one (those reading it) see it as it now stands
        if change.change == "removed":
            ctx.tags.pop(tag.name, None)
        else:
            ctx.tags[tag.name] = Held(value, tag.version, tag.source, status=change.status)
        return change

    def explain(self, tag: ActiveTag, ctx: EntityContext) -> dict[str, Any]:
        """Why the tag holds (or not): its rule and value, version, and the values it
        looked at."""
        definition = tag.definition
        body: dict[str, Any] = {}
        if definition.rule is not None:
            body["rule"] = definition.rule.text
        if definition.value is not None:
            body["value"] = definition.value.text
        body["version"] = tag.version
        body["values"] = evidence(_roots(tag), ctx)
        return body


def _expire(key: EntityKey, ctx: EntityContext, now: int) -> list[TagChange]:
    """Remove the imported values whose validity has run out (``expires <= now``: a
    value valid for 30 days from t no longer holds at t + 30 days, as windows end)."""
    out = []
    for name, held in list(ctx.tags.items()):
        if held.expires is not None and held.expires <= now:
            del ctx.tags[name]
            out.append(expired(key[0], key[1], name, held, now))
    return out


def expired(entity_type: str, entity_id: str, tag: str, held: Held, now: int) -> TagChange:
    """The removal of an assignment whose time has run out (``held.expires <= now``): an
    imported value's validity, or a pin's."""
    assert held.expires is not None
    return TagChange(
        entity_type=entity_type,
        entity_id=entity_id,
        tag=tag,
        change="removed",
        value=None,
        previous=held.value,
        version=held.version,
        source=held.source,
        evidence={"expired": time_text(held.expires)},
        at=now,
        status=held.status,
    )


def change_kind(tag: ActiveTag, held: Held | None, is_held: bool, value: Any) -> str | None:
    """What the rule's result (``is_held``, ``value``) does to ``held``, the entity's
    assignment of a rule tag, before any review policy: assigned, removed, changed,
    confirmed (held under a new version), or None (nothing)."""
    if is_held and held is None:
        return "assigned"
    if not is_held and held is not None:
        return "removed"
    if is_held and held is not None and not same(value, held.value):
        return "changed"
    if is_held and held is not None and held.version != tag.version:
        return "confirmed"  # still held under a new rule version: refresh, no history
    return None


def rule_change(
    tag: ActiveTag,
    kind: str,
    entity_type: str,
    entity_id: str,
    held: Held | None,
    is_held: bool,
    value: Any,
    confidence: float | None,
    now: int,
    *,
    evidence: Callable[[], dict[str, Any]],
) -> TagChange | None:
    """The change of ``kind`` (`change_kind`) that the rule's result (``is_held``,
    ``value``, with ``confidence``) makes to ``held`` under the tag's review policy; None:
    none. ``evidence`` is asked for only if the tag is held after it (the stream explains
    from its context, the batch from its query's values). Both evaluators build their
    changes here, so that they agree.
    """
    spec = tag.definition.spec.review
    decided = outcome(spec, kind, tag.name, entity_type, entity_id, confidence, held)
    if decided is None:
        return None
    kind, status = decided
    is_held = kind != "removed"  # a dropped proposal removes what was held
    return TagChange(
        entity_type=entity_type,
        entity_id=entity_id,
        tag=tag.name,
        change=kind,
        value=value if is_held else None,
        previous=held.value if held is not None else None,
        version=tag.version,
        source=tag.source,
        evidence=evidence() if is_held else None,
        at=now,
        status=status,
        confidence=confidence if is_held else None,
        review=spec.mode if spec is not None else None,
    )


def same(a: Any, c: Any) -> bool:
    """Value equality as stored: 3 and 3.0 are the same value, lists compare by items, and
    numbers within a relative 1e-12 are the same (a database sums doubles in its own order,
    the stream exactly: an average may differ in its last bits, which is not a change).

    >>> same(3, 3.0), same(0.1 + 0.2, 0.3), same(True, 1), same([1, "a"], (1.0, "a"))
    (True, True, False, True)
    """
    if isinstance(a, list | tuple) and isinstance(c, list | tuple):
        return len(a) == len(c) and all(same(x, y) for x, y in zip(a, c, strict=True))
    if isinstance(a, bool) or isinstance(c, bool):
        return a is c or (isinstance(a, bool) and isinstance(c, bool) and a == c)
    if isinstance(a, float | int) and isinstance(c, float | int):
        return a == c or math.isclose(a, c, rel_tol=1e-12)
    return bool(a == c)


def _roots(tag: ActiveTag) -> list[b.B]:
    definition = tag.definition
    return [c.bound for c in (definition.rule, definition.value) if c is not None]


def _stored_events(
    db: Database, conn: Connection, entity_type: str, ids: list[str], types: frozenset[str]
) -> list[tuple[str, int, StoredEvent]]:
    """The events of the entities (as primary or related entity) of the given types, in
    time order: what rebuilding their state needs."""
    if not types:
        return []
    found = []
    for chunk in chunks(ids, 400):
        id_cond, id_params = db.in_list("e.entity_id", chunk)
        link_cond, link_params = db.in_list("l.entity_id", chunk)
        type_cond, type_params = db.in_list("e.type", sorted(types))
        query = (
            f"SELECT e.entity_id, e.seq, e.id, e.type, e.time, e.properties FROM events e "
            f"WHERE e.entity_type = ? AND {id_cond} AND {type_cond} "
            f"UNION ALL "
            f"SELECT l.entity_id, e.seq, e.id, e.type, e.time, e.properties FROM event_links l "
            f"JOIN events e ON e.seq = l.event_seq "
            f"WHERE l.entity_type = ? AND {link_cond} AND {type_cond}"
        )
        params = (entity_type, *id_params, *type_params, entity_type, *link_params, *type_params)
        for row in db.fetch(conn, query, params):
            properties = orjson.loads(row[5]) if isinstance(row[5], str) else row[5]
            found.append((row[0], row[1], StoredEvent(row[2], row[3], row[4], properties)))
    found.sort(key=lambda item: (item[2].time, item[1]))
    return found
