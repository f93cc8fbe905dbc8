"""The review queue over HTTP (docs/reviews.md): everyone with ``reviews:read`` sees the
queue, the pins and the error rates; deciding and pinning need ``reviews:write`` (the
``reviewer`` and ``admin`` roles). Every decision and pin is audited.

A principal restricted to entity types sees and decides only the items of those types;
any other answers exactly as if it did not exist. PII is masked as in profiles.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.permissions import Principal, check_tag, check_type
from tagloop.api.pii import Redactor, audit_read
from tagloop.api.schemas import ERRORS
from tagloop.audit import Actor
from tagloop.errors import Conflict, NotFound
from tagloop.review import decisions, pins, queue, rates
from tagloop.runtime import Runtime
from tagloop.store import reviews as store

router = APIRouter(tags=["reviews"])

REVIEW_ERRORS: dict[int | str, dict[str, Any]] = {
    **{code: ERRORS[code] for code in (400, 401, 403, 429, 503)},
    404: {**ERRORS[404], "description": "no such review item, pin, tag or entity"},
    409: {"model": ERRORS[400]["model"], "description": "the item is no longer pending"},
}
Status = Literal["pending", "approved", "rejected", "overridden", "superseded", "withdrawn", "all"]


def _id() -> Any:
    # a fresh parameter each time: FastAPI binds a shared one to the first name it serves
    return Path(ge=1, le=2**63 - 1)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=100, description="rejections: from /reasons")
    note: str | None = Field(None, max_length=2000)
    value: Any = Field(None, description="override: the value that applies instead")


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str | None = Field(None, max_length=255)
    entity_type: str | None = Field(None, max_length=100)
    older_than: str | None = Field(None, max_length=20, description="e.g. 2d")
    newer_than: str | None = Field(None, max_length=20)


class BulkDecision(Decision):
    action: Literal["approve", "reject", "override"]
    ids: list[int] | None = Field(None, max_length=10_000, description="these items ...")
    filter: Selection | None = Field(None, description="... or every pending item matching")
    limit: int = Field(decisions.MAX_BULK, ge=1, le=decisions.MAX_BULK)

    @model_validator(mode="after")
    def _one_selection(self) -> BulkDecision:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give 'ids' or 'filter' (an empty filter selects every item)")
        return self


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_type: str = Field(max_length=100)
    entity_id: str = Field(min_length=1, max_length=255)
    tag: str = Field(max_length=255)
    mode: Literal["include", "exclude"] = "include"
    value: Any = Field(None, description="include: the value (default true)")
    expires: str | None = Field(None, max_length=20, description="e.g. 30d (default: never)")
    reason: str | None = Field(None, max_length=2000)


class Page(BaseModel):
    items: list[dict[str, Any]]
    next: int | None = Field(description="pass as ?after= for the next page")
    total: int | None = None


def _types(principal: Principal) -> frozenset[str] | None:
    return principal.entity_types


def _masked(redactor: Redactor, body: dict[str, Any]) -> dict[str, Any]:
    entity_type = body["entity"]["type"]
    out = {
        **body,
        "value": redactor.tag_value(entity_type, body["tag"], body["value"]),
        "evidence": redactor.evidence(entity_type, body["evidence"]),
    }
    if out.get("attributes") is not None:
        shown = redactor.entity({"type": entity_type, "attributes": out["attributes"]})
        out["attributes"] = shown["attributes"]
    return out


def _list(
    rt: Runtime, principal: Principal, actor: Actor, options: dict[str, Any]
) -> dict[str, Any]:
    if options["tag"] is not None:
        check_tag(rt.workspace, principal, options["tag"])
    if options["entity_type"] is not None:
        check_type(rt.workspace, principal, options["entity_type"])
    after, limit = options.pop("after"), options.pop("limit")
    now = rt.clock()
    chosen = queue.filters(rt.workspace, now=now, entity_types=_types(principal), **options)
    body = queue.page(rt.db, chosen, now=now, after=after, limit=limit)
    redactor = Redactor(rt.workspace, reveal=principal.reads_pii)
    body["items"] = [_masked(redactor, item) for item in body["items"]]
    first = body["items"][0]["id"] if body["items"] else 0
    audit_read(rt.db, actor, redactor, "review", f"page from {first}")
    return body


@router.get("/v1/reviews", response_model=Page, responses=REVIEW_ERRORS, summary="The queue")
async def list_reviews(
    request: Request,
    status: Status | None = Query("pending", description="pending (default), a decision, or all"),
    tag: str | None = Query(None, max_length=255),
    entity_type: str | None = Query(None, max_length=100),
    entity_id: str | None = Query(None, max_length=255),
    older_than: str | None = Query(None, max_length=20, description="waiting longer, e.g. 2d"),
    newer_than: str | None = Query(None, max_length=20, description="waiting less, e.g. 1h"),
    after: int | None = Query(None, ge=0, le=2**63 - 1, description="next of a page"),
    limit: int = Query(50, ge=1, le=queue.MAX_PAGE),
    principal: Principal = require("reviews:read"),
) -> Any:
    """Review items, oldest first, each with its proposed value, confidence, policy and
    evidence (and a model's top feature contributions when its evidence has them)."""
    options = {
        "status": None if status == "all" else status,
        "tag": tag,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "older_than": older_than,
        "newer_than": newer_than,
        "after": after,
        "limit": limit,
    }
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_list, rt, principal, actor, options)


