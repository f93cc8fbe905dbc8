"""The review queue (``/reviews``): review items filtered and paged on the server, each with
its entity, proposed value, confidence and evidence; approve, reject with a reason,
override, and approve or reject several selected items at once.

Everything goes through the API's own functions (`tagloop.api.routers.reviews`), so PII is
masked, permissions are checked (``reviews:read`` to read, ``reviews:write`` to decide),
errors are raised and decisions are audited (``review.approve``, ``review.reject``,
``review.override``) exactly as for ``/v1/reviews``. A decision posted by a plain form
goes back to the queue with its filters and a status message; posted by htmx
(``HX-Request``), the answer is the item's row as it now stands, or the error as a
message in the page's status region (``HX-Retarget``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from tagloop.api.actor import request_actor
from tagloop.api.permissions import Principal
from tagloop.api.routers.reviews import BulkDecision, Decision, _bulk, _list, _one, _show
from tagloop.console.i18n import Locale
from tagloop.console.web import Access, error_page, form, guarded, locale, page, render
from tagloop.errors import NotFound, TagloopError, ValidationFailed
from tagloop.runtime import Runtime
from tagloop.store import reviews as review_store

router = APIRouter(include_in_schema=False)
# Items a page. Also what a bulk form can carry: the console's form parser takes at most
# 50 fields, and each selected item is one (``item-<id>``).
PAGE_SIZE = 25
TRAIL = 500  # cursors of earlier pages kept in the URL, for "previous"
STATUSES = ("pending", "approved", "rejected", "overridden", "superseded", "withdrawn", "all")
# The queue's filters, as named in the URL and in /v1/reviews, with their longest value.
FILTERS = {
    "status": 20,
    "tag": 255,
    "entity_type": 100,
    "entity_id": 255,
    "older_than": 20,
    "newer_than": 20,
}
ACTIONS = ("approve", "reject", "override")
MAX_ID = 2**63 - 1


@dataclass
class QueueQuery:
    """What the queue shows: the filters given, the page's cursor and the earlier ones."""

    filters: dict[str, str] = field(default_factory=dict)
    after: int | None = None
    trail: list[int] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.filters.get("status", "pending")

    def link(self, after: int | None = None, trail: list[int] | None = None) -> str:
        """The queue's URL with these filters, at the page after ``after``."""
        params = dict(self.filters)
        if after:
            params["after"] = str(after)
        if trail:
            params["trail"] = ",".join(str(t) for t in trail[-TRAIL:])
        return "/reviews" + (f"?{urlencode(params, safe=',')}" if params else "")

    def here(self) -> str:
        """This page's URL."""
        return self.link(self.after, self.trail)

    @property
    def query_string(self) -> str:
        """This page's URL parameters (what a decision form sends back as ``back``)."""
        return self.here().partition("?")[2]


