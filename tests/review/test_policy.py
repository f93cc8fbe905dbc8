"""Review policies: the thresholds partition confidences, samples are stable, and the
policy format refuses what it cannot mean."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tagloop.errors import WorkspaceError
from tagloop.review.policy import bucket, gate, sampled
from tagloop.workspace import load_workspace
from tagloop.workspace.models import ReviewSpec, TagSpec

unit = st.floats(0, 1, allow_nan=False)


@given(low=unit, high=unit, confidence=unit)
def test_thresholds_partition_confidences(low: float, high: float, confidence: float) -> None:
    below, above = min(low, high), max(low, high)
    spec = ReviewSpec(mode="confidence", above=above, below=below)
    status = gate(spec, "churn_risk", "customer", "c1", confidence)
    # exactly one outcome, and the one the thresholds say
    expected = "active" if confidence >= above else "dropped" if confidence < below else "pending"
    assert status == expected


@given(c1=unit, c2=unit)
def test_more_confidence_never_means_less_applied(c1: float, c2: float) -> None:
    spec = ReviewSpec(mode="confidence", above=0.8, below=0.4)
    rank = {"dropped": 0, "pending": 1, "active": 2}
    low, high = sorted((c1, c2))
    assert (
        rank[gate(spec, "t", "customer", "x", low)] <= rank[gate(spec, "t", "customer", "x", high)]
    )


def test_rule_tags_are_certain() -> None:
    spec = ReviewSpec(mode="confidence", above=0.99, below=0.5)
    assert gate(spec, "VIP", "customer", "c1", None) == "active"


@given(entity_id=st.text(min_size=1, max_size=30), percent=st.floats(0.01, 100))
def test_sampling_is_deterministic(entity_id: str, percent: float) -> None:
    spec = ReviewSpec(mode="sample", percent=percent)
    first = gate(spec, "VIP", "customer", entity_id, None)
    assert all(gate(spec, "VIP", "customer", entity_id, None) == first for _ in range(3))
    assert bucket("VIP", "customer", entity_id) == bucket("VIP", "customer", entity_id)


def test_samples_are_the_share_asked_and_nested() -> None:
    ids = [f"c{i}" for i in range(20_000)]
    five = {i for i in ids if sampled(5, "VIP", "customer", i)}
    ten = {i for i in ids if sampled(10, "VIP", "customer", i)}
    assert 800 <= len(five) <= 1200 and 1700 <= len(ten) <= 2300
    assert five <= ten  # raising the share keeps the entities already sampled
    assert sampled(100, "VIP", "customer", "anyone")


@pytest.mark.parametrize(
    ("review", "message"),
    [
        ({"mode": "confidence", "above": 0.9}, "needs 'above' and 'below'"),
        ({"mode": "confidence", "above": 0.4, "below": 0.6}, "must not exceed"),
        ({"mode": "sample"}, "needs 'percent'"),
        ({"mode": "all", "percent": 5}, "'percent' is for mode sample"),
        ({"mode": "sample", "percent": 0}, "greater than 0"),
        ({"mode": "confidence", "above": 1.5, "below": 0.1}, "less than or equal to 1"),
        ("sometimes", "Input should be 'all', 'confidence' or 'sample'"),
    ],
)
def test_bad_policies_are_refused(review: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TagSpec(name="t", entity="customer", rule="spend > 1", review=review)
    assert message in str(caught.value)


def test_shorthand() -> None:
    spec = TagSpec(name="t", entity="customer", rule="spend > 1", review="all")
    assert spec.review == ReviewSpec(mode="all")


def test_bad_policies_are_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "entities").mkdir()
    (tmp_path / "tags").mkdir()
    (tmp_path / "tagloop.yaml").write_text("name: x\nreviews: {reasons: []}\n")
    (tmp_path / "entities" / "c.yaml").write_text("name: customer\nfields: {spend: number}\n")
    (tmp_path / "tags" / "t.yaml").write_text(
        "tags:\n  - name: big\n    entity: customer\n    rule: spend > 1\n"
        "    review: {mode: confidence, above: 0.3, below: 0.6}\n"
    )
    with pytest.raises(WorkspaceError) as caught:
        load_workspace(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "tagloop.yaml:2:20: reviews.reasons: give at least one reason",
        "tags/t.yaml:5:13: review: 'below' (0.6) must not exceed 'above' (0.3)",
    ]
