"""Editing a tag's rule over HTTP: check a draft as it is typed, preview it on real
entities, save it as the tag's next version (what the console's rule editor calls).

A draft is rule text (``rule``) or the visual builder's form (``builder``, see
`tagloop.rules.builder`); either way the answer carries both, so an editor can switch
between them. An invalid draft is not an HTTP error for ``/draft``: the answer says
``valid: false`` with the errors as spans of the text, for the editor to underline.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.permissions import Principal, check_tag
from tagloop.api.schemas import ERRORS, READ_ERRORS
from tagloop.audit import Actor
from tagloop.engine import drafts
from tagloop.rules import RuleError, parse
from tagloop.rules.builder import BuilderError, builder_text, to_builder
from tagloop.runtime import Runtime

router = APIRouter(tags=["tags"])
MAX_RULE = 20_000  # characters; rules are written by people

DRAFT_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    422: {**ERRORS[400], "description": "the tag's rule is not edited here (imported, SQL)"},
}
SAVE_ERRORS: dict[int | str, dict[str, Any]] = {
    **DRAFT_ERRORS,
    409: {**ERRORS[400], "description": "the tag or its file changed since the draft began"},
}


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str | None = Field(
        None, max_length=MAX_RULE, description="rule text; empty: no rule (tags with a value)"
    )
    builder: dict[str, Any] | None = Field(
        None, description="the visual builder's form, instead of `rule`"
    )

    @model_validator(mode="after")
    def _one(self) -> DraftIn:
        if self.rule is not None and self.builder is not None:
            raise ValueError("give the draft once: as 'rule' or as 'builder'")
        return self


class SaveIn(DraftIn):
    base_version: int | None = Field(
        None, ge=1, le=2**31, description="the version the draft began from (409 if it moved)"
    )


def _text(body: DraftIn) -> str | None:
    """The draft's rule text (a builder form is turned into text first)."""
    if body.builder is not None:
        return builder_text(body.builder)
    return body.rule


def _draft(rt: Runtime, principal: Principal, name: str, body: DraftIn) -> dict[str, Any]:
    check_tag(rt.workspace, principal, name)
    tag = drafts.editable(rt.workspace, name)
    try:
        text = _text(body)
    except BuilderError as exc:
        return {"valid": False, "rule": None, "builder": body.builder, "tokens": [],
                "errors": [{"message": exc.message, "path": exc.path}]}  # fmt: skip
    text = text or ""
    answer: dict[str, Any] = {"rule": text, "tokens": drafts.highlight(text), "errors": []}
    try:
        draft = drafts.check(rt.workspace, name, text)
    except RuleError as exc:
        try:  # the builder's form of a draft that parses but does not check
            builder: dict[str, Any] | None = to_builder(parse(text))
        except RuleError:
            builder = None
        return {
            **answer,
            "valid": False,
            "builder": builder,
            "errors": [drafts.error_view(text, exc)],
        }
    current = next(a for a in rt.active if a.name == name)
    return {
        **answer,
        "valid": True,
        "builder": draft.builder,
        "type": draft.definition.rule.type if draft.definition.rule else None,
        "changed": draft.definition.fingerprint != tag.fingerprint,
        "version": current.version,
    }


@router.post(
    "/v1/tags/{name}/draft", responses=DRAFT_ERRORS, summary="Check a draft of a tag's rule"
)
async def check_draft(
    request: Request,
    body: DraftIn,
    name: str = Path(max_length=255),
    principal: Principal = require("tags:read"),
) -> Any:
    """The draft as text and as the builder's form, its syntax-highlighting spans, and
    whether it checks: ``valid``, with ``errors`` (message, start, end, line, column) when
    not. Nothing is stored."""
    return await run_in_threadpool(_draft, runtime(request), principal, name, body)


def _checked(rt: Runtime, principal: Principal, name: str, body: DraftIn) -> drafts.Draft:
    check_tag(rt.workspace, principal, name)
    return drafts.check(rt.workspace, name, _text(body))


def _preview(
    rt: Runtime, principal: Principal, name: str, body: DraftIn, sample: int
) -> dict[str, Any]:
    return drafts.preview(rt, _checked(rt, principal, name, body), sample).as_dict()


@router.post(
    "/v1/tags/{name}/preview",
    responses=DRAFT_ERRORS,
    summary="Preview a draft on real entities",
)
async def preview_draft(
    request: Request,
    body: DraftIn,
    name: str = Path(max_length=255),
    sample: int = Query(
        drafts.SAMPLE, ge=1, le=drafts.EVERY, description="at most this many entities"
    ),
    principal: Principal = require("entities:read"),
) -> Any:
    """How many entities of the tag's type the draft gives the tag, and how many would gain
    it, lose it or hold another value than now (with example ids), evaluated in the
    database on all of them or, past ``sample`` (1,000), a random sample of that many
    (then with estimates for the whole type). Nothing is stored. An invalid draft is a
    400 naming the span at fault."""
    rt = runtime(request)
    return await run_in_threadpool(_preview, rt, principal, name, body, sample)


def _save(
    rt: Runtime, principal: Principal, actor: Actor, name: str, body: SaveIn
) -> dict[str, Any]:
    draft = _checked(rt, principal, name, body)
    return drafts.save(rt, draft, body.base_version, actor)


@router.put("/v1/tags/{name}/rule", responses=SAVE_ERRORS, summary="Save a tag's rule")
async def save_rule(
    request: Request,
    body: SaveIn,
    name: str = Path(max_length=255),
    principal: Principal = require("tags:write"),
) -> Any:
    """Write the rule into the tag's workspace file (only that rule changes in the file)
    and put it in force as the tag's next version, recomputed for every entity of its type
    before the answer; audited as ``tag.version``. ``changed: false`` when the rule means
    what the current version means (no new version)."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_save, rt, principal, actor, name, body)
