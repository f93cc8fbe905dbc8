"""The loaded, validated workspace: what the rest of tagloop runs on."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import orjson

from tagloop.dictionary import Dictionary
from tagloop.rules import CompiledRule, Scope, TagInfo
from tagloop.rules.analysis import Deps
from tagloop.timeutil import parse_duration, zone
from tagloop.workspace.models import EntityTypeSpec, ProjectFile, TagSpec

if TYPE_CHECKING:
    from tagloop.flows.steps import Flow
    from tagloop.models.spec import ModelDefinition
    from tagloop.workspace.sources import SourceDefinition

DATABASE_ENV = "TAGLOOP_DATABASE_URL"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class TagDefinition:
    """A tag as the workspace defines it, with its compiled rule and value."""

    spec: TagSpec
    rule: CompiledRule | None  # when the tag is held (None: whenever the value is not null)
    value: CompiledRule | None  # what it holds (None: true)
    location: str  # file:line:col of the definition

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def entity(self) -> str:
        return self.spec.entity

    @property
    def computed(self) -> bool:
        """Computed by rules (as opposed to imported)."""
        return self.spec.kind == "rule"

    @property
    def value_type(self) -> str:
        if self.spec.kind == "imported":
            return "list" if self.spec.multi else (self.spec.value_type or "boolean")
        return self.value.type if self.value is not None else "boolean"

    @cached_property
    def deps(self) -> Deps:
        """The union of what the rule and the value depend on."""
        parts = [c.deps for c in (self.rule, self.value) if c is not None]
        if not parts:
            return Deps(frozenset(), (), frozenset(), frozenset(), frozenset(), frozenset(), False)
        aggregates = tuple(dict.fromkeys(a for d in parts for a in d.aggregates))
        return Deps(
            attributes=frozenset().union(*(d.attributes for d in parts)),
            aggregates=aggregates,
            inputs=frozenset(a.input for a in aggregates),
            tags=frozenset().union(*(d.tags for d in parts)),
            scores=frozenset().union(*(d.scores for d in parts)),
            periods=frozenset().union(*(d.periods for d in parts)),
            time_dependent=any(d.time_dependent for d in parts),
            whole_data=any(d.whole_data for d in parts),
        )

    @cached_property
    def definition(self) -> dict[str, object]:
        """The definition as stored with each version (the file content, normalised)."""
        return self.spec.model_dump(mode="json", exclude_none=True)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of what changes the tag's meaning; a new fingerprint is a new version.

        Category, owner, description and the SQL rule's ``action`` (what flows do when it
        holds) are left out: editing them changes no assignment, so it needs no recompute.
        """
        spec = self.spec
        meaning = {
            "entity": spec.entity,
            "kind": spec.kind,
            "rule": spec.rule,
            "value": spec.value,
            "multi": spec.multi,
            "value_type": spec.value_type,
            "valid_for": spec.valid_for,
        }
        return hashlib.sha256(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class Workspace:
    root: Path
    project: ProjectFile
    entity_types: list[EntityTypeSpec]
    revision: str
    tags: dict[str, TagDefinition] = field(default_factory=dict)
    sources: dict[str, SourceDefinition] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    models: dict[str, ModelDefinition] = field(default_factory=dict)
    # model -> entity type, known before anything compiles: rules may read score('m')
    model_entities: dict[str, str] = field(default_factory=dict)

    @cached_property
    def dictionary(self) -> Dictionary:
        return Dictionary(self.entity_types)

    @property
    def name(self) -> str:
        return self.project.name

    @cached_property
    def timezone(self) -> ZoneInfo:
        return zone(self.project.timezone)

    @cached_property
    def max_future_us(self) -> int:
        return parse_duration(self.project.ingest.max_future)

    @property
    def database_url(self) -> str:
        """``TAGLOOP_DATABASE_URL`` if set, else the workspace's ``database``, with a
        relative SQLite path resolved against the workspace folder."""
        url = os.environ.get(DATABASE_ENV) or self.project.database
        return resolve_sqlite_path(url, self.root)

    def tags_for(self, entity_type: str) -> list[TagDefinition]:
        return [tag for tag in self.tags.values() if tag.entity == entity_type]

    def scope(self, entity_type: str, tags: dict[str, TagInfo] | None = None) -> Scope:
        """What a rule on ``entity_type`` can see; ``tags`` defaults to every tag."""
        entity = self.dictionary.get(entity_type)
        if tags is None:
            tags = {t.name: TagInfo(t.entity, t.value_type) for t in self.tags.values()}
        return Scope(
            entity_type,
            entity.field_types if entity is not None else {},
            events=self.dictionary.event_types(),
            tags=tags,
            models=dict(self.model_entities),
            timezone=self.timezone,
        )


def resolve_sqlite_path(url: str, root: Path) -> str:
    """Make ``sqlite:///relative.db`` relative to ``root``; other URLs are unchanged.

    >>> resolve_sqlite_path("sqlite:///tagloop.db", Path("/ws"))
    'sqlite:////ws/tagloop.db'
    >>> resolve_sqlite_path("postgresql://localhost/test", Path("/ws"))
    'postgresql://localhost/test'
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == "sqlite:///:memory:":
        return url
    return prefix + str((root / url[len(prefix) :]).resolve())