@router.get("/v1/reviews/reasons", responses=REVIEW_ERRORS, summary="Rejection reasons")
async def list_reasons(request: Request, principal: Principal = require("reviews:read")) -> Any:
    """The reasons a rejection may give (``reviews.reasons`` in tagloop.yaml)."""
    return {"reasons": runtime(request).workspace.project.reviews.reasons}


def _rates(rt: Runtime, principal: Principal, tag: str | None) -> dict[str, Any]:
    if tag is not None:
        check_tag(rt.workspace, principal, tag)
    visible = {t.name for t in rt.workspace.tags.values() if principal.can_see(t.entity)}
    return {"items": rates.error_rates(rt.db, rt.workspace.timezone, tag=tag, tags=visible)}


@router.get("/v1/reviews/error-rates", responses=REVIEW_ERRORS, summary="Tag error rates")
async def error_rates(
    request: Request,
    tag: str | None = Query(None, max_length=255),
    principal: Principal = require("reviews:read"),
) -> Any:
    """Per tag definition, overall and per ISO week (workspace time zone): reviewed,
    approved, rejected, overridden and ``error_rate`` = (rejected + overridden) / reviewed."""
    return await run_in_threadpool(_rates, runtime(request), principal, tag)


def _pins(rt: Runtime, principal: Principal, options: dict[str, Any]) -> dict[str, Any]:
    if options["tag"] is not None:
        check_tag(rt.workspace, principal, options["tag"])
    if options["entity_type"] is not None:
        check_type(rt.workspace, principal, options["entity_type"])
    return pins.listing(rt, entity_types=_types(principal), **options)


@router.get("/v1/reviews/pins", response_model=Page, responses=REVIEW_ERRORS, summary="Pins")
async def list_pins(
    request: Request,
    tag: str | None = Query(None, max_length=255),
    entity_type: str | None = Query(None, max_length=100),
    entity_id: str | None = Query(None, max_length=255),
    after: int | None = Query(None, ge=0, le=2**63 - 1),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = require("reviews:read"),
) -> Any:
    """Live pins (neither lifted nor expired), oldest first."""
    options = {
        "tag": tag,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "after": after,
        "limit": limit,
    }
    return await run_in_threadpool(_pins, runtime(request), principal, options)


def _pin(rt: Runtime, principal: Principal, actor: Actor, body: PinIn) -> dict[str, Any]:
    check_type(rt.workspace, principal, body.entity_type)
    check_tag(rt.workspace, principal, body.tag)
    return pins.place(
        rt,
        body.entity_type,
        body.entity_id,
        body.tag,
        mode=body.mode,
        actor=actor,
        value=body.value,
        expires=body.expires,
        reason=body.reason,
    )


@router.post(
    "/v1/reviews/pins", status_code=201, responses=REVIEW_ERRORS, summary="Pin an entity's tag"
)
async def create_pin(
    request: Request, body: PinIn, principal: Principal = require("reviews:write")
) -> Any:
    """A manual tag (``include``, with a value) or a manual exclusion (``exclude``) that
    recomputation leaves alone until lifted or expired. Audited (``review.pin``)."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_pin, rt, principal, actor, body)


def _unpin(rt: Runtime, principal: Principal, actor: Actor, pin_id: int) -> dict[str, Any]:
    with rt.db.read() as conn:
        row = store.pin(conn, pin_id)
    if row is not None and not principal.can_see(row.entity_type):
        raise NotFound(f"no live pin {pin_id}")
    return pins.lift(rt, pin_id, actor)


@router.delete("/v1/reviews/pins/{pin_id}", responses=REVIEW_ERRORS, summary="Lift a pin")
async def delete_pin(
    request: Request, pin_id: int = _id(), principal: Principal = require("reviews:write")
) -> Any:
    """Lift a pin: the rule's proposal applies again (through the tag's review policy).
    Audited (``review.unpin``)."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_unpin, rt, principal, actor, pin_id)


