"""Batch evaluation: tags for all entities of a type at once, computed inside a database.

`evaluate` runs one query per entity type (see `tagloop.rules.sql.query`) on the store
itself (SQLite or PostgreSQL) or on DuckDB, loaded from the store through Arrow; it gives
exactly what the streaming evaluator gives at the same ``now``. `recompute` writes the
result as tag assignments, with evidence, and arms the timers of time-dependent tags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlglot import exp

from tagloop.engine import definitions, periods
from tagloop.engine.evaluator import Engine, change_kind, expired, rule_change
from tagloop.engine.plans import RULE_SOURCE, ActiveTag
from tagloop.engine.starts import FlowStarter
from tagloop.models.spec import confidence as model_confidence
from tagloop.review.policy import RULE_CONFIDENCE
from tagloop.rules import bound as b
from tagloop.rules.sql.dialects import DIALECTS, Dialect, lit
from tagloop.rules.sql.expr import Compiler, Unsupported
from tagloop.rules.sql.query import _EMPTY, BatchQuery, _Resolver, col, with_ctes
from tagloop.store import reviews as review_store
from tagloop.store import tags as tag_store
from tagloop.store.db import Database
from tagloop.store.tags import TagChange
from tagloop.timeutil import time_text

Fetch = Callable[[str], list[tuple[Any, ...]]]


@dataclass
class Result:
    held: bool
    value: Any
    evidence: dict[str, Any] = field(default_factory=dict)
    confidence: float = RULE_CONFIDENCE  # what the review policy's thresholds compare


def closure(active: Iterable[ActiveTag], names: Iterable[str]) -> list[ActiveTag]:
    """``names`` with every computed tag they read, in dependency order."""
    by_name = {t.name: t for t in active}
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        tag = by_name.get(name)
        if tag is None or name in wanted or not tag.computed:
            continue
        wanted.add(name)
        pending.extend(tag.definition.deps.tags)
    return [t for t in by_name.values() if t.name in wanted]


def _evidence_nodes(tag: ActiveTag) -> list[b.B]:
    nodes: dict[str, b.B] = {}
    for part in (tag.definition.rule, tag.definition.value):
        if part is None:
            continue
        for node in part.bound.walk():
            if (
                isinstance(node, b.Attr | b.TagRef | b.Streak | b.ScoreRef)
                or (isinstance(node, b.Agg) and not node.per_period)
                or (isinstance(node, b.Func) and node.name in ("days_since", "hours_since"))
            ):
                nodes.setdefault(node.text, node)
    return list(nodes.values())


def _score_texts(tag: ActiveTag) -> dict[str, str]:
    """model -> the text of its ``score('m')`` in the tag's rule (its evidence key)."""
    return {node.model: node.text for node in _evidence_nodes(tag) if isinstance(node, b.ScoreRef)}


def _query(
    dialect: Dialect,
    engine: Engine,
    entity_type: str,
    tags: list[ActiveTag],
    now: int,
    ids: list[str] | None = None,
) -> BatchQuery:
    """The query computing ``tags``; the tags they read that it does not compute (imported
    ones, or computed earlier) are read from the current assignments."""
    computed = {t.name for t in tags}
    external = {
        name: engine.workspace.tags[name].value_type
        for t in tags
        for name in t.definition.deps.tags
        if name not in computed and name in engine.workspace.tags
    }
    return BatchQuery(dialect, entity_type, tags, now, engine.tz, ids=ids, external=external)


