"""Evaluating rules for one entity: the context compiled rules read from, and evidence.

`EntityContext` answers a compiled rule's questions about one entity at ``now``: its
attributes (the profile row), its aggregates (from its `EntityState`, each computed once
per evaluation however many rules read it), its current tags, and per-period values for
``streak``. `evidence` records what made a tag hold, in the rule's own words.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from tagloop.engine import periods
from tagloop.engine.state import EntityState, aggregate, pane
from tagloop.rules import bound as b
from tagloop.rules.stream import Fn, compile_stream, lookup
from tagloop.store.entities import EntityRow
from tagloop.store.tags import Held
from tagloop.timeutil import time_text

_SYSTEM = frozenset({"id", "event_count", "first_seen", "last_seen"})


class EntityContext:
    __slots__ = (
        "due",
        "memo",
        "now",
        "plans",
        "row",
        "scores",
        "state",
        "tags",
        "tz",
        "windows",
    )

    def __init__(
        self,
        row: EntityRow,
        state: EntityState | None,
        plans: Any,
        now: int,
        tz: ZoneInfo,
        tags: dict[str, Held],
    ) -> None:
        self.row = row
        self.state = state
        self.plans = plans  # the InputPlans of the entity's type, by input
        self.now = now
        self.tz = tz
        self.tags = tags
        self.memo: dict[b.Agg, Any] = {}
        self.windows: dict[tuple[b.AggInput, int], Any] = {}  # folded windows, by input
        self.due: dict[tuple[b.AggInput, int | None], int | None] = {}  # timer probes
        self.scores: dict[str, float] = {}  # model -> stored score (model_scores)

    def attr(self, path: tuple[str, ...]) -> Any:
        head = path[0]
        attributes = self.row.attributes
        if head in attributes:
            return lookup(attributes, path)
        if head in _SYSTEM and len(path) == 1:
            return getattr(self.row, head)
        return None

    def data(self) -> Any:
        return self.row.attributes  # JsonLogic's whole data: the profile's attributes

    def agg(self, node: b.Agg) -> Any:
        memo = self.memo
        if node in memo:
            return memo[node]
        if self.state is None:
            from tagloop.engine.state import EMPTY

            value = EMPTY.result(node.func)
        else:
            value = aggregate(self.state, self.plans[node.input], node, self.now, self.windows)
        memo[node] = value
        return value

    def first_period(self, period: str) -> int:
        return periods.index(period, self.row.first_seen, self.tz)  # type: ignore[arg-type]

    def streak(self, node: b.Streak, cond: Fn) -> int:
        period = node.period
        idx = periods.last_complete(period, self.now, self.tz)  # type: ignore[arg-type]
        first = self.first_period(period)
        count = 0
        while idx >= first and cond(_PeriodContext(self, period, idx)) is True:
            count += 1
            idx -= 1
        return count

    def has_tag(self, name: str) -> bool:
        # Only what the entity holds: a proposal waiting for review, a rejected one or an
        # exclusion is not held (the batch side reads the same, see engine/batch.py).
        held = self.tags.get(name)
        return held is not None and held.status == "active"

    def tag_value(self, name: str) -> Any:
        held = self.tags.get(name)
        return held.value if held is not None and held.status == "active" else None

    def score(self, model: str) -> Any:
        return self.scores.get(model)  # null until the model has scored the entity


class _PeriodContext:
    """The context inside ``streak``: aggregates cover one calendar period."""

    __slots__ = ("idx", "parent", "period")

    def __init__(self, parent: EntityContext, period: str, idx: int) -> None:
        self.parent = parent
        self.period = period
        self.idx = idx

    @property
    def now(self) -> int:
        return self.parent.now

    def attr(self, path: tuple[str, ...]) -> Any:
        return self.parent.attr(path)

    def data(self) -> Any:
        return self.parent.data()

    def agg(self, node: b.Agg) -> Any:
        state = self.parent.state
        if state is None:
            from tagloop.engine.state import EMPTY

            return EMPTY.result(node.func)
        return pane(state, node, self.period, self.idx)

    def streak(self, node: b.Streak, cond: Fn) -> int:
        raise AssertionError("streaks do not nest")  # the binder refuses them

    def has_tag(self, name: str) -> bool:
        return self.parent.has_tag(name)

    def tag_value(self, name: str) -> Any:
        return self.parent.tag_value(name)

    def score(self, model: str) -> Any:
        return self.parent.score(model)


@lru_cache(maxsize=4096)
def _compiled(node: b.B) -> Fn:
    return compile_stream(node)


def evidence(bound: list[b.B], ctx: EntityContext) -> dict[str, Any]:
    """The values a rule looked at, by their text: attributes, aggregates, tags, scores,
    time functions; for a streak, its length and each counted period's aggregates."""
    values: dict[str, Any] = {}
    for root in bound:
        for node, fn in _shown(root):
            if isinstance(node, b.Streak):
                count = ctx.streak(node, fn)
                values[node.text] = count
                values.update(_streak_periods(node, ctx, count))
            else:
                values.setdefault(node.text, _plain(fn(ctx), node))
    return values


_SHOWN: dict[int, tuple[b.B, list[tuple[b.B, Fn]]]] = {}


def _shown(root: b.B) -> list[tuple[b.B, Fn]]:
    """The nodes of ``root`` that evidence shows, found once per rule (this runs on every
    tag change); keyed by identity, as hashing a whole tree costs as much as walking it."""
    cached = _SHOWN.get(id(root))
    if cached is not None and cached[0] is root:
        return cached[1]
    nodes: list[tuple[b.B, Fn]] = [
        (node, _compiled(node.cond if isinstance(node, b.Streak) else node))
        for node in root.walk()
        if isinstance(node, b.Streak | b.Attr | b.TagRef | b.ScoreRef)
        or (isinstance(node, b.Agg) and not node.per_period)
        or (isinstance(node, b.Func) and node.name in ("days_since", "hours_since"))
    ]
    _SHOWN[id(root)] = (root, nodes)
    return nodes


def _streak_periods(node: b.Streak, ctx: EntityContext, count: int) -> dict[str, Any]:
    last = periods.last_complete(node.period, ctx.now, ctx.tz)  # type: ignore[arg-type]
    shown = range(last - max(count, 1) + 1, last + 1)  # the failing period when count is 0
    out: dict[str, Any] = {}
    for agg in b.aggregates(node.cond):
        out[f"{agg.text} per {node.period}"] = {
            periods.label(node.period, idx): _PeriodContext(ctx, node.period, idx).agg(agg)  # type: ignore[arg-type]
            for idx in shown
        }
    return out


def _plain(value: Any, node: b.B) -> Any:
    if node.type == "datetime" and isinstance(value, int) and not isinstance(value, bool):
        return time_text(value)  # as times are stored, and as the batch side gives them
    return value
