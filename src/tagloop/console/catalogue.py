"""The tag catalogue (``/tags``): the taxonomy tree, and a table of tags with kind, owner,
coverage, its trend (`tagloop.console.coverage`, for the shown page only) and last change,
searched, filtered, sorted and paged on the server.

The tree comes from the tags' ``category`` paths (``价值 > 等级``: dimension >
sub-category); the table lists the tags the principal may see (`tagloop.api.routers.tags`
decides that, as for ``GET /v1/tags``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from tagloop.api.permissions import Principal
from tagloop.api.routers.tags import _list as visible_tags
from tagloop.console import coverage
from tagloop.console.web import Access, guarded, page, render
from tagloop.runtime import Runtime
from tagloop.store.tables import tag_history

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
SORTS = ("name", "entity", "kind", "owner", "coverage", "count", "last_change")


@dataclass
class Node:
    """One level of the taxonomy: a dimension or a sub-category, with its tags."""

    name: str
    path: str
    children: dict[str, Node] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.tags) + sum(child.size for child in self.children.values())


def split_category(category: str | list[str] | None) -> list[str]:
    """``'价值 > 等级'`` -> ``['价值', '等级']`` (also ``/`` as a separator; a definition
    may already hold the list).

    >>> split_category("价值 > 等级")
    ['价值', '等级']
    >>> split_category(["价值", "等级"])
    ['价值', '等级']
    >>> split_category(None)
    []
    """
    if not category:
        return []
    if isinstance(category, list):
        return [str(part).strip() for part in category if str(part).strip()]
    text = category.replace("/", ">")
    return [part.strip() for part in text.split(">") if part.strip()]


def tree(items: list[dict[str, Any]], uncategorised: str) -> Node:
    root = Node("", "")
    for item in items:
        parts = split_category(item["category"]) or [uncategorised]
        node = root
        for depth, part in enumerate(parts):
            path = " > ".join(parts[: depth + 1])
            node = node.children.setdefault(part, Node(part, path))
        node.tags.append(item["name"])
    return root


def _matches(item: dict[str, Any], query: str) -> bool:
    haystack = " ".join(
        str(item.get(k) or "") for k in ("name", "description", "category", "owner", "entity")
    )
    return query.casefold() in haystack.casefold()


def catalogue(
    rt: Runtime, principal: Principal, params: dict[str, Any], uncategorised: str
) -> dict[str, Any]:
    """The page's data: the tree, the filtered, sorted page of tags, and the paging."""
    items = visible_tags(rt, principal)["items"]
    now = rt.clock()
    _, ends = coverage.day_ends(now, rt.workspace.project.timezone, coverage.DAYS)
    cache = coverage.cache_for(rt.db)  # the days before today, read once a day
    with rt.db.read() as conn:
        # Entities per type at each day's end (today's: now, for the coverage column).
        sizes = cache.entity_counts(conn, {i["entity"] for i in items}, ends)
        # One max per tag, read from the (tag, at) index.
        changed: dict[str, int] = dict(
            conn.execute(
                select(tag_history.c.tag, func.max(tag_history.c.at)).group_by(tag_history.c.tag)
            ).all()
        )
    for item in items:
        size = sizes[item["entity"]][-1]
        item["entities"] = size
        item["coverage"] = item["count"] / size if size else None
        item["last_change"] = changed.get(item["name"])
        item["path"] = " > ".join(split_category(item["category"])) or uncategorised
    root = tree(items, uncategorised)
    query = (params.get("q") or "").strip()
    shown = [i for i in items if not query or _matches(i, query)]
    if params.get("entity"):
        shown = [i for i in shown if i["entity"] == params["entity"]]
    if params.get("kind"):
        shown = [i for i in shown if i["kind"] == params["kind"]]
    if params.get("category"):
        prefix = params["category"]
        shown = [i for i in shown if i["path"] == prefix or i["path"].startswith(prefix + " > ")]
    sort = str(params["sort"]) if params.get("sort") in SORTS else "name"
    descending = params.get("order") == "desc"

    def key(item: dict[str, Any]) -> tuple[int, Any]:
        value = item.get(sort)
        # Missing values (no coverage, never changed) sort last whatever the order.
        return (1, 0) if value is None else (0, value)

    present = [i for i in shown if i.get(sort) is not None]
    missing = [i for i in shown if i.get(sort) is None]
    present.sort(key=key, reverse=descending)
    shown = present + missing
    pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
    number = min(max(1, int(params.get("page") or 1)), pages)
    listed = shown[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    _trends(rt, listed, now, sizes, cache)
    return {
        "tree": root,
        "items": listed,
        "total": len(shown),
        "page": number,
        "pages": pages,
        "sort": sort,
        "order": "desc" if descending else "asc",
        "entity_types": sorted({i["entity"] for i in items}),
        "kinds": sorted({i["kind"] for i in items}),
    }


def _trends(
    rt: Runtime,
    items: list[dict[str, Any]],
    now: int,
    sizes: dict[str, list[int]],
    cache: coverage.TrendCache,
) -> None:
    """Each shown tag's coverage trend (``trend``: the points, ``spark``: the SVG line)
    and its detail page's address (``href``). Only the page's tags, in one grouped query;
    the holders now and the entities per day are those of the table already."""
    with rt.db.read() as conn:
        trends = coverage.coverage_trend(
            conn,
            {i["name"]: i["entity"] for i in items},
            now=now,
            tz=rt.workspace.project.timezone,
            counts={i["name"]: int(i["count"]) for i in items},
            sizes=sizes,
            cache=cache,
        )
    for item in items:
        points = trends[item["name"]]
        item["trend"] = points
        item["spark"] = coverage.sparkline([p.coverage for p in points])
        item["href"] = "/tags/" + quote(item["name"], safe="")


@router.get("/tags")
async def tags_page(
    request: Request,
    q: str | None = Query(None, max_length=200),
    entity: str | None = Query(None, max_length=100),
    kind: str | None = Query(None, max_length=20),
    category: str | None = Query(None, max_length=500),
    sort: str | None = Query(None, max_length=20),
    order: str | None = Query(None, max_length=4),
    page_number: int = Query(1, alias="page", ge=1, le=100_000),
    access: Access = page("tags:read"),
) -> Response:
    """The catalogue; with ``HX-Request`` only the table (htmx updates it as one types)."""
    rt: Runtime = request.app.state.runtime
    params = {
        "q": q,
        "entity": entity,
        "kind": kind,
        "category": category,
        "sort": sort,
        "order": order,
        "page": page_number,
    }

    def build(principal: Principal) -> Response:
        from tagloop.console.web import locale

        data = catalogue(rt, principal, params, locale(request).t("tags.uncategorised"))
        template = "tags_table.html" if request.headers.get("hx-request") else "tags.html"
        return render(request, template, access, data=data, params=params)

    return await guarded(request, access, build)
