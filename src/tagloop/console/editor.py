"""A tag's page (``/tags/{name}``): its definition, versions and coverage, and the rule
editor: the rule text with highlighting and errors as one types, a visual condition
builder that round-trips with the text, a preview on real entities, and saving as the
tag's next version.

The page works as a plain form (check, preview and save post it back; the answer is the
page again), and ``static/editor.js`` enhances it: live checking through
``POST /v1/tags/{name}/draft``, highlighting, and the builder. All of it goes through
`tagloop.engine.drafts`, as the API does; saving needs ``tags:write`` (editors, admins)
and is audited as ``tag.version`` by the signed-in user.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from tagloop.api.actor import request_actor
from tagloop.api.permissions import Principal
from tagloop.api.routers.tags import _detail
from tagloop.console import i18n
from tagloop.console.catalogue import split_category
from tagloop.console.coverage import cache_for, coverage_trend
from tagloop.console.web import Access, guarded, locale, page, render, submitted
from tagloop.engine import drafts
from tagloop.errors import Forbidden, TagloopError
from tagloop.rules import RuleError, parse
from tagloop.rules.builder import ARITY, to_builder
from tagloop.rules.printer import member
from tagloop.rules.printer import name as name_text
from tagloop.runtime import Runtime
from tagloop.store import entities as entity_store
from tagloop.workspace import Workspace

router = APIRouter(include_in_schema=False)
WINDOWS = ("30d", "90d", "365d")
NUMERIC = ("number", "integer")


def vocabulary(workspace: Workspace, name: str, entity_type: str) -> dict[str, Any]:
    """What the builder offers for the tag's entity type: attributes and aggregates (rule
    text with its value type, for the left-hand picker), the other tags, the operators."""
    entity = workspace.dictionary.get(entity_type)
    fields: dict[str, str] = {}
    events: dict[str, dict[str, str]] = {}
    if entity is not None:
        fields = {field: spec.type for field, spec in entity.spec.fields.items()}
        events = {
            event: {prop: spec.type for prop, spec in declared.properties.items()}
            for event, declared in entity.spec.events.items()
        }
    # As rule text: a name that is not an identifier (`Customer ID`) is back-quoted.
    terms: dict[str, str] = {name_text(field): kind for field, kind in sorted(fields.items())}
    terms["event_count"] = "integer"
    for raw, props in sorted(events.items()):
        event = name_text(raw)
        terms[f"count({event})"] = "integer"
        for window in WINDOWS:
            terms[f"count({event}, {window})"] = "integer"
        terms[f"days_since(last({event}.time))"] = "number"
        for raw_prop, kind in sorted(props.items()):
            prop = member(raw_prop)
            if kind in NUMERIC:
                for window in WINDOWS:
                    terms[f"sum({event}.{prop}, {window})"] = "number"
                terms[f"avg({event}.{prop}, 90d)"] = "number"
                terms[f"max({event}.{prop}, 365d)"] = "number"
    models = [m for m, t in workspace.model_entities.items() if t == entity_type]
    for model in sorted(models):
        terms[f"score('{model}')"] = "number"
    return {
        "terms": terms,
        "tags": sorted(t.name for t in workspace.tags_for(entity_type) if t.name != name),
        "operators": list(ARITY),
    }


def _labels(request: Request) -> dict[str, str]:
    """The builder's words in the page's language (the script draws the builder)."""
    loc = locale(request)
    keys = [k for k in i18n.MESSAGES[loc.lang] if k.startswith(("builder.", "op.", "editor."))]
    return {key: loc.t(key) for key in keys}


def _trend(rt: Runtime, name: str, entity_type: str) -> dict[str, list[Any]]:
    """The last 30 days' coverage (in %) and holders, for the chart."""
    with rt.db.read() as conn:
        points = coverage_trend(
            conn,
            {name: entity_type},
            now=rt.clock(),
            tz=rt.workspace.project.timezone,
            cache=cache_for(rt.db),  # the days the catalogue already replayed
        )[name]
    return {
        "days": [p.day.isoformat() for p in points],
        "coverage": [None if p.coverage is None else round(p.coverage * 100, 2) for p in points],
        "holders": [p.holders for p in points],
    }


