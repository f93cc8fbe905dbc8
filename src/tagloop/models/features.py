"""Point-in-time feature values and their encoding.

A training example is an entity at a cutoff time ``c``: its features are the model's
expressions evaluated at ``now = c`` on what was known before ``c`` and nothing else, its
label the label expression evaluated at ``c + horizon``. `PointInTime` rebuilds, for each
entity, the state the streaming evaluator would have held at each of those times from the
stored events: aggregate inputs from the events dated before the time, profile attributes
from the attributes those events set (the latest wins, as ingestion folds them), system
attributes (``event_count``, ``first_seen``, ``last_seen``) from the same events, and tags
from the tag history. An attribute set, an event stored, or a tag assigned after the
cutoff cannot reach a feature, whatever the current profile says.

`Encoder` turns feature values into the numeric matrix the learners take: numbers as
they are (null is NaN), booleans as 0/1, text as category codes learned from the
training rows (an unseen category is missing, as null is).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from tagloop.engine.context import EntityContext
from tagloop.engine.plans import TypePlan
from tagloop.engine.state import EntityState, InputPlan
from tagloop.models.spec import Encoding, ModelDefinition
from tagloop.rules import CompiledRule
from tagloop.store.db import Database
from tagloop.store.entities import EntityRow
from tagloop.store.events import chunks
from tagloop.store.tags import Held


@dataclass(frozen=True, slots=True)
class _Event:
    id: str
    type: str
    time: int
    properties: dict[str, Any]
    seq: int
    attributes: dict[str, Any] | None  # set only by events whose primary entity this is


@dataclass
class History:
    """What one entity's past holds: events in (time, seq) order and tag changes."""

    entity_id: str
    events: list[_Event] = field(default_factory=list)
    tags: list[tuple[int, str, str, Any, int, str]] = field(default_factory=list)


def input_plans(rules: Iterable[CompiledRule]) -> dict[Any, InputPlan]:
    """How each aggregate input of ``rules`` is kept, as the engine plans it for a tag."""
    plan = TypePlan("model", [])
    listed = list(rules)
    for rule in listed:
        for agg in rule.deps.aggregates:
            plan.keep(agg)
    for rule in listed:
        plan.keep_periods(rule.bound)
    return plan.inputs


def load_histories(
    db: Database, entity_type: str, tag_names: Iterable[str] = (), ids: Sequence[str] | None = None
) -> dict[str, History]:
    """Every stored event of the entities of ``entity_type`` (as primary or related
    entity), and their tag history for ``tag_names``."""
    histories: dict[str, History] = {}

    def history(entity_id: str) -> History:
        found = histories.get(entity_id)
        if found is None:
            found = histories[entity_id] = History(entity_id)
        return found

    where_ids = ""
    params: list[Any] = [entity_type]
    if ids is not None:
        where_ids, id_params = db.in_list("entity_id", list(ids))
        where_ids = " AND e." + where_ids
        params += id_params
    primary = (
        "SELECT e.entity_id, e.seq, e.id, e.type, e.time, e.properties, e.attributes "
        f"FROM events e WHERE e.entity_type = ?{where_ids}"
    )
    related = (
        "SELECT l.entity_id, e.seq, e.id, e.type, e.time, e.properties, NULL FROM event_links l "
        "JOIN events e ON e.seq = l.event_seq WHERE l.entity_type = ?"
        + where_ids.replace("e.entity_id", "l.entity_id")
    )
    names = sorted(set(tag_names))
    with db.read() as conn:
        for query in (primary, related):
            for row in db.fetch(conn, query, params):
                properties = db.json_value(row[5]) or {}
                attributes = db.json_value(row[6]) if row[6] is not None else None
                history(row[0]).events.append(
                    _Event(row[2], row[3], row[4], properties, row[1], attributes or None)
                )
        for chunk in chunks(names, 500):
            in_tags, tag_params = db.in_list("tag", chunk)
            query = (
                "SELECT entity_id, at, seq, tag, change, value, version, source FROM tag_history "
                f"WHERE entity_type = ? AND {in_tags}"
            )
            for row in db.fetch(conn, query, [entity_type, *tag_params]):
                if row[0] in histories or ids is None:
                    history(row[0]).tags.append(
                        (row[1], row[3], row[4], db.json_value(row[5]), row[6], row[7])
                    )
    for found in histories.values():
        found.events.sort(key=lambda e: (e.time, e.seq))
        found.tags.sort(key=lambda t: t[0])
    return histories


