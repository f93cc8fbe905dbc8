"""A model as the workspace defines it: compiled features, label and population.

Features, label and population are rule-language expressions compiled against the
entity type's scope, so a model reads exactly what a tag rule can read, and both
evaluators compute it. Each feature has an encoding decided by its static type: numbers
(integers, durations and times too) are used as they are, booleans as 0/1, text (and
dates, and untyped values) as categories.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import orjson

from tagloop.rules import CompiledRule
from tagloop.timeutil import parse_duration
from tagloop.workspace.models import ModelSpec

Encoding = Literal["number", "boolean", "category"]
# What a feature of each static type becomes; lists and objects are refused at load.
ENCODINGS: dict[str, Encoding] = {
    "integer": "number",
    "number": "number",
    "duration": "number",
    "datetime": "number",
    "boolean": "boolean",
    "string": "category",
    "date": "category",
    "any": "category",
}


RULE_CONFIDENCE = 1.0  # as tagloop.review.policy: a rule states a fact


def confidence(models: Iterable[str], score: Callable[[str], Any]) -> float:
    """The confidence of a held assignment: for a model tag (its rule reads
    ``score('m')``), the score of the model it reads (the first by name if several);
    for any other tag, or while no score is known, certain (1.0). Both evaluators call
    this, with their own way of reading a score.

    >>> confidence(["churn"], {"churn": 0.82}.get), confidence([], {}.get)
    (0.82, 1.0)
    """
    for name in sorted(models):
        value = score(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return RULE_CONFIDENCE


def encoding_of(static: str) -> Encoding | None:
    """How a feature of static type ``static`` is encoded (None: it cannot be a feature).

    >>> encoding_of("integer"), encoding_of("string"), encoding_of("list")
    ('number', 'category', None)
    """
    return ENCODINGS.get(static)


@dataclass(frozen=True)
class Feature:
    name: str
    rule: CompiledRule
    encoding: Encoding


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class ModelDefinition:
    spec: ModelSpec
    features: list[Feature]
    label: CompiledRule | None  # None: the labels are review decisions (spec.label.reviews)
    population: CompiledRule | None
    location: str  # file:line:col of the definition

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def entity(self) -> str:
        return self.spec.entity

    @property
    def horizon(self) -> int:
        return parse_duration(self.spec.label.horizon)

    @cached_property
    def digest(self) -> str:
        """Hash of what a trained version's meaning depends on: entity, features (names,
        expressions, order), label and population. A version trained under another digest
        computed its features differently; scoring with it is refused.

        >>> from tagloop.workspace.models import ModelSpec
        >>> spec = ModelSpec(name="m", entity="c", features={"a": "x"}, label={"rule": "y"})
        >>> len(ModelDefinition(spec, [], None, None, "").digest)  # type: ignore[arg-type]
        16
        """
        spec = self.spec
        meaning = {
            "entity": spec.entity,
            "features": list(spec.features.items()),
            "label": spec.label.model_dump(mode="json"),
        }
        return hashlib.sha256(orjson.dumps(meaning)).hexdigest()[:16]

    @property
    def reads_tags(self) -> frozenset[str]:
        found: set[str] = set()
        for feature in self.features:
            found |= feature.rule.deps.tags
        return frozenset(found)
