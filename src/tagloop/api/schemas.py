"""Response bodies of the API, as pydantic models (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    where: str
    message: str
    detail: str | None = None


class RejectionOut(BaseModel):
    index: int = Field(description="0-based position of the event in the request")
    field: str = Field(description="the field at fault, dotted ('entity.type'); empty if none")
    reason: str
    line: int | None = Field(None, description="1-based line, for NDJSON bodies")


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable error code")
    message: str
    problems: list[Problem] | None = None
    rejected: list[RejectionOut] | None = None


class IngestResult(BaseModel):
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events whose id was already stored")
    rejected: list[RejectionOut] = Field(description="events refused (only with partial=true)")
    ids: list[str | None] = Field(description="the id of each event, by request position")


class SegmentResult(BaseModel):
    success: bool


class TagAssignmentOut(BaseModel):
    tag: str
    value: Any
    status: str
    source: str = Field(description="what assigned it, e.g. 'rule:VIP@v3'")
    version: int
    confidence: float | None
    since: str
    updated_at: str
    expires_at: str | None = Field(description="imported values: when they stop holding")
    evidence: Any


class EventOut(BaseModel):
    id: str
    type: str
    entity: dict[str, str]
    related: dict[str, str] | None
    time: str
    received_at: str
    source: str
    properties: dict[str, Any]
    attributes: dict[str, Any] | None
    context: dict[str, Any] | None
    sent_entity_id: str | None = Field(
        None, description="the id the event was sent with, when it belongs to another now"
    )


class TagChangeOut(BaseModel):
    tag: str
    change: str
    value: Any
    previous: Any
    version: int
    source: str
    at: str


class EntitySummary(BaseModel):
    type: str
    id: str
    attributes: dict[str, Any]
    first_seen: str
    last_seen: str
    event_count: int
    created_at: str
    updated_at: str


class AliasOut(BaseModel):
    id: str = Field(description="another id of the entity")
    field: str = Field(description="the identifier field that linked it, alias or merge")
    event: str = Field(description="the event that linked it")
    since: str


class MergeOut(BaseModel):
    id: str = Field(description="the entity merged into this one")
    cause: dict[str, Any] = Field(description="event, source, field and value that linked them")
    at: str


class EntityOut(EntitySummary):
    tags: list[TagAssignmentOut]
    events: list[EventOut] = Field(description="most recent first")
    tag_history: list[TagChangeOut] = Field(description="most recent first")
    aliases: list[AliasOut] = Field(
        [], description="other ids that name this entity (a request by one of them finds it)"
    )
    merged: list[MergeOut] = Field([], description="entities merged into this one, oldest first")


class EntityPage(BaseModel):
    items: list[EntitySummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class TagOut(BaseModel):
    name: str
    entity: str
    kind: str = Field(description="rule (computed) or imported (uploaded values)")
    rule: str | None = Field(description="when the tag is held")
    value: str | None = Field(description="the value expression of a valued tag")
    multi: bool = Field(description="the value is a list")
    value_type: str = Field(description="the type of the tag's value")
    valid_for: str | None = Field(description="imported tags: how long an upload holds")
    action: dict[str, Any] | None = Field(description="what flows do when it holds (SQL rules)")
    category: list[str]
    owner: str
    description: str
    version: int
    count: int = Field(description="entities holding the tag now")
    defined_at: str = Field(description="file:line of the definition in the workspace")


class TagVersionOut(BaseModel):
    version: int
    fingerprint: str
    definition: dict[str, Any]
    workspace_revision: str
    created_at: str


class TagDetail(TagOut):
    versions: list[TagVersionOut]


class TagList(BaseModel):
    items: list[TagOut]


class ImportResult(BaseModel):
    read: int = Field(description="records in the upload")
    assigned: int
    changed: int
    unchanged: int
    removed: int = Field(description="entities that lost the tag (mode=replace)")
    propagated: int = Field(description="changes of the tags that read this one")
    rejected: int = Field(description="records refused; see samples")
    samples: list[str] = Field(description="the first rejected records, as 'body:line: why'")
    expires: str | None = Field(description="when the uploaded values stop holding")


class Explanation(BaseModel):
    entity: dict[str, str]
    tag: str
    kind: str
    rule: str | None
    value: str | None = Field(description="the value expression of a valued tag")
    version: int
    defined_at: str
    assignment: dict[str, Any] | None = Field(
        description="what is stored: value, since, source, expires_at and the evidence "
        "recorded when it was assigned; null if the entity does not hold the tag"
    )
    now: dict[str, Any] = Field(
        description="the rule evaluated now: at, held, value, and the values it looked at"
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "invalid input; nothing was stored"},
    401: {"model": ErrorBody, "description": "missing or invalid API key"},
    403: {"model": ErrorBody, "description": "the key lacks the permission"},
    404: {"model": ErrorBody, "description": "no such resource"},
    413: {"model": ErrorBody, "description": "body or batch too large"},
    415: {"model": ErrorBody, "description": "unsupported Content-Type or Content-Encoding"},
    429: {
        "model": ErrorBody,
        "description": "rate limit reached; retry after the Retry-After header's seconds",
    },
    503: {"model": ErrorBody, "description": "database unavailable; retry later"},
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: ERRORS[400],
    401: ERRORS[401],
    403: ERRORS[403],
    404: {**ERRORS[404], "description": "no such entity type, entity or tag"},
    429: ERRORS[429],
    503: ERRORS[503],
}