class PointInTime:
    """Evaluates compiled expressions for one entity at increasing times, each time on
    exactly what was known before it."""

    def __init__(self, entity_type: str, rules: Sequence[CompiledRule], tz: ZoneInfo) -> None:
        self.entity_type = entity_type
        self.rules = list(rules)
        self.tz = tz
        self.inputs = input_plans(self.rules)

    def values(self, history: History, times: Sequence[int]) -> list[list[Any] | None]:
        """For each of ``times`` (ascending), every rule's value at that time; None where
        the entity had no event yet (it did not exist)."""
        state = EntityState(0)
        plans = list(self.inputs.values())
        attributes: dict[str, Any] = {}
        tags: dict[str, Held] = {}
        events, changes = history.events, history.tags
        i = j = count = 0
        first = last = 0
        out: list[list[Any] | None] = []
        for now in times:
            while i < len(events) and events[i].time < now:
                event = events[i]
                state.apply(plans, event, event.seq, now, self.tz)
                if event.attributes:
                    attributes.update(event.attributes)  # in time order: the latest wins
                first = event.time if count == 0 else min(first, event.time)
                last = max(last, event.time) if count else event.time
                count += 1
                i += 1
            while j < len(changes) and changes[j][0] < now:
                _at, name, change, value, version, source = changes[j]
                if change == "removed":
                    tags.pop(name, None)
                else:
                    tags[name] = Held(value, version, source)
                j += 1
            if count == 0:
                out.append(None)
                continue
            state.version = count
            row = EntityRow(
                self.entity_type, history.entity_id, attributes, {}, first, last, count, now, now
            )
            for key, kept in state.inputs.items():  # as the engine does before evaluating
                kept.advance(self.inputs[key], now)
            ctx = EntityContext(row, state, self.inputs, now, self.tz, tags)
            out.append([rule.fn(ctx) for rule in self.rules])
        return out


@dataclass
class TrainingSet:
    """Examples: entity, cutoff, feature values (as the rules give them) and label."""

    ids: list[str] = field(default_factory=list)
    cutoffs: list[int] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def training_set(
    model: ModelDefinition,
    histories: dict[str, History],
    cutoffs: Sequence[int],
    tz: ZoneInfo,
) -> TrainingSet:
    """The point-in-time examples of ``model`` at ``cutoffs``: the entities that existed
    before a cutoff (and are in the population then) whose label is known (not null)."""
    ordered = sorted(set(cutoffs))
    horizon = model.horizon
    at_cutoff = [f.rule for f in model.features]
    if model.population is not None:
        at_cutoff.append(model.population)
    assert model.label is not None  # labels from reviews: `reviewed_set`
    features = PointInTime(model.entity, at_cutoff, tz)
    labels = PointInTime(model.entity, [model.label], tz)
    found = TrainingSet()
    width = len(model.features)
    for entity_id in sorted(histories):
        history = histories[entity_id]
        seen = features.values(history, ordered)
        observed = labels.values(history, [c + horizon for c in ordered])
        for cutoff, values, label in zip(ordered, seen, observed, strict=True):
            if values is None or label is None or label[0] is None:
                continue
            if model.population is not None and values[width] is not True:
                continue
            found.ids.append(entity_id)
            found.cutoffs.append(cutoff)
            found.rows.append(values[:width])
            found.labels.append(1 if label[0] is True else 0)
    return found