def digits(text: str) -> bool:
    """Only 0-9 (``str.isdigit`` takes ``²`` too, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def _cursor(name: str, text: str) -> int:
    if not digits(text) or int(text) > MAX_ID:
        raise ValidationFailed(f"{name}: expected a page cursor (a whole number), got {text!r}")
    return int(text)


def parse_query(params: Mapping[str, str]) -> QueueQuery:
    """The queue's URL parameters, checked (a ValidationFailed names the bad one).

    >>> q = parse_query({"tag": "big", "status": "", "after": "40", "trail": "0,20"})
    >>> (q.filters, q.after, q.trail, q.status)
    ({'tag': 'big'}, 40, [0, 20], 'pending')
    >>> q.link(60, [*q.trail, 40])
    '/reviews?tag=big&after=60&trail=0,20,40'
    """
    query = QueueQuery()
    for name, longest in FILTERS.items():
        value = (params.get(name) or "").strip()
        if len(value) > longest:
            raise ValidationFailed(f"{name}: at most {longest} characters")
        if value:
            query.filters[name] = value
    if query.status not in STATUSES:
        raise ValidationFailed(f"unknown status {query.status!r}; statuses: {', '.join(STATUSES)}")
    after = (params.get("after") or "").strip()
    query.after = (_cursor("after", after) or None) if after else None  # 0: the start
    trail = (params.get("trail") or "").strip()
    if len(trail) > TRAIL * 20:
        raise ValidationFailed("trail: too long")
    query.trail = [_cursor("trail", part) for part in trail.split(",") if part][-TRAIL:]
    return query


def text(value: Any) -> str:
    """A value as the page shows it: text as it is, anything else as JSON.

    >>> text("上海"), text(True), text(12.5), text(None), text(["a", 1])
    ('上海', 'true', '12.5', 'null', '["a", 1]')
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def age(seconds: int, loc: Locale) -> str:
    """How long an item has waited: ``2d 3h``, ``5h 10m``, ``12m`` (``2天3小时`` ...)."""
    days, rest = divmod(max(0, seconds), 86_400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return loc.t("reviews.age_days", d=days, h=hours)
    if hours:
        return loc.t("reviews.age_hours", h=hours, m=minutes)
    return loc.t("reviews.age_minutes", m=minutes)


def shown(item: dict[str, Any], loc: Locale, value_type: str | None) -> dict[str, Any]:
    """An item of the API with what its row shows: the value as text, the rule's values,
    a model's contributions scaled for their bars, any other evidence as JSON."""
    evidence = item.get("evidence")
    values: list[tuple[str, str]] = []
    rule = version = other = None
    if isinstance(evidence, dict):
        if isinstance(evidence.get("values"), dict):
            values = [(str(k), text(v)) for k, v in evidence["values"].items()]
        rule = evidence.get("rule") if isinstance(evidence.get("rule"), str) else None
        version = evidence.get("version")
        rest = {
            k: v
            for k, v in evidence.items()
            if k not in ("values", "rule", "version", "contributions")
        }
        other = text(rest)[:1000] if rest else None
    elif evidence is not None:
        other = text(evidence)[:1000]
    contributions = [  # a producer's own list may hold anything: numbers only
        c
        for c in item.get("contributions") or []
        if isinstance(c, dict) and isinstance(c.get("contribution"), int | float)
    ]
    largest = max((abs(float(c["contribution"])) for c in contributions), default=0.0) or 1.0
    bars = [
        {
            "feature": str(c["feature"]),
            "contribution": float(c["contribution"]),
            "width": round(abs(float(c["contribution"])) / largest * 100, 1),
        }
        for c in contributions
    ]
    return {
        **item,
        "shown_value": text(item["value"]),
        "values": values,
        "rule": rule,
        "rule_version": version,
        "other_evidence": other,
        "bars": bars,
        "waited": age(int(item.get("age_seconds") or 0), loc),
        "value_type": value_type,
    }


def _context(rt: Runtime, principal: Principal) -> dict[str, Any]:
    """What the filter form and the decision forms offer this principal."""
    tags = sorted(
        name
        for name, definition in rt.workspace.tags.items()
        if definition.spec.review is not None and principal.can_see(definition.entity)
    )
    types = [name for name in rt.workspace.dictionary.types if principal.can_see(name)]
    return {
        "review_tags": tags,
        "entity_types": types,
        "statuses": STATUSES,
        "reasons": list(rt.workspace.project.reviews.reasons),
    }


def _value_type(rt: Runtime, tag: str) -> str | None:
    definition = rt.workspace.tags.get(tag)
    return definition.value_type if definition is not None else None


def _message(params: Mapping[str, str], loc: Locale) -> str | None:
    """The status line after a decision (``done``, ``n``, ``stale``, ``skipped``)."""
    done = params.get("done")
    if done not in ACTIONS:
        return None
    counts = {
        k: int(v) if digits(v := params.get(k, "0")) else 0 for k in ("n", "stale", "skipped")
    }
    parts = [loc.t(f"reviews.done_{done}", n=counts["n"])]
    if counts["stale"]:
        parts.append(loc.t("reviews.done_stale", n=counts["stale"]))
    if counts["skipped"]:
        parts.append(loc.t("reviews.done_skipped", n=counts["skipped"]))
    return "; ".join(parts)


@router.get("/reviews")
async def queue_page(request: Request, access: Access = page("reviews:read")) -> Response:
    """The queue: filters, a page of items with their evidence, decision buttons and
    checkboxes for those who may decide."""
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)
    loc = locale(request)

    def build(principal: Principal) -> Response:
        extra = _context(rt, principal)
        try:
            query = parse_query(request.query_params)
            status = query.status
            options: dict[str, Any] = {
                name: query.filters.get(name) for name in FILTERS if name != "status"
            }
            options.update(
                status=None if status == "all" else status, after=query.after, limit=PAGE_SIZE
            )
            body = _list(rt, principal, actor, options)
        except (ValidationFailed, NotFound) as exc:
            # Bad filters: the page again, with the message beside the form to correct them.
            query = QueueQuery({k: v for k, v in request.query_params.items() if k in FILTERS})
            return render(
                request,
                "reviews.html",
                access,
                status=exc.status,
                query=query,
                items=[],
                total=0,
                problem=exc.message,
                **extra,
            )
        items = [shown(i, loc, _value_type(rt, i["tag"])) for i in body["items"]]
        cursor = query.after or 0
        return render(
            request,
            "reviews.html",
            access,
            query=query,
            items=items,
            total=body["total"],
            first=len(query.trail) * PAGE_SIZE + 1,
            next_link=query.link(body["next"], [*query.trail, cursor]) if body["next"] else None,
            previous_link=query.link(query.trail[-1], query.trail[:-1]) if query.trail else None,
            message=_message(request.query_params, loc),
            problem=None,
            **extra,
        )

    return await guarded(request, access, build)


