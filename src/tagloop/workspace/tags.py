"""Compiling a workspace's tags: parse, order by dependency, bind, and report problems.

A tag may read other tags (``has_tag('VIP')``, ``tag('turnover')``); such references form a
graph that must have no cycle (a cycle is reported with its path), and tags are bound in
dependency order so that a tag knows the value type of every tag it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tagloop.errors import Problem
from tagloop.names import caret_line
from tagloop.rules import RuleError, TagInfo, compile_tree, parse
from tagloop.rules import tree as t
from tagloop.rules.jsonlogic import compile_jsonlogic, error_path, parse_jsonlogic
from tagloop.rules.tree import Node
from tagloop.workspace.models import TagSpec
from tagloop.workspace.workspace import TagDefinition, Workspace
from tagloop.workspace.yamlfile import PathKey, Positions


@dataclass
class TagSource:
    """One tag as read from a file, with what it takes to point at its parts."""

    spec: TagSpec
    positions: Positions
    path: PathKey
    # Parsed expressions by key ("rule", "value"); front ends other than the rule text
    # (JsonLogic, SQL rules) provide theirs already parsed.
    trees: dict[str, Node] | None = None


Report = Callable[[Problem], None]


def compile_tags(
    workspace: Workspace, sources: list[TagSource], report: Report, dictionary_complete: bool
) -> dict[str, TagDefinition]:
    """Compile every tag; problems go to ``report``; returns the tags that compiled."""
    trees: dict[str, dict[str, Node]] = {}
    by_name = {source.spec.name: source for source in sources}
    for source in sources:
        spec = source.spec
        if spec.entity not in workspace.dictionary:
            if dictionary_complete:
                report(
                    Problem(
                        source.positions.locate((*source.path, "entity")),
                        workspace.dictionary.unknown(spec.entity),
                    )
                )
            continue
        parsed = _parse(source, report)
        if parsed is not None:
            trees[spec.name] = parsed
    order = _order(trees, by_name, report)
    compiled: dict[str, TagDefinition] = {}
    infos: dict[str, TagInfo] = {
        source.spec.name: TagInfo(source.spec.entity, _imported_type(source.spec))
        for source in sources
        if source.spec.kind == "imported"
    }
    for name in order:
        source = by_name[name]
        definition = _bind(workspace, source, trees[name], infos, report)
        if definition is not None:
            compiled[name] = definition
            infos[name] = TagInfo(source.spec.entity, definition.value_type)
    for source in sources:
        if source.spec.kind == "imported" and source.spec.entity in workspace.dictionary:
            compiled[source.spec.name] = TagDefinition(
                source.spec, None, None, source.positions.locate(source.path)
            )
    return compiled


def _imported_type(spec: TagSpec) -> str:
    kind = spec.value_type or "boolean"
    return "list" if spec.multi else kind


def _parse(source: TagSource, report: Report) -> dict[str, Node] | None:
    if source.trees is not None:
        return source.trees
    found: dict[str, Node] = {}
    ok = True
    if source.spec.jsonlogic is not None:
        try:
            found["rule"] = parse_jsonlogic(source.spec.jsonlogic, condition=True)
        except RuleError as exc:
            report(_jsonlogic_problem(source, exc))
            ok = False
    for key in ("rule", "value"):
        text = getattr(source.spec, key)
        if text is None:
            continue
        try:
            found[key] = parse(text)
        except RuleError as exc:
            report(_rule_problem(source, key, text, exc))
            ok = False
    return found if ok else None


def _jsonlogic_problem(source: TagSource, exc: RuleError) -> Problem:
    keys, message = error_path(exc.message)
    where = source.positions.locate((*source.path, "jsonlogic", *keys))
    json_path = exc.message[: len(exc.message) - len(message)].rstrip(": ")
    return Problem(where, f"{message} (at {json_path})" if json_path else message)


def _rule_problem(source: TagSource, key: str, text: str, exc: RuleError) -> Problem:
    where, line = source.positions.locate_in_scalar((*source.path, key), exc.start, text)
    if not line:
        return Problem(source.positions.locate((*source.path, key)), exc.message)
    col = int(where.rsplit(":", 1)[1])
    return Problem(where, exc.message, caret_line(line, col, exc.end - exc.start))


def references(tree: Node) -> set[str]:
    """Tag names a tree reads (``has_tag('X')``, ``tag('X')``, ``tags.contains('X')``)."""
    found: set[str] = set()
    for node in tree.walk():
        args: tuple[Node, ...] = ()
        if (isinstance(node, t.Call) and node.name in ("has_tag", "tag")) or (
            isinstance(node, t.Method) and node.name == "contains"
        ):
            args = node.args
        if len(args) == 1 and isinstance(args[0], t.Literal) and isinstance(args[0].value, str):
            found.add(args[0].value)
    return found


def _order(
    trees: dict[str, dict[str, Node]], by_name: dict[str, TagSource], report: Report
) -> list[str]:
    """Tags in dependency order; tags on a cycle (and their dependents) are left out."""
    edges = {
        name: sorted(set().union(*(references(tr) for tr in parts.values())) & set(trees))
        for name, parts in trees.items()
    }
    order: list[str] = []
    state: dict[str, str] = {}  # visiting / done / broken
    for start in sorted(edges):
        _visit(start, edges, state, order, [], by_name, report)
    return order


def _visit(
    name: str,
    edges: dict[str, list[str]],
    state: dict[str, str],
    order: list[str],
    stack: list[str],
    by_name: dict[str, TagSource],
    report: Report,
) -> bool:
    if state.get(name) == "done":
        return True
    if state.get(name) == "broken":
        return False
    if state.get(name) == "visiting":
        cycle = [*stack[stack.index(name) :], name]
        source = by_name[name]
        key = "rule" if source.spec.rule is not None else "value"
        report(
            Problem(
                source.positions.locate((*source.path, key)),
                "tags depend on each other in a cycle: " + " -> ".join(cycle),
            )
        )
        return False
    state[name] = "visiting"
    stack.append(name)
    ok = all(_visit(dep, edges, state, order, stack, by_name, report) for dep in edges[name])
    stack.pop()
    state[name] = "done" if ok else "broken"
    if ok:
        order.append(name)
    return ok


def _bind(
    workspace: Workspace,
    source: TagSource,
    parts: dict[str, Node],
    infos: dict[str, TagInfo],
    report: Report,
) -> TagDefinition | None:
    spec = source.spec
    scope = workspace.scope(spec.entity, infos)
    compiled = {}
    for key, tree in parts.items():
        text = getattr(spec, key) or _front_end_text(tree)
        want = "boolean" if key == "rule" else ("list" if spec.multi else None)
        try:
            if key == "rule" and spec.jsonlogic is not None:
                # compile_jsonlogic names the JSON path at fault in its errors
                compiled[key] = compile_jsonlogic(spec.jsonlogic, scope, want=want)
            else:
                compiled[key] = compile_tree(text, tree, scope, want=want)
        except RuleError as exc:
            if key == "rule" and spec.jsonlogic is not None:
                report(_jsonlogic_problem(source, exc))
                return None
            report(
                _rule_problem(source, key, text, exc)
                if getattr(spec, key)
                else Problem(source.positions.locate((*source.path, key)), exc.message)
            )
            return None
    return TagDefinition(
        spec, compiled.get("rule"), compiled.get("value"), source.positions.locate(source.path)
    )


def _front_end_text(tree: Node) -> str:
    from tagloop.rules.printer import to_text

    return to_text(tree)
