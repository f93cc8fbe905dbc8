"""Models over HTTP: the workspace's models with their versions (``models:read``), and
training, promotion, rollback and scoring (``models:write``: editors and admins).

A model on an entity type the principal may not see answers exactly as an unknown one.
Training and scoring run in the request (seconds for tens of thousands of entities); the
answer is the stored version or the scoring report.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.permissions import Principal
from tagloop.api.schemas import ERRORS
from tagloop.audit import Actor
from tagloop.errors import NotFound
from tagloop.models import registry, scoring
from tagloop.models.explain import explain
from tagloop.models.registry import view
from tagloop.models.schedule import train
from tagloop.models.scoring import report_view
from tagloop.models.spec import ModelDefinition
from tagloop.names import suggest
from tagloop.runtime import Runtime

router = APIRouter(tags=["models"])

MODEL_ERRORS: dict[int | str, dict[str, Any]] = {
    **{code: ERRORS[code] for code in (400, 401, 403, 429, 503)},
    404: {**ERRORS[404], "description": "no such model or version"},
}
Name = Path(min_length=1, max_length=255, description="the model's name")


class VersionOut(BaseModel):
    model: str
    version: int
    entity: str
    status: str = Field(description="active, candidate or retired")
    kind: str = Field(description="full or incremental")
    base_version: int | None
    auc: float | None = Field(description="holdout AUC")
    accuracy: float | None = Field(description="holdout accuracy at the model's threshold")
    baseline_auc: float | None = Field(description="the logistic-regression baseline's AUC")
    rows: int = Field(description="training examples (training and holdout parts)")
    data_from: str
    data_until: str
    reason: str = Field(description="why it was promoted or kept as a candidate")
    features_digest: str
    workspace_revision: str
    trained_at: str
    promoted_at: str | None
    metrics: dict[str, Any] | None = Field(
        None, description="every holdout metric, calibration bins, feature importance"
    )
    definition: dict[str, Any] | None = Field(
        None, description="the model file it was trained with"
    )


class ModelOut(BaseModel):
    name: str
    entity: str
    description: str
    features: dict[str, str]
    label: str
    active: VersionOut | None
    versions: list[VersionOut] = Field(description="newest first")


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incremental: bool = Field(False, description="continue the active version on newer examples")


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1)


class ContributionOut(BaseModel):
    feature: str
    value: Any = Field(description="the feature's value now")
    contribution: float = Field(description="SHAP value in log-odds: > 0 raises the score")


class ExplanationOut(BaseModel):
    model: str
    version: int
    entity_id: str
    score: float = Field(description="the active version's score now")
    stored: float | None = Field(description="the stored score (what score('name') reads)")
    base: float = Field(description="log-odds before any feature is known")
    contributions: list[ContributionOut] = Field(description="largest first")


class ScoreOut(BaseModel):
    model: str
    version: int
    entities: int
    evaluator: str = Field(
        description="profile (closures over profile rows), sql (the batch query) or stream "
        "(entity by entity over the stored events)"
    )
    reason: str | None
    seconds: dict[str, float]
    per_second: int
    tags: dict[str, int] = Field(description="model tags recomputed: holders after")


def _model(rt: Runtime, principal: Principal, name: str) -> ModelDefinition:
    found = rt.workspace.models.get(name)
    if found is None or not principal.can_see(found.entity):
        visible = [m.name for m in rt.workspace.models.values() if principal.can_see(m.entity)]
        raise NotFound(f"unknown model {name!r}" + suggest(name, visible))
    return found


def _describe(rt: Runtime, model: ModelDefinition) -> dict[str, Any]:
    with rt.db.read() as conn:
        versions = registry.versions(conn, model.name)
    active = next((v for v in versions if v.status == "active"), None)
    return {
        "name": model.name,
        "entity": model.entity,
        "description": model.spec.description,
        "features": dict(model.spec.features),
        "label": model.spec.label.rule,
        "active": view(active) if active is not None else None,
        "versions": [view(v) for v in versions],
    }


def _list(rt: Runtime, principal: Principal) -> list[dict[str, Any]]:
    return [
        _describe(rt, m)
        for m in sorted(rt.workspace.models.values(), key=lambda m: m.name)
        if principal.can_see(m.entity)
    ]


def _version(rt: Runtime, principal: Principal, name: str, version: int) -> dict[str, Any]:
    _model(rt, principal, name)
    with rt.db.read() as conn:
        return view(registry.get(conn, name, version), full=True)


def _train(
    rt: Runtime, principal: Principal, actor: Actor, name: str, body: TrainIn
) -> dict[str, Any]:
    model = _model(rt, principal, name)
    kind = "incremental" if body.incremental else "full"
    return view(train(rt.db, rt.workspace, model, rt.clock(), kind, actor), full=True)


def _promote(
    rt: Runtime, principal: Principal, actor: Actor, name: str, body: PromoteIn
) -> dict[str, Any]:
    _model(rt, principal, name)
    return view(registry.promote(rt.db, name, body.version, rt.clock(), actor=actor))


def _rollback(rt: Runtime, principal: Principal, actor: Actor, name: str) -> dict[str, Any]:
    _model(rt, principal, name)
    return view(registry.rollback(rt.db, name, rt.clock(), actor=actor))


def _explain(rt: Runtime, principal: Principal, name: str, entity_id: str) -> dict[str, Any]:
    _model(rt, principal, name)
    return explain(rt, name, entity_id).as_dict()


def _score(rt: Runtime, principal: Principal, name: str) -> dict[str, Any]:
    _model(rt, principal, name)
    return report_view(scoring.score(rt, name))


@router.get(
    "/v1/models", response_model=list[ModelOut], responses=MODEL_ERRORS, summary="List models"
)
async def list_models(request: Request, principal: Principal = require("models:read")) -> Any:
    """The workspace's models, each with its active version and every version trained."""
    return await run_in_threadpool(_list, runtime(request), principal)


