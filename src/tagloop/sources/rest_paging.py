"""How a ``kind: rest`` source walks the pages of an API: page, offset, cursor or link.

A paginator is a small state machine. Its state is the position of the *next* request
(a page number, an offset, a cursor, a URL); it is JSON, so that it goes into the
checkpoint committed with each page and a run interrupted after page 3 resumes with the
request for page 4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, model_validator

Style = Literal["none", "page", "offset", "cursor", "link"]

# The query parameter each style sets, when the source does not name it.
_DEFAULT_PARAM = {"page": "page", "offset": "offset", "cursor": "cursor"}


class Pagination(BaseModel):
    """``pagination:`` of a rest source; a bare style name is its short form.

    >>> Pagination.model_validate("link").style
    'link'
    >>> Pagination(style="page", size=50).param, Pagination(style="offset").size_param
    ('page', 'limit')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Style = "none"
    param: str | None = None  # the page number, offset or cursor parameter
    size_param: str | None = None  # the page size parameter (per_page, limit ...)
    size: int | None = None  # records asked for per page
    start: int = 0  # the first page number (default 1) or offset (default 0)
    # cursor: where the body holds the next cursor (``meta.next_cursor``); link: where it
    # holds the next page's URL, instead of the ``Link`` header.
    next: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, value: Any) -> Any:
        value = {"style": value} if isinstance(value, str) else value
        if not isinstance(value, dict):
            return value
        style = value.get("style", "none")
        defaults: dict[str, Any] = {"start": 1 if style == "page" else 0}
        if style in _DEFAULT_PARAM:
            defaults["param"] = _DEFAULT_PARAM[style]
        if style == "offset":
            defaults["size_param"] = "limit"
        return {**defaults, **value}

    @model_validator(mode="after")
    def _consistent(self) -> Pagination:
        if self.style == "cursor" and not self.next:
            raise ValueError(
                "cursor pagination needs 'next': where the body holds the next cursor "
                "(e.g. next: meta.next_cursor)"
            )
        if self.size is not None and self.size < 1:
            raise ValueError("size: must be at least 1")
        return self


def first_state(p: Pagination) -> Any:
    """Where a run starts: the first page or offset; no cursor or URL yet (None)."""
    return p.start if p.style in ("page", "offset") else None


def request_for(p: Pagination, endpoint: str, state: Any) -> tuple[str, dict[str, Any]]:
    """The URL and the pagination parameters of the request at ``state``.

    >>> request_for(Pagination(style="page", size_param="per_page", size=20), "http://x/c", 3)
    ('http://x/c', {'per_page': 20, 'page': 3})
    >>> request_for(Pagination(style="link"), "http://x/c", "http://x/c?after=9")
    ('http://x/c?after=9', {})
    """
    params: dict[str, Any] = {}
    if p.style == "link" and state is not None:
        # The next link is complete: it already carries every parameter of the query.
        return str(state), params
    if p.size_param and p.size:
        params[p.size_param] = p.size
    if p.param and state is not None and p.style != "link":
        params[p.param] = state
    return endpoint, params


def next_state(
    p: Pagination,
    state: Any,
    url: str,
    body: Any,
    count: int,
    links: Mapping[str | None, dict[str, str]],
) -> Any:
    """The state of the request after the one at ``state`` (which was sent to ``url`` and
    answered ``body`` with ``count`` records and the ``Link`` header ``links``), or None
    when it was the last page.

    >>> page = Pagination(style="page", size=2)
    >>> next_state(page, 1, "u", [], 2, {}), next_state(page, 2, "u", [], 1, {})
    (2, None)
    >>> link = {"next": {"url": "/c?page=2", "rel": "next"}}
    >>> next_state(Pagination(style="link"), None, "http://x/c?page=1", [], 5, link)
    'http://x/c?page=2'
    >>> cursor = Pagination(style="cursor", next="meta.next")
    >>> next_state(cursor, None, "u", {"meta": {"next": "abc"}}, 5, {})
    'abc'
    """
    if p.style == "none":
        return None
    if p.style in ("page", "offset"):
        # An empty page ends the walk; so does a short one, when the page size is known.
        if count == 0 or (p.size is not None and count < p.size):
            return None
        return int(state) + (1 if p.style == "page" else count)
    if p.style == "cursor":
        found = dig(body, p.next or "")
        return found if found not in (None, "", False) and count > 0 else None
    target = dig(body, p.next) if p.next else links.get("next", {}).get("url")
    # Relative links are relative to the page they came from (RFC 8288).
    return urljoin(url, str(target)) if target else None


def dig(value: Any, path: str) -> Any:
    """The value at a dotted path of a JSON body (None when absent).

    >>> dig({"meta": {"next": "x"}}, "meta.next"), dig({"a": 1}, "a.b"), dig([1], "")
    ('x', None, [1])
    """
    for part in path.split(".") if path else []:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