def _back(fields: Mapping[str, str]) -> QueueQuery:
    """The queue page a form came from (its ``back`` field), reduced to known parameters:
    a decision returns there, never anywhere else."""
    known = {
        k: v for k, v in parse_qsl(fields.get("back", "")) if k in (*FILTERS, "after", "trail")
    }
    try:
        return parse_query(known)
    except ValidationFailed:
        return QueueQuery()


def _done(query: QueueQuery, action: str, outcome: dict[str, Any], asked: int) -> str:
    counts = {
        "done": action,
        "n": str(outcome["decided"]),
        "stale": str(len(outcome["stale"])),
        # Items selected but no longer pending are not picked up by a decision at all.
        "skipped": str(max(0, asked - outcome["decided"] - len(outcome["stale"]))),
    }
    here = query.here()
    return here + ("&" if "?" in here else "?") + urlencode(counts)


def _decision(action: str, fields: Mapping[str, str]) -> Decision:
    """The API's body of a decision, from a form."""
    reason = fields.get("reason") or None
    note = fields.get("note") or None
    value = parse_value(fields["value"]) if action == "override" and fields.get("value") else None
    try:
        return Decision(reason=reason if action == "reject" else None, note=note, value=value)
    except ValidationError as exc:
        raise ValidationFailed(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"


def parse_value(raw: str) -> Any:
    """An override's value as typed: JSON (``true``, ``3``, ``["a"]``), or else the text
    itself, as ``tagloop reviews override --value`` reads it.

    >>> parse_value("false"), parse_value("3"), parse_value("A 级"), parse_value('"7"')
    (False, 3, 'A 级', '7')
    """
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _item_id(raw: str) -> int:
    if not digits(raw) or not 1 <= int(raw) <= MAX_ID:
        raise NotFound(f"no review item {raw}")
    return int(raw)


def _partial(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def _refused(request: Request, access: Access, error: TagloopError) -> Response:
    """An error: a page, or for htmx the message in the queue's status region."""
    if not _partial(request):
        return error_page(request, access, error)
    response = render(
        request, "reviews_status.html", access, status=error.status, problem=error.message
    )
    response.headers["HX-Retarget"] = "#queue-status"
    response.headers["HX-Reswap"] = "innerHTML"
    return response


async def _decide_one(request: Request, access: Access, raw_id: str, action: str) -> Response:
    if access.error is not None:
        return _refused(request, access, access.error)
    try:
        fields = await form(request, access)
    except TagloopError as exc:
        return _refused(request, access, exc)
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)
    loc = locale(request)

    def build(principal: Principal) -> Response:
        try:
            item_id = _item_id(raw_id)
            outcome = _one(rt, principal, actor, item_id, action, _decision(action, fields))
            if not _partial(request):
                return RedirectResponse(_done(_back(fields), action, outcome, 1), status_code=303)
            item = _show(rt, principal, actor, item_id)
        except TagloopError as exc:
            return _refused(request, access, exc)
        row = shown(item, loc, _value_type(rt, item["tag"]))
        message = loc.t(f"reviews.done_{action}", n=1)
        return render(
            request,
            "reviews_row.html",
            access,
            item=row,
            query=_back(fields),
            message=message,
            **_context(rt, principal),
        )

    return await guarded(request, access, build)


@router.post("/reviews/{item_id}/approve")
async def approve_item(
    request: Request, item_id: str = Path(max_length=20), access: Access = page("reviews:write")
) -> Response:
    """Approve an item, as ``POST /v1/reviews/{id}/approve``."""
    return await _decide_one(request, access, item_id, "approve")


@router.post("/reviews/{item_id}/reject")
async def reject_item(
    request: Request, item_id: str = Path(max_length=20), access: Access = page("reviews:write")
) -> Response:
    """Reject an item with the form's ``reason``, as ``POST /v1/reviews/{id}/reject``."""
    return await _decide_one(request, access, item_id, "reject")


@router.post("/reviews/{item_id}/override")
async def override_item(
    request: Request, item_id: str = Path(max_length=20), access: Access = page("reviews:write")
) -> Response:
    """Apply the form's ``value`` instead, as ``POST /v1/reviews/{id}/override``."""
    return await _decide_one(request, access, item_id, "override")


@router.post("/reviews/decisions")
async def decide_selected(request: Request, access: Access = page("reviews:write")) -> Response:
    """Approve or reject the items selected (``item-<id>`` fields), as
    ``POST /v1/reviews/decisions`` with ``ids``; then back to the queue."""
    if access.error is not None:
        return error_page(request, access, access.error)
    try:
        fields = await form(request, access)
    except TagloopError as exc:
        return error_page(request, access, exc)
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)

    def build(principal: Principal) -> Response:
        action = fields.get("action", "")
        if action not in ("approve", "reject"):
            raise ValidationFailed("choose approve or reject for the selected items")
        ids = sorted({_item_id(k[5:]) for k in fields if k.startswith("item-")})
        if not ids:
            raise ValidationFailed("select at least one item first")
        try:
            body = BulkDecision(
                action=action,
                ids=ids,
                reason=(fields.get("reason") or None) if action == "reject" else None,
            )
        except ValidationError as exc:
            raise ValidationFailed(_first_problem(exc)) from None
        outcome = _bulk(rt, principal, actor, body)
        return RedirectResponse(_done(_back(fields), action, outcome, len(ids)), status_code=303)

    return await guarded(request, access, build)


def pending_count(rt: Runtime, principal: Principal) -> int:
    """How many items wait for a reviewer among those the principal may see (the
    overview's figure): one count on the ``(status, tag, id)`` index."""
    with rt.db.read() as conn:
        return review_store.count(conn, review_store.Filters(entity_types=principal.entity_types))