def evaluate(
    fetch: Fetch,
    dialect: Dialect,
    engine: Engine,
    entity_type: str,
    tags: list[ActiveTag],
    now: int,
    *,
    ids: list[str] | None = None,
    evidence: bool = True,
) -> dict[str, dict[str, Result]]:
    """The value of each of ``tags`` (computed, one entity type, dependency closure
    included) for each entity, computed by ``dialect`` through ``fetch``."""
    query = _query(dialect, engine, entity_type, tags, now, ids)
    tree = query.build()
    extra: list[tuple[int, b.B]] = []
    if evidence:
        resolver = _Resolver(query, "ent", None)
        compiler = Compiler(dialect, resolver)
        columns = []
        for i, tag in enumerate(tags):
            for node in _evidence_nodes(tag):
                compiled = compiler.compile(node)
                sql = compiled.json if compiled.type == "any" else compiled.sql
                columns.append(exp.alias_(sql or exp.Null(), f"e{len(extra)}", quoted=True))
                extra.append((i, node))
        if columns:
            tree = tree.select(*columns)  # type: ignore[attr-defined]
    rows = fetch(dialect.sql(tree))
    results: dict[str, dict[str, Result]] = {}
    width = 1 + 2 * len(tags)
    scored = [(t, _score_texts(t)) for t in tags if t.definition.deps.scores and evidence]
    for row in rows:
        found: dict[str, Result] = {}
        for i, tag in enumerate(tags):
            held = bool(row[1 + 2 * i])
            value = decode(row[2 + 2 * i], tag.definition.value_type) if held else None
            found[tag.name] = Result(held, value)
        for (i, node), raw in zip(extra, row[width:], strict=True):
            found[tags[i].name].evidence[node.text] = evidence_value(raw, node.type)
        for tag, texts in scored:
            result = found[tag.name]
            if result.held:  # a model tag's confidence is its score, as in Engine._diff
                seen = {m: result.evidence.get(text) for m, text in texts.items()}
                result.confidence = model_confidence(texts, seen.get)
        results[row[0]] = found
    if evidence:
        for tag in tags:
            for node in _evidence_nodes(tag):
                if isinstance(node, b.Streak):
                    _period_evidence(fetch, query, tag.name, node, results)
    return results


def _period_evidence(
    fetch: Fetch,
    query: BatchQuery,
    name: str,
    node: b.Streak,
    results: dict[str, dict[str, Result]],
) -> None:
    """For the holders of a streak tag, each aggregate of the condition in each counted
    period (``sum(order.amount) per month``), as the streaming evaluator records it: the
    periods of the streak, or the last complete one when the streak is 0."""
    period = node.period
    last = periods.last_complete(period, query.now, query.tz)  # type: ignore[arg-type]
    counts = {
        eid: r[name].evidence.get(node.text) or 0 for eid, r in results.items() if r[name].held
    }
    if not counts:
        return
    low = last - max(max(counts.values()), 1) + 1
    for agg in dict.fromkeys(b.aggregates(node.cond)):
        alias, value = query.pane_values[(agg, period)]
        sql = value.json if value.type == "any" else value.sql
        select = (
            exp.select(col("eid", alias), col("p", alias), sql or exp.Null())
            .from_(alias)
            .where(exp.Between(this=col("p", alias), low=lit(low), high=lit(last)))
        )
        select = with_ctes(select, query.ctes)
        by_entity: dict[str, dict[int, Any]] = {}
        for eid, idx, raw in fetch(query.d.sql(select)):
            by_entity.setdefault(eid, {})[int(idx)] = evidence_value(raw, agg.type)
        empty = _EMPTY.get(agg.func)
        for eid, count in counts.items():
            seen = by_entity.get(eid, {})
            results[eid][name].evidence[f"{agg.text} per {period}"] = {
                periods.label(period, idx): seen.get(idx, empty)  # type: ignore[arg-type]
                for idx in range(last - max(count, 1) + 1, last + 1)
            }


def decode(raw: Any, static: str) -> Any:
    """A value read from SQL, as the streaming side holds it."""
    if raw is None:
        return None
    if static == "boolean":
        return bool(raw)
    if static == "datetime":
        return time_text(int(raw))
    if static in ("integer", "number"):
        number = float(raw) if not isinstance(raw, int | float) else raw
        return int(number) if static == "integer" else number
    if static in ("any", "list", "object"):
        return orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return raw


def evidence_value(raw: Any, static: str) -> Any:
    if static == "datetime" and raw is not None:
        return time_text(int(raw))
    return decode(raw, static)


def fetcher(db: Database) -> Fetch:
    """Runs a query on the store."""

    def fetch(sql: str) -> list[tuple[Any, ...]]:
        with db.read() as conn:
            return [tuple(r) for r in db.fetch(conn, sql, None)]

    return fetch


def dialect_of(db: Database) -> Dialect:
    return DIALECTS["sqlite" if db.is_sqlite else "postgresql"]


