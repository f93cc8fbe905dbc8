"""Compiling a workspace's models (``models/*.yaml``): features, label and population
are rule-language expressions, bound against the model's entity type after the tags (a
feature may read a tag), with problems reported as ``file:line:col: message``.
"""

from __future__ import annotations

from collections.abc import Callable

from tagloop.errors import Problem
from tagloop.models.spec import Feature, ModelDefinition, encoding_of
from tagloop.names import caret_line
from tagloop.rules import CompiledRule, RuleError, compile_rule
from tagloop.workspace.models import ModelSpec
from tagloop.workspace.workspace import Workspace
from tagloop.workspace.yamlfile import PathKey, Positions

Report = Callable[[Problem], None]
Item = tuple[ModelSpec, Positions, PathKey]


def compile_models(
    workspace: Workspace, items: list[Item], report: Report, dictionary_complete: bool
) -> dict[str, ModelDefinition]:
    """Compile every model; problems go to ``report``; returns the models that compiled."""
    compiled: dict[str, ModelDefinition] = {}
    for spec, positions, path in items:
        if spec.entity not in workspace.dictionary:
            if dictionary_complete:
                where = positions.locate((*path, "entity"))
                report(Problem(where, workspace.dictionary.unknown(spec.entity)))
            continue
        definition = _compile(workspace, spec, positions, path, report)
        if definition is not None:
            compiled[spec.name] = definition
    return compiled


def _compile(
    workspace: Workspace, spec: ModelSpec, positions: Positions, path: PathKey, report: Report
) -> ModelDefinition | None:
    scope = workspace.scope(spec.entity)
    ok = True

    def one(key: PathKey, text: str, want: str | None) -> CompiledRule | None:
        nonlocal ok
        try:
            rule = compile_rule(text, scope, want=want)
        except RuleError as exc:
            report(_problem(positions, (*path, *key), text, exc))
            ok = False
            return None
        if spec.name in rule.deps.scores:
            report(Problem(positions.locate((*path, *key)), "a model cannot read its own score"))
            ok = False
            return None
        return rule

    features = []
    for name, text in spec.features.items():
        rule = one(("features", name), str(text), None)
        if rule is None:
            continue
        encoding = encoding_of(rule.type)
        if encoding is None:
            report(
                Problem(
                    positions.locate((*path, "features", name)),
                    f"feature {name!r} is a {rule.type}: a feature is a number, a boolean or "
                    "a text (category)",
                )
            )
            ok = False
            continue
        features.append(Feature(name, rule, encoding))
    label = None
    if spec.label.rule is not None:
        label = one(("label", "rule"), spec.label.rule, "boolean")
    else:
        reviewed = workspace.tags.get(str(spec.label.reviews))
        if reviewed is None or reviewed.entity != spec.entity:
            what = "unknown tag" if reviewed is None else f"{spec.entity} has no tag"
            report(
                Problem(
                    positions.locate((*path, "label", "reviews")),
                    f"label.reviews: {what} {spec.label.reviews!r}",
                )
            )
            ok = False
    population = None
    if spec.label.population is not None:
        population = one(("label", "population"), spec.label.population, "boolean")
    if not ok:
        return None
    return ModelDefinition(spec, features, label, population, positions.locate(path))


def _problem(positions: Positions, path: PathKey, text: str, exc: RuleError) -> Problem:
    where, line = positions.locate_in_scalar(path, exc.start, text)
    if not line:
        return Problem(positions.locate(path), exc.message)
    col = int(where.rsplit(":", 1)[1])
    return Problem(where, exc.message, caret_line(line, col, exc.end - exc.start))