def reviewed_set(
    model: ModelDefinition,
    histories: dict[str, History],
    decisions: dict[str, tuple[Any, int]],
    tz: ZoneInfo,
) -> TrainingSet:
    """The examples of a model labelled by review decisions (``decisions``: entity ->
    (label, decided at), as `tagloop.review.labels.decided` gives them): each entity
    decided on, with its features as of its decision time. An approval (or a value set
    by an override or a pin) is positive; a rejection or an exclusion negative."""
    features = PointInTime(model.entity, [f.rule for f in model.features], tz)
    found = TrainingSet()
    for entity_id in sorted(decisions):
        label, at = decisions[entity_id]
        history = histories.get(entity_id)
        if history is None:
            continue
        (values,) = features.values(history, [at])
        if values is None:
            continue
        found.ids.append(entity_id)
        found.cutoffs.append(at)
        found.rows.append(values)
        found.labels.append(0 if label is None or label is False else 1)
    return found


def cutoff_times(
    model: ModelDefinition, histories: dict[str, History], now: int, tz: ZoneInfo
) -> list[int]:
    """The cutoffs of ``model``: those listed (``at``), or one every ``every`` back from
    the last moment whose label is observable (``now - horizon``) to the first event, or
    that moment alone. Cutoffs whose label lies in the future are dropped."""
    from tagloop.timeutil import parse_duration, parse_time

    label = model.spec.label
    latest = now - model.horizon
    if label.at:
        found = [parse_time(text, tz) for text in label.at]
        return [c for c in found if c <= latest]
    if label.every is None:
        return [latest]
    step = parse_duration(label.every)
    first = min((h.events[0].time for h in histories.values() if h.events), default=latest)
    out = []
    cutoff = latest
    while cutoff > first:
        out.append(cutoff)
        cutoff -= step
    return sorted(out)


@dataclass
class Encoder:
    """Feature values to a float matrix: categories coded by the training rows."""

    names: list[str]
    encodings: list[Encoding]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, model: ModelDefinition, rows: Sequence[Sequence[Any]]) -> Encoder:
        names = [f.name for f in model.features]
        encodings = [f.encoding for f in model.features]
        seen: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            for name, encoding, value in zip(names, encodings, row, strict=True):
                if encoding == "category" and value is not None:
                    seen[name].add(_category(value))
        categories = {
            n: sorted(seen[n]) for n, e in zip(names, encodings, strict=True) if e == "category"
        }
        return cls(names, encodings, categories)

    @property
    def category_columns(self) -> list[int]:
        return [i for i, e in enumerate(self.encodings) if e == "category"]

    def matrix(self, rows: Sequence[Sequence[Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The rows encoded; NaN is missing (null, an unseen category, a non-number).

        >>> enc = Encoder(["n", "c"], ["number", "category"], {"c": ["a", "b"]})
        >>> enc.matrix([[1, "b"], [None, "z"]]).tolist()
        [[1.0, 1.0], [nan, nan]]
        """
        out = np.full((len(rows), len(self.names)), np.nan)
        codes = {
            n: {c: float(i) for i, c in enumerate(cats)} for n, cats in self.categories.items()
        }
        nan = math.nan
        for j, (name, encoding) in enumerate(zip(self.names, self.encodings, strict=True)):
            values = [row[j] for row in rows]
            if encoding == "category":
                table = codes[name]
                # text is the common case: looked up as it is; anything else encoded first
                out[:, j] = [
                    table.get(v, nan)
                    if isinstance(v, str)
                    else (nan if v is None else table.get(_category(v), nan))
                    for v in values
                ]
            elif all(type(v) in (int, float, bool) or v is None for v in values):
                out[:, j] = np.array(values, dtype=np.float64)  # null becomes NaN
            else:
                out[:, j] = [_number(v) for v in values]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"names": self.names, "encodings": self.encodings, "categories": self.categories}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encoder:
        return cls(list(data["names"]), list(data["encodings"]), dict(data["categories"]))


def _category(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()  # 1 and '1' stay apart, as distinct() keeps them


def _number(value: Any) -> float:
    if value is None or isinstance(value, str):
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return math.nan