@dataclass
class Report:
    entity_types: int = 0
    entities: int = 0
    changes: int = 0
    by_tag: dict[str, int] = field(default_factory=dict)  # holders after the run
    # tags the SQL compiler cannot express, computed entity by entity instead: name -> why
    streamed: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[str, dict[str, Result]]] = field(default_factory=dict)


def dependents(active: Iterable[ActiveTag], names: Iterable[str]) -> set[str]:
    """``names`` and every computed tag that reads them, directly or not: what must be
    recomputed when their meaning changes."""
    tags = list(active)
    found = set(names)
    grew = True
    while grew:
        grew = False
        for tag in tags:
            if tag.name not in found and tag.computed and found & tag.definition.deps.tags:
                found.add(tag.name)
                grew = True
    return found


def split(
    dialect: Dialect, engine: Engine, tags: list[ActiveTag], now: int
) -> tuple[list[ActiveTag], dict[str, str]]:
    """Separate the tags (dependency order) that compile to SQL from those that do not,
    with the reason; a tag reading one that does not cannot be inlined either."""
    sql: list[ActiveTag] = []
    streamed: dict[str, str] = {}
    for tag in tags:
        blocked = sorted(tag.definition.deps.tags & set(streamed))
        if blocked:
            streamed[tag.name] = f"it reads tag {blocked[0]!r}, computed outside SQL"
            continue
        try:
            _query(
                dialect,
                engine,
                tag.definition.entity,
                [*closure(sql, tag.definition.deps.tags), tag],
                now,
            ).build()
        except Unsupported as exc:
            streamed[tag.name] = str(exc)
            continue
        sql.append(tag)
    return sql, streamed


def recompute(
    db: Database,
    engine: Engine,
    active: list[ActiveTag],
    names: Iterable[str],
    now: int,
    *,
    fetch: Fetch | None = None,
    dialect: Dialect | None = None,
    write: bool = True,
    keep: bool = False,
    flows: FlowStarter | None = None,
) -> Report:
    """Recompute ``names`` for every entity in batch and (``write``) store what changed.

    Tags the SQL compiler cannot express are computed entity by entity by the streaming
    evaluator, which can only do so at the engine's present time. ``keep`` returns the
    results in the report (for export). With ``flows``, the changes written start the
    flows they trigger (a model's tags after scoring; a plain recompute does not).
    """
    fetch = fetch or fetcher(db)
    dialect = dialect or dialect_of(db)
    wanted = set(names)
    report = Report()
    with db.read() as conn:
        gated = review_store.pinned_tags(conn, now)
    gated |= {t.name for t in active if t.definition.spec.review is not None}
    by_type: dict[str, list[ActiveTag]] = {}
    for tag in closure(active, wanted):
        by_type.setdefault(tag.definition.entity, []).append(tag)
    for entity_type, tags in by_type.items():
        report.entity_types += 1
        for index, (stage, own) in enumerate(stages(tags, gated)):
            # Later stages read what earlier ones wrote: from the store itself (a DuckDB
            # copy was loaded before the first stage wrote anything).
            later = index > 0 and write
            _recompute_stage(
                db,
                engine,
                report,
                entity_type,
                stage,
                own & wanted,
                now,
                fetch=fetcher(db) if later else fetch,
                dialect=dialect_of(db) if later else dialect,
                write=write,
                keep=keep,
                first=index == 0,
                flows=flows,
            )
    return report


def stages(tags: list[ActiveTag], gated: set[str]) -> list[tuple[list[ActiveTag], set[str]]]:
    """Split ``tags`` (one type, dependency order) into stages computed one after the other:
    a tag reading a gated tag (one with a review policy or a pin) reads what the entity
    holds of it, as stored by an earlier stage, as the stream does; other tags it reads are
    computed inline. Each stage: the tags its query computes, and those it writes.

    Without gated tags read by others, one stage: everything at once.
    """
    level: dict[str, int] = {}
    for tag in tags:
        level[tag.name] = max(
            (level[d] + (d in gated) for d in tag.definition.deps.tags if d in level), default=0
        )
    out = []
    for number in range(max(level.values(), default=0) + 1):
        pool = [t for t in tags if not (t.name in gated and level[t.name] < number)]
        own = {t.name for t in tags if level[t.name] == number}
        if own:
            out.append((closure(pool, own), own))
    return out


