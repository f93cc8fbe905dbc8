"""The same conditions evaluated per entity by tagloop, `rule-engine` and `json-logic`.

Neither package can compute event aggregates, calendar streaks, other tags or anything
relative to ``now``, so the comparison is over flat data: every such sub-expression of a
rule (``sum(order.amount, 30d)``, ``streak(month, ...)``, ``has_tag('x')``,
``days_since(signup)``, ``now()``) becomes a column computed beforehand by tagloop's
streaming evaluator for each entity, and each rule is translated to the three languages
over the entity's attributes plus those columns. A column without a value (an average of
no orders) is filled with a neutral value (0, '', false) so that the two-valued packages,
which raise on ``null > 3``, see the same data as tagloop. The translated conditions are
then timed over the same flat dicts, and their results checked to agree.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import rule_engine
from json_logic import add_operation, jsonLogic

from tagloop.rules import DictContext, Scope, compile_rule, compile_tree, parse
from tagloop.rules import tree as t
from tagloop.rules.functions import AGGREGATES
from tagloop.rules.printer import to_text

OPAQUE = {"streak", "every", "has_tag", "tag", "score", "now", "days_since", "hours_since"}
RENAME = {"客户等级": "grade_cn", "first_seen": "first_seen_us", "last_seen": "last_seen_us"}
FILL = {"number": 0, "integer": 0, "string": "", "boolean": False, "list": [], "any": 0}


@dataclass
class Condition:
    """One tag's rule (or value expression) in the three languages."""

    tag: str
    part: str  # "rule" or "value"
    flat: str  # tagloop text over the flat dict
    rule_engine: str
    json_logic: Any


@dataclass
class Flattener:
    """Rewrites rule trees over a flat dict: opaque sub-expressions become columns."""

    event_types: set[str]
    terms: dict[str, str] = field(default_factory=dict)  # term text -> column name

    def opaque(self, node: t.Node) -> bool:
        if isinstance(node, t.Call):
            if node.name in OPAQUE:
                return True
            first = node.args[0] if node.args else None
            return (
                node.name in AGGREGATES
                and isinstance(first, t.Name)
                and first.parts[0] in self.event_types
            )
        return (
            isinstance(node, t.Method)
            and node.name == "contains"
            and isinstance(node.target, t.Name)
            and node.target.parts[-1] == "tags"
        )

    def rewrite(self, node: t.Node) -> t.Node:
        if self.opaque(node):
            text = to_text(node)
            name = self.terms.setdefault(text, f"k{len(self.terms):03d}")
            return t.Name((name,), span=node.span)
        if isinstance(node, t.Name):
            return t.Name(
                tuple(RENAME.get(p, p) if i == 0 else p for i, p in enumerate(node.parts)),
                span=node.span,
            )
        if isinstance(node, t.Duration):
            return t.Literal(node.micros, span=node.span)
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, t.Node):
                changes[f.name] = self.rewrite(value)
            elif isinstance(value, tuple):
                changes[f.name] = tuple(
                    self.rewrite(v)
                    if isinstance(v, t.Node)
                    else tuple(self.rewrite(x) for x in v)
                    if isinstance(v, tuple)
                    else v
                    for v in value
                )
        return dataclasses.replace(node, **changes) if changes else node


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_rule_engine(node: t.Node) -> str:
    """rule-engine's expression syntax (https://zeroSteiner.github.io/rule-engine/)."""
    r = to_rule_engine
    if isinstance(node, t.Literal):
        v = node.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        return _string(v) if isinstance(v, str) else repr(v)
    if isinstance(node, t.ListLit):
        return "[" + ", ".join(r(i) for i in node.items) + "]"
    if isinstance(node, t.Name):
        return ".".join(node.parts)
    if isinstance(node, t.Unary):
        return f"not ({r(node.operand)})" if node.op == "not" else f"-({r(node.operand)})"
    if isinstance(node, t.Binary):
        op = {"=": "==", "<>": "!="}.get(node.op, node.op)
        return f"({r(node.left)} {op} {r(node.right)})"
    if isinstance(node, t.Logical):
        return "(" + f" {node.op} ".join(r(o) for o in node.operands) + ")"
    if isinstance(node, t.StringTest):
        left, right = r(node.left), r(node.right)
        return {
            "contains": f"({right} in {left})",
            "startswith": f"{left}.starts_with({right})",
            "endswith": f"{left}.ends_with({right})",
            "matches": f"({left} =~~ {right})",
        }[node.op]
    if isinstance(node, t.In):
        text = f"({r(node.value)} in {r(node.options)})"
        return f"not {text}" if node.negated else text
    if isinstance(node, t.Between):
        v = r(node.value)
        text = f"({v} >= {r(node.low)} and {v} <= {r(node.high)})"
        return f"not {text}" if node.negated else text
    if isinstance(node, t.IsNull):
        return f"({r(node.value)} {'!=' if node.negated else '=='} null)"
    if isinstance(node, t.Case):
        text = "null" if node.default is None else r(node.default)
        for cond, value in reversed(node.whens):
            text = f"({r(cond)} ? {r(value)} : {text})"
        return text
    if isinstance(node, t.Call):
        args = [r(a) for a in node.args]
        if node.name == "abs":
            return f"$abs({args[0]})"
        if node.name in ("min", "max"):
            return f"${node.name}([{', '.join(args)}])"
        if node.name == "coalesce":
            text = args[-1]
            for a in reversed(args[:-1]):
                text = f"({a} == null ? {text} : {a})"
            return text
        if node.name in ("lower", "upper", "len"):
            attr = {"lower": "as_lower", "upper": "as_upper", "len": "length"}[node.name]
            return f"({args[0]}).{attr}"
        if node.name == "round":  # half away from zero; the values rounded are >= 0
            scale = 10 ** int(node.args[1].value) if len(node.args) > 1 else 1  # type: ignore[attr-defined]
            return f"(({args[0]}) * {scale} + 0.5).floor / {scale}"
    raise ValueError(f"rule-engine: no translation for {to_text(node)}")