def _context(rt: Runtime, principal: Principal, name: str, state: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows; ``state`` is the draft being worked on (if any)."""
    tag = _detail(rt, principal, name)
    with rt.db.read() as conn:
        size = entity_store.count(conn, tag["entity"])
    try:
        drafts.editable(rt.workspace, name)
        not_editable = None
    except TagloopError as exc:
        not_editable = exc.message
    text = state.get("text")
    if text is None:
        text = tag["rule"] or ""
    return {
        "tag": tag,
        "entities": size,
        "coverage": tag["count"] / size if size else None,
        "crumbs": split_category(tag["category"]),
        "not_editable": not_editable,
        "can_edit": not_editable is None and principal.can("tags:write"),
        "text": text,
        "segments": segments(text),
        "builder": builder_of(text),
        "vocabulary": vocabulary(rt.workspace, name, tag["entity"]),
        "base_version": state.get("base_version") or tag["version"],
        "trend": _trend(rt, name, tag["entity"]),
        **{k: state.get(k) for k in ("error", "preview", "checked", "saved", "problem")},
    }


@router.get("/tags/{name}")
async def tag_page(
    request: Request, name: str = Path(max_length=255), access: Access = page("tags:read")
) -> Response:
    """The tag with its rule editor."""
    rt: Runtime = request.app.state.runtime
    saved = request.query_params.get("saved")

    def build(principal: Principal) -> Response:
        context = _context(rt, principal, name, {"saved": saved})
        return render(request, "tag.html", access, labels=_labels(request), **context)

    return await guarded(request, access, build)


@router.post("/tags/{name}")
async def tag_draft(
    request: Request, name: str = Path(max_length=255), access: Access = page("tags:read")
) -> Response:
    """The editor's form: ``action`` check, preview (a sample of a large type),
    preview_all (every entity) or save (saving needs tags:write)."""
    fields = await submitted(request, access)
    if isinstance(fields, Response):
        return fields
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)
    action = fields.get("action", "check")
    text = fields.get("rule", "").replace("\r\n", "\n")
    base = fields.get("base_version", "")
    state: dict[str, Any] = {"text": text, "base_version": int(base) if base.isdigit() else None}

    def build(principal: Principal) -> Response:
        if action == "save" and not principal.can("tags:write"):
            raise Forbidden("saving a rule needs the permission tags:write (editor, admin)")
        status = 200
        try:
            draft = drafts.check(rt.workspace, name, text)
            state["checked"] = True
            if action in ("preview", "preview_all"):
                sample = drafts.EVERY if action == "preview_all" else drafts.SAMPLE
                state["preview"] = drafts.preview(rt, draft, sample).as_dict()
            elif action == "save":
                saved = drafts.save(rt, draft, state["base_version"], actor)
                target = f"/tags/{quote(name, safe='')}?saved={saved['version']}"
                return RedirectResponse(target, status_code=303)
        except RuleError as exc:
            state["error"] = drafts.error_view(text, exc)
            status = 400
        except TagloopError as exc:
            if action != "save":
                raise
            state["problem"] = exc.message  # a conflict, or a workspace that will not load
            status = exc.status
        context = _context(rt, principal, name, state)
        labels = _labels(request)
        return render(request, "tag.html", access, status=status, labels=labels, **context)

    return await guarded(request, access, build)


def segments(text: str) -> list[tuple[str, str]]:
    """``text`` cut into (kind, piece) for highlighting ("" for the text between tokens).

    >>> segments("a > 1 # x")
    [('name', 'a'), ('', ' '), ('op', '>'), ('', ' '), ('number', '1'), ('', ' '), \
('comment', '# x')]
    """
    out: list[tuple[str, str]] = []
    position = 0
    for span in drafts.highlight(text):
        if span["start"] > position:
            out.append(("", text[position : span["start"]]))
        out.append((span["kind"], text[span["start"] : span["end"]]))
        position = span["end"]
    if position < len(text):
        out.append(("", text[position:]))
    return out


def builder_of(text: str) -> dict[str, Any] | None:
    """The builder's form of the text, if it parses (the page embeds it for the script)."""
    try:
        return to_builder(parse(text)) if text.strip() else None
    except RuleError:
        return None