def _recompute_stage(
    db: Database,
    engine: Engine,
    report: Report,
    entity_type: str,
    tags: list[ActiveTag],
    wanted: set[str],
    now: int,
    *,
    fetch: Fetch,
    dialect: Dialect,
    write: bool,
    keep: bool,
    first: bool,
    flows: FlowStarter | None,
) -> None:
    sql_tags, streamed = split(dialect, engine, tags, now)
    report.streamed.update({k: v for k, v in streamed.items() if k in wanted})
    results = evaluate(fetch, dialect, engine, entity_type, sql_tags, now) if sql_tags else {}
    if first:
        report.entities += len(results)
    written = [t for t in sql_tags if t.name in wanted]
    for tag in written:
        report.by_tag[tag.name] = sum(1 for r in results.values() if r[tag.name].held)
    if keep:
        kept = report.results.setdefault(entity_type, {})
        for entity_id, values in results.items():
            kept.setdefault(entity_id, {}).update(values)
    if write:
        report.changes += _write(db, entity_type, written, results, now, flows)
        if any(t.definition.deps.time_dependent for t in written):
            _arm_timers(db, entity_type, now)
    rest = [t for t in tags if t.name in streamed and t.name in wanted]
    if rest and write and now == engine.clock():
        report.changes += definitions.recompute(db, engine, rest)
        with db.read() as conn:
            counts = tag_store.counts(conn)
        report.by_tag.update({t.name: counts.get(t.name, 0) for t in rest})


def _write(
    db: Database,
    entity_type: str,
    tags: list[ActiveTag],
    results: dict[str, dict[str, Result]],
    now: int,
    flows: FlowStarter | None = None,
) -> int:
    """Apply the differences between ``results`` and the current assignments (starting
    the flows they trigger, with ``flows``)."""
    ids = sorted(results)
    total, queued = 0, False
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        with db.write() as conn:
            current = tag_store.current(
                db, conn, [(entity_type, i) for i in chunk], [t.name for t in tags]
            )
            changes: list[TagChange] = []
            for entity_id in chunk:
                for tag in tags:
                    result = results[entity_id][tag.name]
                    held = current.get((entity_type, entity_id, tag.name))
                    change = _change(tag, entity_type, entity_id, result, held, now)
                    if change is not None:
                        changes.append(change)
            tag_store.apply(db, conn, changes)
            if flows is not None:
                queued = flows.start_flows(conn, changes, now) or queued
            total += len(changes)
    if queued and flows is not None:
        flows.flows_queued()
    return total


def _change(
    tag: ActiveTag,
    entity_type: str,
    entity_id: str,
    result: Result,
    held: tag_store.Held | None,
    now: int,
) -> TagChange | None:
    if held is not None and held.expires is not None and held.expires <= now:
        # a pin past its time no longer counts: the rule's result takes its place
        if not result.held:
            return expired(entity_type, entity_id, tag.name, held, now)
        held = None
    if held is not None and not held.source.startswith(RULE_SOURCE):
        return None
    kind = change_kind(tag, held, result.held, result.value)
    if kind is None:
        return None
    return rule_change(
        tag,
        kind,
        entity_type,
        entity_id,
        held,
        result.held,
        result.value,
        result.confidence if result.held else None,
        now,
        evidence=lambda: _evidence(tag, result),
    )


def _evidence(tag: ActiveTag, result: Result) -> dict[str, Any]:
    """Why the tag holds, as the stream's `Engine.explain` says it, marked as computed in
    batch."""
    definition = tag.definition
    evidence = {"version": tag.version, "values": result.evidence, "computed": "batch"}
    if definition.rule is not None:
        evidence["rule"] = definition.rule.text
    if definition.value is not None:
        evidence["value"] = definition.value.text
    return evidence


def _arm_timers(db: Database, entity_type: str, now: int) -> None:
    """Time-dependent tags: let the engine look at every entity now, which computes when
    each next needs a look."""
    with db.write() as conn:
        db.executemany(
            conn,
            (
                "INSERT INTO entity_timers (entity_type, entity_id, due) "
                "SELECT type, id, ? FROM entities WHERE type = ? "
                "ON CONFLICT (entity_type, entity_id) DO UPDATE SET due = excluded.due"
            ),
            [(now, entity_type)],
        )
