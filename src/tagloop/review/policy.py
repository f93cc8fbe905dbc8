"""Review policies: whether a proposed assignment applies at once, waits for a reviewer,
or is dropped.

One pure function, `gate`, decides for both evaluators (the stream in
`tagloop.engine.evaluator`, the batch in `tagloop.engine.batch`) and for any other producer
of tag changes (model scoring), so that they always agree.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from tagloop.store.tags import Held, TagChange
from tagloop.workspace.models import ReviewSpec

ACTIVE = "active"
PENDING = "pending"
DROPPED = "dropped"
RULE_CONFIDENCE = 1.0  # a rule states a fact: its assignments are certain
_BUCKETS = 10_000  # sampling resolution: 0.01 %


def bucket(tag: str, entity_type: str, entity_id: str) -> int:
    """A stable number in [0, 10000) for an entity's tag: the same in every process and
    every run (a hash, not Python's randomised ``hash``), so recomputing never re-samples.

    >>> bucket("VIP", "customer", "c1") == bucket("VIP", "customer", "c1")
    True
    >>> 0 <= bucket("VIP", "customer", "c2") < 10_000
    True
    """
    key = "\x1f".join((tag, entity_type, entity_id)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % _BUCKETS


def sampled(percent: float, tag: str, entity_type: str, entity_id: str) -> bool:
    """Whether an entity's tag falls in a ``percent`` % sample.

    >>> sum(sampled(10, "VIP", "customer", f"c{i}") for i in range(10_000))  # about 1,000
    991
    """
    return bucket(tag, entity_type, entity_id) < round(percent * _BUCKETS / 100)


def gate(
    spec: ReviewSpec | None,
    tag: str,
    entity_type: str,
    entity_id: str,
    confidence: float | None,
) -> str:
    """The status of a proposed assignment: ``active`` (applied at once), ``pending``
    (waits in the review queue) or ``dropped`` (not stored at all).

    A missing confidence counts as certain (1.0), as rule tags are.

    >>> spec = ReviewSpec(mode="confidence", above=0.9, below=0.5)
    >>> [gate(spec, "churn", "customer", "c1", c) for c in (0.95, 0.9, 0.7, 0.5, 0.2)]
    ['active', 'active', 'pending', 'pending', 'dropped']
    >>> gate(ReviewSpec(mode="all"), "VIP", "customer", "c1", None), gate(None, "VIP", "c", "1", 0)
    ('pending', 'active')
    """
    if spec is None:
        return ACTIVE
    if spec.mode == "all":
        return PENDING
    if spec.mode == "sample":
        assert spec.percent is not None  # the model checks it
        return PENDING if sampled(spec.percent, tag, entity_type, entity_id) else ACTIVE
    assert spec.above is not None and spec.below is not None
    value = RULE_CONFIDENCE if confidence is None else confidence
    if value >= spec.above:
        return ACTIVE
    if value < spec.below:
        return DROPPED
    return PENDING


def outcome(
    spec: ReviewSpec | None,
    kind: str,
    tag: str,
    entity_type: str,
    entity_id: str,
    confidence: float | None,
    held: Held | None,
) -> tuple[str, str] | None:
    """What a change of ``kind`` (``assigned``, ``changed``, ``removed``, ``confirmed``,
    compared with ``held``, the stored assignment) becomes under the tag's review policy:
    the change, and the assignment's status after it. None: nothing to store (a dropped
    new proposal). One rule for the evaluators (`tagloop.engine.evaluator.rule_change`)
    and for the other producers (`gated`).

    >>> spec = ReviewSpec(mode="confidence", above=0.9, below=0.5)
    >>> outcome(spec, "assigned", "churn_risk", "customer", "c1", 0.7, None)
    ('assigned', 'pending')
    >>> outcome(spec, "changed", "churn_risk", "customer", "c1", 0.3, Held(0.8, 1, "model"))
    ('removed', 'active')
    """
    # A new or changed proposal goes through the tag's review policy; otherwise the
    # assignment keeps its status (pending stays pending, rejected stays off).
    if kind in ("assigned", "changed"):
        status = gate(spec, tag, entity_type, entity_id, confidence)
    else:
        status = held.status if held is not None else ACTIVE
    if status != DROPPED:
        return kind, status
    if held is None:
        return None
    # dropped: the entity loses what it held, as if the proposal had stopped
    return "removed", held.status


def gated(change: TagChange, spec: ReviewSpec | None, held: Held | None) -> TagChange | None:
    """A producer's raw change (``assigned``, ``changed``, ``removed``, ``confirmed``,
    compared with ``held``, the stored assignment) under the tag's review policy: what to
    pass to `tagloop.store.tags.apply`. None: nothing to store (a dropped new proposal).

    For producers that build their change first (model scoring); the evaluators decide
    before they build theirs (`outcome`).

    >>> spec = ReviewSpec(mode="confidence", above=0.9, below=0.5)
    >>> raw = TagChange("customer", "c1", "churn_risk", "assigned", True, None, 1,
    ...                 "model:churn@v3", {"contributions": {"tenure": -0.4}}, 0,
    ...                 confidence=0.7)
    >>> gated(raw, spec, None).status
    'pending'
    >>> gated(replace(raw, confidence=0.3), spec, None) is None
    True
    """
    review = spec.mode if spec is not None else None
    decided = outcome(
        spec,
        change.change,
        change.tag,
        change.entity_type,
        change.entity_id,
        change.confidence,
        held,
    )
    if decided is None:
        return None
    kind, status = decided
    if kind == change.change:
        return replace(change, status=status, review=review)
    # dropped, and the entity loses what it held (`outcome`)
    return replace(
        change,
        change=kind,
        value=None,
        previous=held.value if held is not None else None,
        evidence=None,
        status=status,
        review=review,
        confidence=None,
    )