@router.get(
    "/v1/models/{name}", response_model=ModelOut, responses=MODEL_ERRORS, summary="Get a model"
)
async def get_model(
    request: Request, name: str = Name, principal: Principal = require("models:read")
) -> Any:
    """A model's definition (features, label), active version and versions."""
    rt = runtime(request)
    return await run_in_threadpool(lambda: _describe(rt, _model(rt, principal, name)))


@router.get(
    "/v1/models/{name}/versions/{version}",
    response_model=VersionOut,
    responses=MODEL_ERRORS,
    summary="Get a model version",
)
async def get_version(
    request: Request,
    name: str = Name,
    version: int = Path(ge=1, le=2**31 - 1),
    principal: Principal = require("models:read"),
) -> Any:
    """One version with every metric: AUC, accuracy, precision/recall at the threshold,
    Brier score, calibration bins, feature importance, the baseline's figures."""
    return await run_in_threadpool(_version, runtime(request), principal, name, version)


@router.post(
    "/v1/models/{name}/train",
    response_model=VersionOut,
    responses=MODEL_ERRORS,
    summary="Train a model version",
)
async def train_model(
    request: Request,
    body: TrainIn,
    name: str = Name,
    principal: Principal = require("models:write"),
) -> Any:
    """Train a version on the point-in-time training set and store it; it becomes active
    if the promotion gate lets it (else a candidate, with the reason). Audited."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_train, rt, principal, actor, name, body)


@router.post(
    "/v1/models/{name}/promote",
    response_model=VersionOut,
    responses=MODEL_ERRORS,
    summary="Promote a model version",
)
async def promote_model(
    request: Request,
    body: PromoteIn,
    name: str = Name,
    principal: Principal = require("models:write"),
) -> Any:
    """Make a version active by hand. Audited."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_promote, rt, principal, actor, name, body)


@router.post(
    "/v1/models/{name}/rollback",
    response_model=VersionOut,
    responses=MODEL_ERRORS,
    summary="Roll a model back",
)
async def rollback_model(
    request: Request, name: str = Name, principal: Principal = require("models:write")
) -> Any:
    """Return to the version active before the current one. Audited."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_rollback, rt, principal, actor, name)


@router.post(
    "/v1/models/{name}/score",
    response_model=ScoreOut,
    responses=MODEL_ERRORS,
    summary="Score entities with a model",
)
async def score_model(
    request: Request, name: str = Name, principal: Principal = require("models:write")
) -> Any:
    """Score every entity of the model's type with the active version; the tags reading
    ``score('name')`` are recomputed, each with the score as its confidence."""
    return await run_in_threadpool(_score, runtime(request), principal, name)


@router.get(
    "/v1/models/{name}/scores/{entity_id}",
    response_model=ExplanationOut,
    responses=MODEL_ERRORS,
    summary="Explain an entity's score",
)
async def explain_score(
    request: Request,
    name: str = Name,
    entity_id: str = Path(min_length=1, max_length=255),
    principal: Principal = require("models:read"),
) -> Any:
    """The active version's score of one entity now, the stored score, and the features'
    contributions (SHAP values), largest first: the evidence of a model tag."""
    return await run_in_threadpool(_explain, runtime(request), principal, name, entity_id)
