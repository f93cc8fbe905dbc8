"""The rule language: one parser, one bound tree, two evaluators compiled from it.

>>> rule = compile_rule("spend >= 1_000 and country != 'UK'", Scope("customer",
...     {"spend": "number", "country": "string"}))
>>> rule.evaluate(DictContext({"spend": 2000, "country": "CN"}))
True
>>> sorted(rule.attributes)
['country', 'spend']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tagloop.rules.analysis import Deps, analyse
from tagloop.rules.binder import Scope, TagInfo, bind
from tagloop.rules.bound import B
from tagloop.rules.errors import RuleError
from tagloop.rules.parser import parse
from tagloop.rules.stream import Context, DictContext, Fn, compile_stream
from tagloop.rules.tree import Node

__all__ = [
    "CompiledRule",
    "Context",
    "DictContext",
    "RuleError",
    "Scope",
    "TagInfo",
    "compile_rule",
    "parse",
]


@dataclass(frozen=True)
class CompiledRule:
    text: str
    tree: Node
    bound: B
    deps: Deps
    fn: Fn

    @property
    def type(self) -> str:
        return self.bound.type

    @property
    def attributes(self) -> frozenset[str]:
        return self.deps.attributes

    def evaluate(self, ctx: Any) -> Any:
        return self.fn(ctx)


def compile_rule(text: str, scope: Scope, *, want: str | None = "boolean") -> CompiledRule:
    """Parse, bind and compile ``text``; raises `RuleError` with the span at fault."""
    return compile_tree(text, parse(text), scope, want=want)


def compile_tree(
    text: str, tree: Node, scope: Scope, *, want: str | None = "boolean"
) -> CompiledRule:
    """Bind and compile a tree made by any front end (rule text, JsonLogic, SQL rule)."""
    bound = bind(tree, scope, want=want)
    return CompiledRule(text, tree, bound, analyse(bound), compile_stream(bound))