def to_json_logic(node: t.Node) -> Any:
    """JsonLogic (https://jsonlogic.com), with custom operations for what it lacks."""
    j = to_json_logic
    if isinstance(node, t.Literal):
        return node.value
    if isinstance(node, t.ListLit):
        return [j(i) for i in node.items]
    if isinstance(node, t.Name):
        return {"var": ".".join(node.parts)}
    if isinstance(node, t.Unary):
        return {"!": [j(node.operand)]} if node.op == "not" else {"-": [j(node.operand)]}
    if isinstance(node, t.Binary):
        op = {"=": "==", "<>": "!="}.get(node.op, node.op)
        return {op: [j(node.left), j(node.right)]}
    if isinstance(node, t.Logical):
        return {node.op: [j(o) for o in node.operands]}
    if isinstance(node, t.StringTest):
        left, right = j(node.left), j(node.right)
        if node.op == "contains":
            return {"in": [right, left]}
        if node.op in ("startswith", "endswith") and isinstance(right, str):
            cut = [left, 0, len(right)] if node.op == "startswith" else [left, -len(right)]
            return {"==": [{"substr": cut}, right]}
        return {"matches": [left, right]}
    if isinstance(node, t.In):
        found = {"in": [j(node.value), j(node.options)]}
        return {"!": [found]} if node.negated else found
    if isinstance(node, t.Between):
        found = {"<=": [j(node.low), j(node.value), j(node.high)]}
        return {"!": [found]} if node.negated else found
    if isinstance(node, t.IsNull):
        return {"!=" if node.negated else "==": [j(node.value), None]}
    if isinstance(node, t.Case):
        items: list[Any] = []
        for cond, value in node.whens:
            items += [j(cond), j(value)]
        return {"if": [*items, None if node.default is None else j(node.default)]}
    if isinstance(node, t.Call):
        args = [j(a) for a in node.args]
        if node.name == "coalesce":
            found = args[-1]
            for a in reversed(args[:-1]):
                found = {"if": [{"==": [a, None]}, found, a]}
            return found
        if node.name in ("abs", "round", "lower", "upper", "len", "min", "max"):
            return {node.name: args}
    raise ValueError(f"json-logic: no translation for {to_text(node)}")


def _round(x: Any, digits: Any = 0) -> Any:
    quantum = Decimal(1).scaleb(-int(digits))
    return float(Decimal(repr(x)).quantize(quantum, rounding=ROUND_HALF_UP))


