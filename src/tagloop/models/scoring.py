"""Scoring: the active version of a model scores entities, and model tags follow.

Features are computed at ``now`` by the batch evaluator, inside the database, as tag
values are (one query for every feature of every entity); a feature SQL cannot express
makes the whole model fall back to the streaming evaluator over the stored events (the
same code path training uses, `tagloop.models.features.PointInTime`). Scores go to
``model_scores``, where ``score('m')`` reads them in both evaluators; then the tags that
read the model's score are recomputed in batch, each assignment with the score as its
confidence (`tagloop.models.spec.confidence`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tagloop.dictionary.types import SYSTEM_ATTRIBUTES
from tagloop.engine import batch
from tagloop.engine.context import EntityContext
from tagloop.engine.plans import ActiveTag
from tagloop.errors import NotFound, ValidationFailed
from tagloop.models import registry
from tagloop.models.features import PointInTime, load_histories
from tagloop.models.spec import ModelDefinition
from tagloop.models.training import Artifact, load_artifact
from tagloop.names import suggest
from tagloop.rules import CompiledRule
from tagloop.rules import bound as b
from tagloop.rules.sql.dialects import Dialect
from tagloop.rules.sql.expr import Unsupported
from tagloop.rules.sql.query import BatchQuery
from tagloop.store.db import Database
from tagloop.store.entities import EntityRow
from tagloop.store.models import write_scores
from tagloop.workspace import TagDefinition, Workspace
from tagloop.workspace.models import TagSpec

if TYPE_CHECKING:
    from tagloop.runtime import Runtime


@dataclass
class ScoreReport:
    model: str
    version: int
    entities: int
    evaluator: str  # "profile", "sql" or "stream": see `_evaluator`
    seconds: dict[str, float] = field(default_factory=dict)  # features, predict, write, tags
    tags: dict[str, int] = field(default_factory=dict)  # model tags: holders after scoring
    reason: str = ""  # why the stream evaluated the features, if it did

    @property
    def per_second(self) -> float:
        total = sum(self.seconds.values())
        return self.entities / total if total else 0.0


def definition(workspace: Workspace, name: str) -> ModelDefinition:
    """The workspace's model ``name``, or NotFound naming the models there are."""
    found = workspace.models.get(name)
    if found is None:
        known = sorted(workspace.models)
        listed = f" (models: {', '.join(known)})" if known else " (no model is defined)"
        raise NotFound(f"unknown model {name!r}{suggest(name, known)}{listed}")
    return found


def _feature_tags(model: ModelDefinition) -> list[ActiveTag]:
    """The features as valued tags of a query of their own (never stored as tags)."""
    out = []
    for i, feature in enumerate(model.features):
        spec = TagSpec(
            name=f"__feature_{i}", entity=model.entity, value=feature.rule.text, category=[]
        )
        out.append(ActiveTag(TagDefinition(spec, None, feature.rule, model.location), 1))
    return out


def feature_values(
    db: Database,
    workspace: Workspace,
    model: ModelDefinition,
    now: int,
    *,
    ids: list[str] | None = None,
    dialect: Dialect | None = None,
) -> tuple[list[str], list[list[Any]], str]:
    """Every entity's feature values at ``now``: (ids, rows, why the stream was used).

    Features that read only the profile (attributes, system attributes, functions of
    them) are the streaming evaluator's closures over the profile rows: cheaper than
    extracting each from JSON in SQL (five times, for the Telco model). The others
    (aggregates, tags, scores) are computed by the batch query."""
    dialect = dialect or batch.dialect_of(db)
    profile = [i for i, f in enumerate(model.features) if _profile_only(f.rule)]
    rest = [i for i in range(len(model.features)) if i not in profile]
    found = _profile_values(db, workspace, model, profile, now, ids)
    if not rest:
        return sorted(found), [found[i] for i in sorted(found)], ""
    sub = dataclasses.replace(model, features=[model.features[i] for i in rest])
    sql_ids, sql_rows, reason = _sql_values(db, workspace, sub, now, ids, dialect)
    merged_ids, merged = [], []
    for entity_id, values in zip(sql_ids, sql_rows, strict=True):
        row = found.get(entity_id)
        if row is None:
            continue
        for index, value in zip(rest, values, strict=True):
            row[index] = value
        merged_ids.append(entity_id)
        merged.append(row)
    return merged_ids, merged, reason


