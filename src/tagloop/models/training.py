"""Training: a holdout split, LightGBM on the training part, a logistic-regression
baseline beside it, and the metrics of both on the holdout.

The holdout is stratified (the label's share kept in both parts, at random with a fixed
seed) or time-based (the examples at the latest cutoffs). Metrics: AUC, accuracy and
precision/recall at the model's threshold, Brier score and log loss, and reliability
bins (calibration: the mean predicted probability against the observed rate in ten
equal-width bins). Feature importance is LightGBM's total gain per feature, as shares.
An incremental version continues the active version's trees on the newer examples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tagloop.errors import ValidationFailed
from tagloop.models.features import Encoder, TrainingSet
from tagloop.models.spec import ModelDefinition
from tagloop.timeutil import time_text

ARTIFACT_FORMAT = "tagloop-lightgbm-1"
Matrix = np.ndarray[Any, np.dtype[np.float64]]


@dataclass
class Trained:
    """A fitted version: its artifact (what scoring loads) and everything measured."""

    artifact: bytes
    metrics: dict[str, Any]
    rows: int
    data_from: int
    data_until: int


def split(examples: TrainingSet, kind: str, fraction: float, seed: int) -> tuple[Any, Any]:
    """Indices of the training and holdout examples.

    >>> ts = TrainingSet(list("abcdefghij"), [1] * 5 + [2] * 5, [[0]] * 10, [0, 1] * 5)
    >>> train, test = split(ts, "time", 0.5, 0)
    >>> sorted(test.tolist())
    [5, 6, 7, 8, 9]
    """
    n = len(examples)
    labels = np.asarray(examples.labels)
    if kind == "stratified":
        from sklearn.model_selection import train_test_split

        index = np.arange(n)
        try:
            train, test = train_test_split(
                index, test_size=fraction, random_state=seed, stratify=labels
            )
        except ValueError as exc:
            raise ValidationFailed(f"cannot split {n} examples for a holdout: {exc}") from None
        return np.sort(train), np.sort(test)
    cutoffs = np.asarray(examples.cutoffs)
    distinct = sorted(set(examples.cutoffs), reverse=True)
    held: list[int] = []
    for cutoff in distinct:
        held.append(cutoff)
        if np.isin(cutoffs, held).sum() >= fraction * n:
            break
    if len(held) == len(distinct):
        raise ValidationFailed(
            "a time-based holdout needs examples at more cutoffs than the holdout takes: "
            f"{len(distinct)} cutoff(s) for a fraction of {fraction}"
        )
    mask = np.isin(cutoffs, held)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def fit(
    model: ModelDefinition,
    examples: TrainingSet,
    *,
    base: bytes | None = None,
) -> Trained:
    """Train a version of ``model`` on ``examples`` (``base``: continue that artifact's
    trees, with its encoder, on these examples: an incremental version)."""
    import lightgbm as lgb

    spec = model.spec
    if len(examples) < 20:
        raise ValidationFailed(
            f"model {model.name!r}: {len(examples)} examples are too few to train"
        )
    labels = np.asarray(examples.labels, dtype=np.int64)
    if labels.min() == labels.max():
        raise ValidationFailed(
            f"model {model.name!r}: every example has the label {bool(labels[0])}: nothing to learn"
        )
    previous = load_artifact(base) if base is not None else None
    encoder = previous.encoder if previous is not None else Encoder.fit(model, examples.rows)
    matrix = encoder.matrix(examples.rows)
    holdout = spec.holdout
    train, test = split(examples, holdout.kind, holdout.fraction, holdout.seed)
    knobs = spec.training
    params: dict[str, Any] = {
        "objective": "binary",
        "n_estimators": knobs.incremental_estimators if previous else knobs.n_estimators,
        "learning_rate": knobs.learning_rate,
        "num_leaves": knobs.num_leaves,
        "min_child_samples": knobs.min_child_samples,
        "subsample": knobs.subsample,
        "subsample_freq": 1,
        "colsample_bytree": knobs.colsample_bytree,
        "reg_lambda": knobs.reg_lambda,
        "random_state": holdout.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }
    classifier = lgb.LGBMClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightGBM's notes on categorical columns
        classifier.fit(
            matrix[train],
            labels[train],
            categorical_feature=encoder.category_columns or "auto",
            init_model=previous.booster if previous is not None else None,
        )
    booster = classifier.booster_
    predicted = booster.predict(matrix[test])
    threshold = spec.threshold
    metrics = measure(labels[test], predicted, threshold)
    metrics["baseline"] = {
        "model": "logistic regression (one-hot categories, scaled numbers)",
        **_baseline(encoder, matrix, labels, train, test, threshold),
    }
    gains = booster.feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    # A list, not a mapping: PostgreSQL's JSONB does not keep the order of keys.
    metrics["feature_importance"] = sorted(
        (
            {"feature": name, "share": round(float(g) / total, 4)}
            for name, g in zip(encoder.names, gains, strict=True)
        ),
        key=lambda item: -item["share"],
    )
    cutoffs = examples.cutoffs
    data_from, data_until = min(cutoffs), max(cutoffs) + model.horizon
    metrics["rows"] = {
        "train": len(train),
        "holdout": len(test),
        "positive_share": round(float(labels.mean()), 4),
    }
    metrics["data_window"] = {
        "from": time_text(data_from),
        "until": time_text(data_until),
        "cutoffs": len(set(cutoffs)),
    }
    metrics["holdout"] = {"kind": holdout.kind, "fraction": holdout.fraction}
    metrics["trees"] = booster.num_trees()
    artifact = {
        "format": ARTIFACT_FORMAT,
        "booster": booster.model_to_string(),
        "encoder": encoder.as_dict(),
        "threshold": threshold,
    }
    return Trained(orjson.dumps(artifact), metrics, len(examples), data_from, data_until)


def measure(labels: Any, predicted: Any, threshold: float) -> dict[str, Any]:
    """Holdout metrics of predicted probabilities against 0/1 labels.

    >>> m = measure(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), 0.5)
    >>> m["auc"], m["accuracy"], m["precision"], m["recall"]
    (0.75, 0.5, 0.5, 0.5)
    """
    from sklearn import metrics as sk

    labels = np.asarray(labels)
    predicted = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, 1.0)
    decided = predicted >= threshold
    both = len(set(labels.tolist())) == 2
    bins = []
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, 9)
    for k in range(10):
        inside = which == k
        if inside.any():
            bins.append(
                {
                    "from": round(float(edges[k]), 1),
                    "to": round(float(edges[k + 1]), 1),
                    "count": int(inside.sum()),
                    "predicted": round(float(predicted[inside].mean()), 4),
                    "observed": round(float(labels[inside].mean()), 4),
                }
            )
    return {
        "auc": round(float(sk.roc_auc_score(labels, predicted)), 4) if both else None,
        "accuracy": round(float(sk.accuracy_score(labels, decided)), 4),
        "threshold": threshold,
        "precision": round(float(sk.precision_score(labels, decided, zero_division=0)), 4),
        "recall": round(float(sk.recall_score(labels, decided, zero_division=0)), 4),
        "brier": round(float(sk.brier_score_loss(labels, predicted)), 4),
        "log_loss": round(float(sk.log_loss(labels, predicted, labels=[0, 1])), 4),
        "calibration": bins,
    }


def _baseline(
    encoder: Encoder, matrix: Matrix, labels: Any, train: Any, test: Any, threshold: float
) -> dict[str, Any]:
    """Logistic regression on the same split: the yardstick the boosted trees must beat."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categories = encoder.category_columns
    numbers = [i for i in range(len(encoder.names)) if i not in categories]
    parts: list[tuple[str, Any, list[int]]] = []
    if numbers:
        parts.append(
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                numbers,
            )
        )
    if categories:
        parts.append(
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categories,
            )
        )
    pipeline = make_pipeline(ColumnTransformer(parts), LogisticRegression(max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(matrix[train], labels[train])
        predicted = pipeline.predict_proba(matrix[test])[:, 1]
    found = measure(labels[test], predicted, threshold)
    found.pop("calibration")
    return found


@dataclass
class Artifact:
    booster: Any  # lightgbm.Booster
    encoder: Encoder
    threshold: float

    def predict(self, rows: list[list[Any]]) -> Any:
        if not rows:
            return np.zeros(0)
        return self.booster.predict(self.encoder.matrix(rows))


def load_artifact(data: bytes) -> Artifact:
    """A stored artifact, ready to score. Artifacts are JSON holding LightGBM's own text
    format: loading one runs no code from the database (a pickle would)."""
    import lightgbm as lgb

    body = orjson.loads(data)
    if body.get("format") != ARTIFACT_FORMAT:
        raise ValidationFailed(f"unknown model artifact format {body.get('format')!r}")
    booster = lgb.Booster(model_str=body["booster"])
    return Artifact(booster, Encoder.from_dict(body["encoder"]), float(body["threshold"]))
