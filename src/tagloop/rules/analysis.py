"""What a bound rule depends on: the streaming engine's dependency index is built from it."""

from __future__ import annotations

from dataclasses import dataclass

from tagloop.rules import bound as b
from tagloop.rules.functions import FUNCTIONS


@dataclass(frozen=True)
class Deps:
    attributes: frozenset[str]  # attribute names read (first path part; system ones too)
    aggregates: tuple[b.Agg, ...]  # distinct aggregates, in order of appearance
    inputs: frozenset[b.AggInput]  # what those aggregates read
    tags: frozenset[str]  # tags read with has_tag()/tag()
    scores: frozenset[str]  # models read with score()
    periods: frozenset[str]  # calendar periods of streak()/every()
    # The value can change with time alone (windows, streaks, now(), days_since() ...,
    # and all-history aggregates once a future-dated event's time comes).
    time_dependent: bool
    # Reads the whole data (JsonLogic's {"var": ""}, computed var paths): every attribute.
    whole_data: bool = False


def analyse(node: b.B) -> Deps:
    """The dependencies of a bound tree.

    >>> from tagloop.rules.binder import Scope, bind
    >>> from tagloop.rules.parser import parse
    >>> deps = analyse(bind(parse("count(order, 30d) > 2 and city == 'x'"),
    ...     Scope("customer", {"city": "string"}, events={"order": {}})))
    >>> sorted(deps.attributes), [a.text for a in deps.aggregates], deps.time_dependent
    (['city'], ['count(order, 30d)'], True)
    """
    attributes: set[str] = set()
    tags: set[str] = set()
    scores: set[str] = set()
    found_periods: set[str] = set()
    time_dependent = whole_data = False
    for child in node.walk():
        if isinstance(child, b.Attr):
            attributes.add(child.path[0])
        elif isinstance(child, b.TagRef):
            tags.add(child.name)
        elif isinstance(child, b.ScoreRef):
            scores.add(child.model)
        elif isinstance(child, b.Data):
            whole_data = True
        elif isinstance(child, b.Streak):
            found_periods.add(child.period)
            time_dependent = True
        elif isinstance(child, b.Now | b.Agg) or (
            isinstance(child, b.Func) and FUNCTIONS[child.name].uses_now
        ):
            time_dependent = True
    aggregates = tuple(b.aggregates(node))
    return Deps(
        attributes=frozenset(attributes),
        aggregates=aggregates,
        inputs=frozenset(a.input for a in aggregates),
        tags=frozenset(tags),
        scores=frozenset(scores),
        periods=frozenset(found_periods),
        time_dependent=time_dependent,
        whole_data=whole_data,
    )
