"""Imported tags: values uploaded from a file rather than computed by a rule.

A CRM's list of key accounts or a finance team's credit grades arrive as a CSV of entity
id and value (`tagloop tags import`, ``POST /v1/tags/{name}/import``). Each upload is
checked line by line against the tag's value type; good lines are applied, bad ones are
reported with their ``file:line`` and nothing else is lost. An upload either replaces the
tag's whole content (the default: entities missing from the file lose the tag) or merges
into it. With a validity period (``valid_for`` on the tag, or given with the upload) the
values stop holding when it runs out: the entity's timer fires then, the engine removes
the value and re-evaluates the tags that read it (see `Engine.evaluate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tagloop import audit
from tagloop.dictionary.types import BadValue, check_value
from tagloop.engine.evaluator import Engine, Touched, same
from tagloop.engine.plans import ActiveTag
from tagloop.engine.starts import FlowStarter
from tagloop.errors import NotFound, ValidationFailed
from tagloop.names import suggest
from tagloop.review.policy import DROPPED, gate
from tagloop.sources.files import Record
from tagloop.sources.mapping import from_text
from tagloop.store import entities as entity_store
from tagloop.store import identities as identity_store
from tagloop.store import tags as tag_store
from tagloop.store import timers as timer_store
from tagloop.store.db import Database
from tagloop.store.tags import TagChange
from tagloop.timeutil import parse_duration, time_text

Mode = Literal["replace", "merge"]
SOURCE = "import"


CHUNK = 1000
SAMPLES = 20  # rejected lines reported in full; the rest are counted


@dataclass
class ImportReport:
    read: int = 0
    assigned: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    propagated: int = 0  # changes of the computed tags that read the imported one
    rejected: int = 0
    samples: list[str] = field(default_factory=list)  # "file:line: message"
    expires: str | None = None

    def reject(self, where: str, line: int, message: str) -> None:
        self.rejected += 1
        if len(self.samples) < SAMPLES:
            self.samples.append(f"{where}:{line}: {message}")


@dataclass(frozen=True, slots=True)
class Value:
    line: int
    value: Any


def imported_tag(active: Iterable[ActiveTag], name: str) -> ActiveTag:
    """The active imported tag ``name``, or a clear error."""
    for tag in active:
        if tag.name == name:
            if tag.definition.spec.kind != "imported":
                raise ValidationFailed(
                    f"tag {name!r} is computed by its rule; only tags declared with "
                    "'kind: imported' take uploaded values"
                )
            return tag
    raise NotFound(f"unknown tag {name!r}" + suggest(name, [t.name for t in active]))


def parse(
    tag: ActiveTag,
    records: Iterable[Record],
    report: ImportReport,
    *,
    where: str,
    id_column: str = "id",
    value_column: str = "value",
    text: bool = True,
) -> dict[str, Value]:
    """The values of ``records`` by entity id, checked against the tag's type.

    ``text`` says the cells are text (CSV) and are converted to the type first, as CSV
    attributes are. A boolean tag needs no value column (each listed entity holds it).
    A multi-valued tag takes a JSON list, or in CSV the values separated by ``|``.
    """
    spec = tag.definition.spec
    value_type = spec.value_type or "boolean"
    found: dict[str, Value] = {}
    for record in records:
        report.read += 1
        if record.values is None:
            report.reject(where, record.line, record.error or "unreadable record")
            continue
        raw_id = record.values.get(id_column)
        entity_id = str(raw_id).strip() if raw_id is not None else ""
        if not entity_id:
            report.reject(where, record.line, f"no entity id in column {id_column!r}")
            continue
        try:
            value = _value(record.values, value_column, value_type, spec.multi, text)
        except BadValue as exc:
            report.reject(where, record.line, f"{value_column}: {exc}")
            continue
        earlier = found.get(entity_id)
        if earlier is not None:
            report.reject(
                where, record.line, f"entity {entity_id!r} is already given on line {earlier.line}"
            )
            continue
        found[entity_id] = Value(record.line, value)
    return found


def _value(values: dict[str, Any], column: str, value_type: str, multi: bool, text: bool) -> Any:
    if column not in values:
        if value_type == "boolean" and not multi:
            return True
        raise BadValue(f"missing (the tag's values are of type {value_type})")
    raw = values[column]
    if multi:
        items = raw.split("|") if text and isinstance(raw, str) else raw
        if not isinstance(items, list):
            raise BadValue("expected a list of values")
        return [_one(item, value_type, text) for item in items]
    return _one(raw, value_type, text)


def _one(raw: Any, value_type: str, text: bool) -> Any:
    if isinstance(raw, str) and not raw.strip():
        raise BadValue("empty value")
    if text and isinstance(raw, str):
        raw = from_text(value_type, raw.strip())
    value = check_value(value_type, raw)
    if value is None or value == "":
        raise BadValue("empty value")
    return value


def apply(
    db: Database,
    engine: Engine,
    tag: ActiveTag,
    values: dict[str, Value],
    report: ImportReport,
    *,
    where: str,
    now: int,
    mode: Mode = "replace",
    valid_for: str | None = None,
    actor: audit.Actor | None = None,
    flows: FlowStarter | None = None,
    chain: Sequence[str] = (),
) -> None:
    """Write ``values`` as the tag's assignments, in short transactions of `CHUNK`
    entities, and re-evaluate the computed tags that read the tag.

    Each transaction that changes assignments appends a ``tag.import`` audit record by
    ``actor`` (default `Actor.system`) with the values before and after. With ``flows``,
    the changes (the tag's and those it propagates to) start the flows they trigger, in
    the same transaction; ``chain``: the flows that led to the import (a flow's
    ``add_tag``), which stops loops."""
    actor = actor or audit.Actor.system()
    entity_type = tag.definition.entity
    period = valid_for or tag.definition.spec.valid_for
    try:
        expires = now + parse_duration(period) if period else None
    except ValueError as exc:
        raise ValidationFailed(f"valid_for: {exc}") from None
    report.expires = time_text(expires) if expires is not None else None
    values = _resolve(db, entity_type, values, report, where)
    ids = list(values)
    queued = False
    for chunk in _chunks(ids):
        with engine.lock, db.write() as conn:  # lock first: the order commits take
            rows = entity_store.load(db, conn, [(entity_type, i) for i in chunk])
            current = tag_store.current(db, conn, rows, [tag.name])
            changes = []
            for entity_id in chunk:
                given = values[entity_id]
                if (entity_type, entity_id) not in rows:
                    report.reject(where, given.line, f"no {entity_type} with id {entity_id!r}")
                    continue
                change = _change(
                    tag, entity_type, entity_id, given, current, now, expires, where, report
                )
                if change is not None:
                    changes.append(change)
            tag_store.apply(db, conn, changes)
            followed = _propagate(db, conn, engine, tag, rows, now, report)
            _audit(db, conn, actor, tag, changes, where, mode)
            if flows is not None:
                queued = flows.start_flows(conn, [*changes, *followed], now, chain) or queued
    if queued and flows is not None:
        flows.flows_queued()
    if mode == "replace":
        _remove_missing(db, engine, tag, set(ids), now, report, actor, where, flows)


def _resolve(
    db: Database, entity_type: str, values: dict[str, Value], report: ImportReport, where: str
) -> dict[str, Value]:
    """The values by the entity each given id names now (another system's id names the
    entity it is an alias of); an entity given twice under two of its ids is refused."""
    with db.read() as conn:
        aliases = identity_store.lookup(db, conn, entity_type, values)
    if not aliases:
        return values
    resolved: dict[str, Value] = {}
    given_as: dict[str, str] = {}
    for given_id, value in values.items():
        entity_id = aliases.get(given_id, given_id)
        earlier = resolved.get(entity_id)
        if earlier is not None:
            report.reject(
                where,
                value.line,
                f"entity {given_id!r} is {entity_id!r}, already given on line {earlier.line}"
                f" (as {given_as[entity_id]!r})",
            )
            continue
        resolved[entity_id], given_as[entity_id] = value, given_id
    return resolved


def _change(
    tag: ActiveTag,
    entity_type: str,
    entity_id: str,
    given: Value,
    current: dict[tuple[str, str, str], tag_store.Held],
    now: int,
    expires: int | None,
    where: str,
    report: ImportReport,
) -> TagChange | None:
    held = current.get((entity_type, entity_id, tag.name))
    if held is not None and held.source.startswith("pin:"):
        report.unchanged += 1  # a reviewer's pin outlasts uploads until it is lifted
        return None
    if held is None:
        kind = "assigned"
        report.assigned += 1
    elif not same(held.value, given.value):
        kind = "changed"
        report.changed += 1
    else:
        report.unchanged += 1
        if held.expires == expires and held.version == tag.version:
            return None
        kind = "confirmed"  # same value, validity renewed: no history entry
    spec = tag.definition.spec.review
    # uploaded values are facts (confidence 1.0) but may still wait for a reviewer
    if kind == "confirmed":
        status = held.status if held is not None else "active"
    else:
        status = gate(spec, tag.name, entity_type, entity_id, None)
    if status == DROPPED:  # only under thresholds a certain value never meets
        return None
    return TagChange(
        entity_type=entity_type,
        entity_id=entity_id,
        tag=tag.name,
        change=kind,
        value=given.value,
        previous=held.value if held is not None else None,
        version=tag.version,
        source=SOURCE,
        evidence={"imported": where, "line": given.line, "at": time_text(now)},
        at=now,
        expires=expires,
        status=status,
        review=spec.mode if spec is not None else None,
    )


def _audit(
    db: Database,
    conn: Any,
    actor: audit.Actor,
    tag: ActiveTag,
    changes: list[TagChange],
    where: str,
    mode: Mode,
) -> None:
    """One audit record for the changes of one transaction: values by entity id."""
    if not changes:
        return
    before = {c.entity_id: c.previous for c in changes if c.change != "assigned"}
    audit.record(
        db,
        conn,
        actor=actor,
        action="tag.import",
        target_type="tag",
        target_id=tag.name,
        before={"values": before} if before else None,
        after={
            "values": {c.entity_id: c.value for c in changes},
            "upload": where,
            "mode": mode,
            "expires": time_text(changes[0].expires) if changes[0].expires else None,
        },
    )


def _remove_missing(
    db: Database,
    engine: Engine,
    tag: ActiveTag,
    kept: set[str],
    now: int,
    report: ImportReport,
    actor: audit.Actor,
    where: str,
    flows: FlowStarter | None,
) -> None:
    entity_type = tag.definition.entity
    with db.read() as conn:
        gone = [
            i
            for t, i in tag_store.assigned_ids(conn, tag.name)
            if t == entity_type and i not in kept
        ]
    remove(
        db,
        engine,
        tag,
        gone,
        report,
        where=where,
        now=now,
        actor=actor,
        mode="replace",
        flows=flows,
    )


def remove(
    db: Database,
    engine: Engine,
    tag: ActiveTag,
    ids: list[str],
    report: ImportReport,
    *,
    where: str,
    now: int,
    actor: audit.Actor | None = None,
    mode: Mode = "merge",
    flows: FlowStarter | None = None,
    chain: Sequence[str] = (),
) -> None:
    """Take the imported ``tag`` away from the entities ``ids`` (those that hold it), and
    re-evaluate the computed tags that read it; audited, and starting flows, like an
    upload (`apply`)."""
    actor = actor or audit.Actor.system()
    entity_type = tag.definition.entity
    queued = False
    for chunk in _chunks(ids):
        with engine.lock, db.write() as conn:  # lock first: the order commits take
            rows = entity_store.load(db, conn, [(entity_type, i) for i in chunk])
            current = tag_store.current(db, conn, rows, [tag.name])
            changes = [
                TagChange(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    tag=tag.name,
                    change="removed",
                    value=None,
                    previous=held.value,
                    version=held.version,
                    source=SOURCE,
                    evidence={"replaced": True} if mode == "replace" else {"removed": where},
                    at=now,
                    status=held.status,
                    review=tag.definition.spec.review.mode if tag.definition.spec.review else None,
                )
                for (_, entity_id, _), held in current.items()
                if not held.source.startswith("pin:")  # a pin outlasts uploads
            ]
            report.removed += len(changes)
            tag_store.apply(db, conn, changes)
            followed = _propagate(db, conn, engine, tag, rows, now, report)
            _audit(db, conn, actor, tag, changes, where, mode)
            if flows is not None:
                queued = flows.start_flows(conn, [*changes, *followed], now, chain) or queued
    if queued and flows is not None:
        flows.flows_queued()


def _propagate(
    db: Database,
    conn: Any,
    engine: Engine,
    tag: ActiveTag,
    rows: dict[tuple[str, str], entity_store.EntityRow],
    now: int,
    report: ImportReport,
) -> list[TagChange]:
    """Re-evaluate the tags reading ``tag`` and set the entities' timers (expiry); returns
    the changes."""
    from tagloop.engine.batch import dependents

    plan = engine.plans.get(tag.definition.entity)
    if plan is None or not rows:
        return []
    names = frozenset(dependents(plan.tags, [tag.name]) - {tag.name})
    engine.prepare(db, conn, rows)
    touched = {key: Touched(row, names=names) for key, row in rows.items()}
    changes, timers = engine.evaluate(db, conn, touched, {}, now)
    tag_store.apply(db, conn, changes)
    timer_store.set_due(db, conn, timers)
    report.propagated += len(changes)
    return changes


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]