def _evaluator(model: ModelDefinition, reason: str) -> str:
    """How the features were computed: ``profile`` (every feature reads only the profile:
    closures over the profile rows), ``sql`` (some in the batch query), ``stream``
    (some by the streaming evaluator over the stored events, as SQL could not)."""
    if reason:
        return "stream"
    return "profile" if all(_profile_only(f.rule) for f in model.features) else "sql"


def _profile_only(rule: CompiledRule) -> bool:
    deps = rule.deps
    return not (deps.aggregates or deps.periods or deps.tags or deps.scores)


def _profile_values(
    db: Database,
    workspace: Workspace,
    model: ModelDefinition,
    profile: list[int],
    now: int,
    ids: list[str] | None,
) -> dict[str, list[Any]]:
    """id -> a row with the profile-only features filled in (the others None)."""
    width = len(model.features)
    plain: list[tuple[int, str]] = []  # a bare attribute: the value as stored
    computed: list[tuple[int, Any]] = []
    for i in profile:
        bound = model.features[i].rule.bound
        if (
            isinstance(bound, b.Attr)
            and len(bound.path) == 1
            and bound.type != "datetime"
            and bound.path[0] not in SYSTEM_ATTRIBUTES
        ):
            plain.append((i, bound.path[0]))
        else:
            computed.append((i, model.features[i].rule.fn))
    # as text, decoded here: psycopg's decoding of JSONB into dicts takes longer
    query = (
        "SELECT id, CAST(attributes AS TEXT), first_seen, last_seen, event_count "
        "FROM entities WHERE type = ?"
    )
    found: dict[str, list[Any]] = {}
    tz = workspace.timezone
    with db.read() as conn:
        chunks = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
        for chunk in chunks:
            sql, params = query, [model.entity]
            if chunk is not None:
                condition, extra = db.in_list("id", chunk)
                sql, params = f"{query} AND {condition}", [*params, *extra]
            for entity_id, attributes, first, last, count in db.fetch(conn, sql, params):
                row: list[Any] = [None] * width
                values = orjson.loads(attributes) if isinstance(attributes, str) else attributes
                for i, name in plain:
                    row[i] = values.get(name)
                if computed:
                    entity = EntityRow(
                        model.entity, entity_id, values, {}, first, last, count, 0, 0
                    )
                    ctx = EntityContext(entity, None, {}, now, tz, {})
                    for i, fn in computed:
                        row[i] = fn(ctx)
                found[entity_id] = row
    return found


def _sql_values(
    db: Database,
    workspace: Workspace,
    model: ModelDefinition,
    now: int,
    ids: list[str] | None,
    dialect: Dialect,
) -> tuple[list[str], list[list[Any]], str]:
    tags = _feature_tags(model)
    external = {
        name: workspace.tags[name].value_type for name in model.reads_tags if name in workspace.tags
    }
    try:
        query = BatchQuery(
            dialect, model.entity, tags, now, workspace.timezone, ids=ids, external=external
        )
        sql = dialect.sql(query.build())
    except Unsupported as exc:
        return (*_streamed(db, workspace, model, now, ids), str(exc))
    rows = batch.fetcher(db)(sql)
    found_ids: list[str] = []
    values: list[list[Any]] = []
    types = [f.rule.type for f in model.features]
    for row in rows:
        found_ids.append(row[0])
        values.append(
            [
                _value(row[2 + 2 * i], static) if row[1 + 2 * i] else None
                for i, static in enumerate(types)
            ]
        )
    return found_ids, values, ""


def _value(raw: Any, static: str) -> Any:
    if raw is None:
        return None
    if static == "datetime":
        return int(raw)  # epoch microseconds, as the stream gives them
    return batch.decode(raw, static)


def _streamed(
    db: Database, workspace: Workspace, model: ModelDefinition, now: int, ids: list[str] | None
) -> tuple[list[str], list[list[Any]]]:
    histories = load_histories(db, model.entity, model.reads_tags, ids)
    evaluator = PointInTime(model.entity, [f.rule for f in model.features], workspace.timezone)
    found_ids, rows = [], []
    for entity_id in sorted(histories):
        (values,) = evaluator.values(histories[entity_id], [now])  # events before now, as SQL
        if values is not None:
            found_ids.append(entity_id)
            rows.append(values)
    return found_ids, rows


_ARTIFACTS: dict[tuple[str, str, int, int], Artifact] = {}