def _bulk(rt: Runtime, principal: Principal, actor: Actor, body: BulkDecision) -> dict[str, Any]:
    selection = body.filter or Selection()
    if selection.tag is not None:
        check_tag(rt.workspace, principal, selection.tag)
    if selection.entity_type is not None:
        check_type(rt.workspace, principal, selection.entity_type)
    chosen = queue.filters(
        rt.workspace,
        now=rt.clock(),
        tag=selection.tag,
        entity_type=selection.entity_type,
        older_than=selection.older_than,
        newer_than=selection.newer_than,
        ids=body.ids,
        entity_types=_types(principal),
    )
    outcome = decisions.decide(
        rt,
        chosen,
        body.action,
        actor,
        reason=body.reason,
        note=body.note,
        value=body.value,
        limit=body.limit,
    )
    return outcome.as_dict()


@router.post("/v1/reviews/decisions", responses=REVIEW_ERRORS, summary="Decide many items")
async def bulk_decision(
    request: Request, body: BulkDecision, principal: Principal = require("reviews:write")
) -> Any:
    """One decision for the pending items listed (``ids``) or matching ``filter`` (at most
    ``limit``). Items no longer pending are ``skipped``; items whose assignment has changed
    since (recomputation) are closed as ``stale``. Each decision is audited."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_bulk, rt, principal, actor, body)


def _show(rt: Runtime, principal: Principal, actor: Actor, item_id: int) -> dict[str, Any]:
    body = queue.show(rt.db, item_id, now=rt.clock(), entity_types=_types(principal))
    redactor = Redactor(rt.workspace, reveal=principal.reads_pii)
    body = _masked(redactor, body)
    audit_read(rt.db, actor, redactor, body["entity"]["type"], body["entity"]["id"])
    return body


@router.get("/v1/reviews/{item_id}", responses=REVIEW_ERRORS, summary="One review item")
async def get_review(
    request: Request, item_id: int = _id(), principal: Principal = require("reviews:read")
) -> Any:
    """An item with its entity's attributes (PII masked), the assignment as it stands and
    the entity's pins of the tag."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_show, rt, principal, actor, item_id)


def _one(
    rt: Runtime, principal: Principal, actor: Actor, item_id: int, action: str, body: Decision
) -> dict[str, Any]:
    chosen = queue.filters(
        rt.workspace, now=rt.clock(), status=None, ids=[item_id], entity_types=_types(principal)
    )
    outcome = decisions.decide(
        rt,
        chosen,
        action,
        actor,
        reason=body.reason,
        note=body.note,
        value=body.value,
        single=True,
    )
    if outcome.stale:
        raise Conflict(
            f"review item {item_id} is stale: its assignment changed since it was proposed "
            "(it is now withdrawn)"
        )
    return outcome.as_dict()


@router.post("/v1/reviews/{item_id}/approve", responses=REVIEW_ERRORS, summary="Approve")
async def approve(
    request: Request,
    body: Decision | None = None,
    item_id: int = _id(),
    principal: Principal = require("reviews:write"),
) -> Any:
    """The proposal applies. Audited (``review.approve``)."""
    rt, actor = runtime(request), request_actor(request)
    decision = body or Decision()
    return await run_in_threadpool(_one, rt, principal, actor, item_id, "approve", decision)


@router.post("/v1/reviews/{item_id}/reject", responses=REVIEW_ERRORS, summary="Reject")
async def reject(
    request: Request,
    body: Decision,
    item_id: int = _id(),
    principal: Principal = require("reviews:write"),
) -> Any:
    """The proposal stays off (until the rule proposes another value), with a ``reason``
    from ``/v1/reviews/reasons``. Audited (``review.reject``)."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_one, rt, principal, actor, item_id, "reject", body)


@router.post("/v1/reviews/{item_id}/override", responses=REVIEW_ERRORS, summary="Override")
async def override(
    request: Request,
    body: Decision,
    item_id: int = _id(),
    principal: Principal = require("reviews:write"),
) -> Any:
    """The reviewer's ``value`` applies instead, as a pin (it survives recomputation until
    lifted). Audited (``review.override``)."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_one, rt, principal, actor, item_id, "override", body)
