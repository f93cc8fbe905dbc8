"""Checking a source file: its kind's own keys and the mapping of each of its streams.

A source file has the keys every kind shares (`tagloop.workspace.models.SourceSpec`), the
keys of its kind (checked by the kind's ``config_model``), and a default ``mapping`` that
each stream (a table, a topic) may extend. Every problem is reported at its file:line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from tagloop.errors import Problem
from tagloop.names import suggest
from tagloop.rules import RuleError, Scope, compile_rule
from tagloop.workspace.models import RecordMapping, SourceSpec
from tagloop.workspace.workspace import Workspace
from tagloop.workspace.yamlfile import PathKey, Positions

M = TypeVar("M", bound=BaseModel)
Validate = Callable[[type[Any], Any, Positions, PathKey], Any]


@dataclass(frozen=True)
class SourceDefinition:
    """A checked source: its common keys, its kind's config, a mapping per stream."""

    spec: SourceSpec
    config: Any  # the kind's config_model instance
    mappings: dict[str, RecordMapping]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind


def check_source(
    workspace: Workspace,
    spec: SourceSpec,
    positions: Positions,
    path: PathKey,
    validate: Validate,
    report: Callable[[Problem], None],
    dictionary_complete: bool,
) -> SourceDefinition | None:
    from tagloop.sources.kinds import kinds

    known = kinds()
    kind = known.get(spec.kind)
    if kind is None:
        report(
            Problem(
                positions.locate((*path, "kind")),
                f"unknown source kind {spec.kind!r}{suggest(spec.kind, known)} "
                f"(known: {', '.join(sorted(known))})",
            )
        )
        return None
    config = validate(kind.config_model, spec.options, positions, path)
    if config is None:
        return None
    mappings: dict[str, RecordMapping] = {}
    ok = True
    for stream, extra in config.streams().items():
        merged = {**(spec.mapping or {}), **extra}
        # Problems of a stream's own keys point at the stream, the others at `mapping`.
        where = _stream_path(path, spec, stream, extra)
        mapping = validate(RecordMapping, merged, positions, where)
        if mapping is None:
            ok = False
            continue
        ok &= _check_mapping(workspace, mapping, positions, where, report, dictionary_complete)
        mappings[stream] = mapping
    return SourceDefinition(spec, config, mappings) if ok else None


def _stream_path(path: PathKey, spec: SourceSpec, stream: str, extra: dict[str, Any]) -> PathKey:
    if extra and stream:
        for key in ("table_mapping", "topics", "subjects", "streams", "queues"):
            if stream in (spec.options.get(key) or {}):
                return (*path, key, stream)
    return (*path, "mapping")


def _check_mapping(
    workspace: Workspace,
    mapping: RecordMapping,
    positions: Positions,
    path: PathKey,
    report: Callable[[Problem], None],
    dictionary_complete: bool,
) -> bool:
    ok = True
    entity_types: list[tuple[tuple[str, ...], str]] = [(("entity_type",), mapping.entity_type)]
    entity_types += [(("related", name), name) for name in mapping.related]
    for key, name in entity_types:
        if name not in workspace.dictionary and dictionary_complete:
            report(Problem(positions.locate((*path, *key)), workspace.dictionary.unknown(name)))
            ok = False
    for name in mapping.fields:
        rule = mapping.rule(name)
        if rule.unit is not None and rule.to is not None:
            from tagloop.sources.coerce import CoerceError
            from tagloop.sources.units import check_unit_pair

            try:
                check_unit_pair(rule.unit, rule.to)
            except CoerceError as exc:
                report(Problem(positions.locate((*path, "fields", name)), str(exc)))
                ok = False
    scope = Scope(mapping.entity_type, computed_scope(mapping), timezone=workspace.timezone)
    for name, computed in mapping.computed.items():
        expr = computed if isinstance(computed, str) else computed.expr
        try:
            compile_rule(expr, scope, want=None)
        except RuleError as exc:
            report(Problem(positions.locate((*path, "computed", name)), f"{name}: {exc}"))
            ok = False
    return ok


def computed_scope(mapping: RecordMapping) -> dict[str, str]:
    """What computed fields may read: declared fields (with their types; time and date
    values are numbers and text then) and constants."""
    as_rule_type = {"time": "integer", "date": "string", None: "any"}
    scope = {}
    for name in mapping.fields:
        kind = mapping.rule(name).type
        scope[name] = as_rule_type.get(kind, kind or "any")
    for name, value in mapping.constants.items():
        scope[name] = _type_of(value)
    return scope


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "any"
