"""Invariants of the encoding, the holdout split and the retraining schedule."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tagloop.models.features import Encoder, TrainingSet
from tagloop.models.registry import Version, gate
from tagloop.models.schedule import due
from tagloop.models.training import split
from tagloop.timeutil import parse_time, zone
from tagloop.workspace.models import ModelSpec

ENCODINGS = ("number", "boolean", "category")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=3),
)


@given(st.lists(st.tuples(VALUES, VALUES, VALUES), min_size=1, max_size=40))
def test_encoding_keeps_numbers_and_codes_every_seen_category(rows: list[Any]) -> None:
    fitted = Encoder.fit(_Model(), rows)  # type: ignore[arg-type]  # it reads .features only
    matrix = fitted.matrix(rows)
    assert matrix.shape == (len(rows), 3)
    for row, encoded in zip(rows, matrix, strict=True):
        for value, number in zip(row[:2], encoded[:2], strict=True):
            if isinstance(value, bool | int | float):
                assert number == float(value)
            else:
                assert math.isnan(number)  # null and text are missing in a number column
        category = row[2]
        if category is None:
            assert math.isnan(encoded[2])
        else:
            codes = fitted.categories["c"]
            assert 0 <= encoded[2] < len(codes)
            assert Encoder.from_dict(fitted.as_dict()).matrix([row]).tolist()[0][2] == encoded[2]
    assert fitted.names == ["n", "b", "c"]


class _Feature:
    def __init__(self, name: str, encoding: str) -> None:
        self.name, self.encoding = name, encoding


class _Model:
    def __init__(self) -> None:
        self.features = [_Feature(n, e) for n, e in zip("nbc", ENCODINGS, strict=True)]


@settings(deadline=None)  # the first call imports scikit-learn
@given(
    st.lists(st.integers(0, 1), min_size=20, max_size=200).filter(
        lambda ys: 4 <= sum(ys) <= len(ys) - 4
    ),
    st.floats(0.1, 0.5),
)
def test_stratified_holdout_partitions_and_keeps_the_share(
    labels: list[int], fraction: float
) -> None:
    n = len(labels)
    examples = TrainingSet([str(i) for i in range(n)], [0] * n, [[0]] * n, labels)
    train, test = split(examples, "stratified", fraction, 1)
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(n))
    share = sum(labels) / n
    held = [labels[i] for i in test]
    assert abs(sum(held) / len(held) - share) <= 1 / len(held) + 1e-9


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 0.2))
def test_the_gate_is_monotonic(new: float, active: float, margin: float) -> None:
    refused = gate("auc", margin, new, active)
    assert (refused is None) == (new >= active - margin - 1e-12)
    assert (gate("brier", margin, new, active) is None) == (new <= active + margin + 1e-12)


def _version(kind: str, at: int) -> Version:
    return Version("m", 1, "c", "active", kind, None, {}, {}, "", "", 1, 0, 0, "", at, at)


def test_schedule_full_monthly_incremental_weekly() -> None:
    tz = zone("Asia/Shanghai")
    spec = ModelSpec(name="m", entity="c", features={"a": "x"}, label={"rule": "y"})
    model = type("D", (), {"spec": spec})()
    at = lambda text: parse_time(text, tz)  # noqa: E731
    assert due(model, [], at("2024-03-13T10:00"), tz) == "full"  # type: ignore[arg-type]
    trained = [_version("full", at("2024-03-01T04:00"))]
    # Wednesday the 13th: the Monday-03:00 run of the 11th is due, the monthly one is not
    assert due(model, trained, at("2024-03-13T10:00"), tz) == "incremental"  # type: ignore[arg-type]
    trained.append(_version("incremental", at("2024-03-11T03:30")))
    assert due(model, trained, at("2024-03-13T10:00"), tz) is None  # type: ignore[arg-type]
    assert due(model, trained, at("2024-04-01T03:01"), tz) == "full"  # type: ignore[arg-type]
