"""Why an entity has its score: the features' contributions (LightGBM's TreeSHAP),
computed on demand for one entity, as a reviewer of a model tag needs them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagloop.errors import NotFound
from tagloop.models.scoring import active_artifact, definition, feature_values
from tagloop.store.models import scores_for

if TYPE_CHECKING:
    from tagloop.runtime import Runtime


@dataclass
class Explanation:
    """Why the active version scores an entity as it does: the score now, the stored
    score, and each feature's contribution (SHAP values, in log-odds: positive pushes
    the score up), largest first."""

    model: str
    version: int
    entity_id: str
    score: float
    stored: float | None
    base: float  # the log-odds of an entity with no feature known
    contributions: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def explain(rt: Runtime, name: str, entity_id: str, top: int = 100) -> Explanation:
    """The active version's score of one entity now, with the features' contributions
    (LightGBM's TreeSHAP): what a reviewer of a model tag looks at."""
    model = definition(rt.workspace, name)
    version, artifact = active_artifact(rt.db, model)
    found_ids, rows, _ = feature_values(rt.db, rt.workspace, model, rt.clock(), ids=[entity_id])
    if not found_ids:
        raise NotFound(f"no {model.entity} {entity_id!r}")
    matrix = artifact.encoder.matrix(rows)
    (score,) = artifact.booster.predict(matrix).tolist()
    (contrib,) = artifact.booster.predict(matrix, pred_contrib=True).tolist()
    with rt.db.read() as conn:
        stored = scores_for(rt.db, conn, [(model.entity, entity_id)], [name])
    parts = [
        {"feature": feature, "value": value, "contribution": round(c, 4)}
        for feature, value, c in zip(artifact.encoder.names, rows[0], contrib[:-1], strict=True)
    ]
    parts.sort(key=lambda p: -abs(p["contribution"]))
    return Explanation(
        name,
        version.version,
        entity_id,
        score,
        stored.get((model.entity, entity_id), {}).get(name),
        round(contrib[-1], 4),
        parts[:top],
    )