def active_artifact(db: Database, model: ModelDefinition) -> tuple[registry.Version, Artifact]:
    """The active version and its loaded artifact (cached per database and version)."""
    with db.read() as conn:
        version = registry.active(conn, model.name)
        if version is None:
            known = registry.versions(conn, model.name)
            hint = (
                f"promote one of its candidates (tagloop models promote {model.name} VERSION)"
                if known
                else f"train it first (tagloop models train {model.name})"
            )
            raise ValidationFailed(f"model {model.name!r} has no active version: {hint}")
        key = (str(db.url), model.name, version.version, version.trained_at)
        cached = _ARTIFACTS.get(key)
        if cached is None:
            cached = _ARTIFACTS[key] = load_artifact(
                registry.artifact(conn, model.name, version.version)
            )
    if version.features_digest != model.digest:
        raise ValidationFailed(
            f"model {model.name!r}: the active version v{version.version} was trained on other "
            f"features or another label than the workspace now defines (digest "
            f"{version.features_digest}, now {model.digest}): retrain it "
            f"(tagloop models train {model.name})"
        )
    return version, cached


def score(rt: Runtime, name: str, *, ids: list[str] | None = None) -> ScoreReport:
    """Score the entities (``ids``, default: every one) with the active version, store the
    scores and recompute the model tags."""
    model = definition(rt.workspace, name)
    version, artifact = active_artifact(rt.db, model)
    now = rt.clock()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    found_ids, rows, reason = feature_values(rt.db, rt.workspace, model, now, ids=ids)
    seconds["features"] = time.perf_counter() - started
    started = time.perf_counter()
    predicted = artifact.predict(rows).tolist()
    seconds["predict"] = time.perf_counter() - started
    started = time.perf_counter()
    with rt.db.write() as conn:
        write_scores(
            rt.db,
            conn,
            model.name,
            model.entity,
            list(zip(found_ids, predicted, strict=True)),
            version.version,
            now,
            replace=ids is None,
        )
    seconds["write"] = time.perf_counter() - started
    report = ScoreReport(
        model.name,
        version.version,
        len(found_ids),
        _evaluator(model, reason),
        seconds,
        reason=reason,
    )
    started = time.perf_counter()
    if ids is None:
        report.tags = refresh_tags(rt, model.name, now)
    else:
        refresh_some(rt, model.name, model.entity, found_ids, now)
    seconds["tags"] = time.perf_counter() - started
    return report


def model_tags(active: list[ActiveTag], name: str) -> list[str]:
    """The computed tags that read ``score(name)``, and the tags reading those."""
    direct = [t.name for t in active if t.computed and name in t.definition.deps.scores]
    return sorted(batch.dependents(active, direct)) if direct else []


def refresh_some(rt: Runtime, name: str, entity_type: str, ids: list[str], now: int) -> int:
    """Re-evaluate the model tags of a few entities (scored on change) with the streaming
    evaluator, as a recomputation does; returns the number of tag changes."""
    from tagloop.engine.evaluator import Touched
    from tagloop.store import entities as entity_store
    from tagloop.store import tags as tag_store
    from tagloop.store import timers as timer_store

    names = frozenset(model_tags(rt.active, name))
    if not names or not ids:
        return 0
    with rt.engine.lock, rt.db.write() as conn:
        rows = entity_store.load(rt.db, conn, [(entity_type, i) for i in ids], for_update=True)
        rt.engine.prepare(rt.db, conn, dict(rows))
        touched = {key: Touched(row, names=names) for key, row in rows.items()}
        changes, timers = rt.engine.evaluate(rt.db, conn, touched, {}, now)
        tag_store.apply(rt.db, conn, changes)
        timer_store.set_due(rt.db, conn, timers)
        queued = rt.ingestor.start_flows(conn, changes, now)
    if queued:
        rt.ingestor.flows_queued()
    return len(changes)


def refresh_tags(rt: Runtime, name: str, now: int) -> dict[str, int]:
    """Recompute the tags reading the model's scores; their holders after."""
    names = model_tags(rt.active, name)
    if not names:
        return {}
    with rt.engine.lock:
        found = batch.recompute(rt.db, rt.engine, rt.active, names, now, flows=rt.ingestor)
    return {n: found.by_tag.get(n, 0) for n in names}


def report_view(report: ScoreReport) -> dict[str, Any]:
    return {
        "model": report.model,
        "version": report.version,
        "entities": report.entities,
        "evaluator": report.evaluator,
        "reason": report.reason or None,
        "seconds": {k: round(v, 4) for k, v in report.seconds.items()},
        "per_second": round(report.per_second),
        "tags": report.tags,
    }
