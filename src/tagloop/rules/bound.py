"""The bound tree: a rule after name resolution and type checking.

The parser's tree says what was written; the bound tree says what it means: which names
are profile attributes, which are event aggregates (over which event type, filter, value
and window), which refer to tags, scores or calendar periods. Both evaluators (Python
closures for the stream, SQL for batch) compile from it, so they cannot disagree about
what a rule refers to. Nodes are frozen and hashable: equal aggregates are computed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

# Value types: boolean, integer, number, string, datetime (epoch µs), date ('YYYY-MM-DD'),
# duration (µs), list, object, any, null.
NUMERIC = frozenset({"integer", "number"})


@dataclass(frozen=True, slots=True)
class B:
    type: str
    # The rule text this node was bound from, for evidence and error messages.
    text: str = field(default="", compare=False, kw_only=True)

    def children(self) -> Iterator[B]:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, B):
                yield value
            elif isinstance(value, tuple):
                yield from (v for v in value if isinstance(v, B))
            elif isinstance(value, AggInput):
                yield from value.children()

    def walk(self) -> Iterator[B]:
        yield self
        for child in self.children():
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Const(B):
    """A literal; lists are stored as tuples so that nodes stay hashable."""

    value: Any


@dataclass(frozen=True, slots=True)
class Attr(B):
    """A profile attribute (``city``, ``address.city``) or a system attribute."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventField(B):
    """A field of the event being aggregated: a property path, or ``time``/``type``/``id``."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Now(B):
    pass


@dataclass(frozen=True, slots=True)
class Op(B):
    """An operator: ``and or not neg == != < <= > >= + - * / % in notin between notbetween
    isnull notnull contains startswith endswith matches case``.

    ``case`` holds ``(cond1, value1, cond2, value2, ..., default)``.
    """

    op: str
    args: tuple[B, ...]


@dataclass(frozen=True, slots=True)
class Func(B):
    """A scalar function (see `tagloop.rules.functions`)."""

    name: str
    args: tuple[B, ...]


@dataclass(frozen=True, slots=True)
class AggInput:
    """What an aggregate reads: the events of one type that pass ``where``, and per event
    the ``value`` (None for ``count``)."""

    event_type: str
    where: B | None
    value: B | None

    def children(self) -> Iterator[B]:
        if self.where is not None:
            yield self.where
        if self.value is not None:
            yield self.value


@dataclass(frozen=True, slots=True)
class Agg(B):
    """``func`` over the entity's events of ``input``: in ``[now - window, now)``, over all
    history before ``now`` (``window`` None), or within one calendar period when the
    aggregate sits inside ``streak``/``every`` (``per_period``)."""

    func: str  # count sum avg min max distinct first last top
    input: AggInput
    window: int | None = None
    per_period: bool = False


@dataclass(frozen=True, slots=True)
class TagRef(B):
    """``has_tag('VIP')`` (``mode='has'``) or ``tag('turnover')`` (``mode='value'``)."""

    name: str
    mode: str
    # Flow conditions: the related entity (by type name) whose tag this is; None: the
    # entity's own tag, as in every tag rule.
    on: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreRef(B):
    """``score('churn')``: the entity's score from the active version of a model."""

    model: str


@dataclass(frozen=True, slots=True)
class Streak(B):
    """The number of consecutive most recent complete ``period``s in which ``cond`` was
    true, counting back no further than the period of the entity's first event."""

    period: str
    cond: B


@dataclass(frozen=True, slots=True)
class Data(B):
    """The whole data the rule reads (JsonLogic's ``{"var": ""}``): the entity's attributes,
    or whatever value a `Context` is given."""


@dataclass(frozen=True, slots=True)
class Item(B):
    """The data inside `Each`'s body: the current item (for reduce ``{"current": item,
    "accumulator": value}``), as JsonLogic's scoped operators define it."""


@dataclass(frozen=True, slots=True)
class Each(B):
    """JsonLogic's ``map filter reduce all some none``: ``body`` evaluated for each item of
    ``items`` with the item as its data; ``initial`` is reduce's first accumulator."""

    op: str
    items: B
    body: B
    initial: B | None = None


def aggregates(node: B) -> list[Agg]:
    """Every distinct aggregate in ``node`` (those inside ``streak`` included), in order."""
    seen: dict[Agg, None] = {}
    for child in node.walk():
        if isinstance(child, Agg):
            seen.setdefault(child, None)
    return list(seen)