def register_json_logic_operations() -> None:
    """What JsonLogic lacks, added the way its users add operations."""
    add_operation("abs", abs)
    add_operation("round", _round)
    add_operation("lower", lambda s: s.lower() if isinstance(s, str) else None)
    add_operation("upper", lambda s: s.upper() if isinstance(s, str) else None)
    add_operation("len", lambda s: len(s) if s is not None else None)
    add_operation("matches", lambda s, p: isinstance(s, str) and re.search(p, s) is not None)


def translate(
    tags: Iterable[tuple[str, str, str]], event_types: set[str]
) -> tuple[list[Condition], dict[str, str]]:
    """``(tag, part, text)`` -> conditions, and the columns they read (term -> name)."""
    flattener = Flattener(event_types)
    out = []
    for tag, part, text in tags:
        tree = flattener.rewrite(parse(text))
        out.append(Condition(tag, part, to_text(tree), to_rule_engine(tree), to_json_logic(tree)))
    return out, flattener.terms


def flat_scope(fields: dict[str, str], columns: dict[str, str]) -> Scope:
    renamed = {RENAME.get(k, k): v for k, v in fields.items()}
    renamed.update({"first_seen_us": "integer", "last_seen_us": "integer", **columns})
    return Scope("customer", renamed)


def column_type(static: str) -> str:
    return {"datetime": "integer", "null": "any"}.get(static, static)


@dataclass
class Timed:
    name: str
    seconds: float
    evaluations: int
    results: list[list[Any]]

    @property
    def rate(self) -> float:
        return self.evaluations / self.seconds if self.seconds else 0.0


def _run(name: str, fns: list[Callable[[Any], Any]], rows: list[Any]) -> Timed:
    results: list[list[Any]] = []
    started = time.perf_counter()
    for row in rows:
        results.append([fn(row) for fn in fns])
    seconds = time.perf_counter() - started
    return Timed(name, seconds, len(rows) * len(fns), results)


def _same(a: Any, c: Any, part: str) -> bool:
    if part == "rule":
        return (a is True) == bool(c)
    if isinstance(a, int | float) and isinstance(c, int | float | Decimal):
        return abs(float(a) - float(c)) <= 1e-6 * max(1.0, abs(float(a)))
    return bool(a == c)


def compare(
    conditions: list[Condition], scope: Scope, dicts: list[dict[str, Any]]
) -> tuple[list[Timed], dict[str, int]]:
    """Time the three evaluators over ``dicts``; count disagreements with tagloop."""
    register_json_logic_operations()
    compiled = [
        compile_tree(c.flat, parse(c.flat), scope, want="boolean" if c.part == "rule" else None).fn
        for c in conditions
    ]
    context = rule_engine.Context(default_value=None)
    engines = [rule_engine.Rule(c.rule_engine, context=context) for c in conditions]
    logic = [c.json_logic for c in conditions]
    contexts = [DictContext(d) for d in dicts]
    ours = _run("tagloop (compiled closures)", compiled, contexts)

    def guarded(rule: rule_engine.Rule) -> Callable[[Any], Any]:
        def run(data: Any) -> Any:
            try:
                return rule.evaluate(data)
            except rule_engine.EngineError as exc:
                return exc

        return run

    theirs = _run("rule-engine 5.1.0", [guarded(e) for e in engines], dicts)
    jl = _run(
        "json-logic-qubit 0.9.1",
        [(lambda d, rule=rule: jsonLogic(rule, d)) for rule in logic],
        dicts,
    )
    mismatches: dict[str, int] = {}
    for other in (theirs, jl):
        bad = 0
        for mine, found in zip(ours.results, other.results, strict=True):
            for c, a, v in zip(conditions, mine, found, strict=True):
                if not _same(a, v, c.part):
                    bad += 1
        mismatches[other.name] = bad
    return [ours, theirs, jl], mismatches


def compile_terms(terms: dict[str, str], scope: Scope) -> dict[str, tuple[Any, str]]:
    """column name -> (compiled term, column type) in the real scope (events, tags)."""
    out = {}
    for text, name in terms.items():
        rule = compile_rule(text, scope, want=None)
        out[name] = (rule.fn, column_type(rule.type))
    return out
