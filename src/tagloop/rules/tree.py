"""The typed rule tree: what the parser produces and both evaluators consume.

Every node is a frozen dataclass that declares its arguments as fields and carries the
character span of the text it came from, so checks can point at the exact place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    span: tuple[int, int] = field(compare=False, repr=False, kw_only=True)

    def children(self) -> Iterator[Node]:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple):
                for item in value:
                    if isinstance(item, Node):
                        yield item
                    elif isinstance(item, tuple):  # Case.whens holds (cond, result) pairs
                        yield from (x for x in item if isinstance(x, Node))

    def walk(self) -> Iterator[Node]:
        """This node and all its descendants, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A number, string, boolean or null."""

    value: Any


@dataclass(frozen=True, slots=True)
class Duration(Node):
    """``30d`` and friends, in microseconds."""

    micros: int


@dataclass(frozen=True, slots=True)
class PeriodSpan(Node):
    """``3 months`` in ``every(3 months, ...)``."""

    count: int
    period: str


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A dotted name: a profile attribute path (``address.city``) or an event reference
    (``order.amount``); which one is settled by the checker."""

    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """Arithmetic (``+ - * / %``) and comparisons (``== != < <= > >=``)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical(Node):
    """``and`` / ``or`` over two or more operands (flattened)."""

    op: str
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class StringTest(Node):
    """``contains``, ``startswith``, ``endswith``, ``matches``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class In(Node):
    value: Node
    options: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between(Node):
    value: Node
    low: Node
    high: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    value: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function call ``f(a, b)``; ``where`` is the filter of aggregates like
    ``count(order where amount > 100, 30d)`` (attached to the first argument)."""

    name: str
    args: tuple[Node, ...]
    where: Node | None = None
    name_span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Method(Node):
    """The method form ``tags.contains('VIP')`` / ``customer.tags.contains('VIP')``."""

    target: Node
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Case(Node):
    whens: tuple[tuple[Node, Node], ...]
    default: Node | None = None
