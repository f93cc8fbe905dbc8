"""``kind: rest`` (also ``type: http``): paged JSON from an HTTP API.

Each run walks the endpoint's pages (`tagloop.sources.rest_paging`: page number, offset,
cursor or ``Link`` header) and yields one `Page` per HTTP page, with the checkpoint
reached after it: the position of the next request while the walk goes on, so that a
crash resumes after the last committed page; the newest value of the ``incremental``
field once the walk is complete, sent as a query parameter (``updated_since=...``) next
run, so that a run reads only what changed.

Requests that fail for a while (429, 5xx, a refused connection, a timeout) are retried
with exponential backoff, waiting what ``Retry-After`` asks (up to ``retry.max_wait``);
401 and 403 fail at once, with the source and its auth named. A record's identity is its
``key`` fields plus its incremental timestamp, so the same record read twice (an API
whose ``since`` is inclusive, a page re-read after a crash) is stored once, and a record
changed later (a new timestamp) is a new event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tagloop.sources.base import Page, PullSource, Record, SourceConfig
from tagloop.sources.rest_http import Auth, Http, RestSourceError, Retry
from tagloop.sources.rest_paging import Pagination, dig, first_state, next_state, request_for
from tagloop.sources.secrets import resolve_secrets

__all__ = ["Auth", "RestConfig", "RestSource", "RestSourceError", "Retry"]

# Where APIs usually put a page's records, when the source does not say (``records:``).
_RECORD_KEYS = ("data", "items", "results", "records")


class Incremental(BaseModel):
    """``incremental:``: read only records newer than the newest ``field`` value read,
    sent as the query parameter ``param`` (e.g. ``updated_since``) on the next run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str  # the records' timestamp field (a dotted path)
    param: str  # the query parameter its newest value is sent as next run
    start: str | int | float | None = None  # sent on the first run, if given


class RestConfig(SourceConfig):
    """The keys of a rest source file; ``auth: api_key`` is the short form of
    ``auth: {type: api_key}``.

    >>> config = RestConfig.model_validate(
    ...     {"endpoint": "https://api.crm.com/v1/customers", "auth": "api_key", "key": "id"}
    ... )
    >>> config.auth.header, config.key, config.pagination.style
    ('X-API-Key', ['id'], 'none')
    """

    endpoint: str
    auth: Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)  # every request
    records: str | None = None  # where a page's body holds its records (``data.items``)
    # The fields identifying a record (default: its whole content).
    key: list[str] = Field(default_factory=list)
    pagination: Pagination = Pagination()
    incremental: Incremental | None = None
    retry: Retry = Retry()
    timeout: float = Field(30.0, gt=0)  # seconds per request

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_short_form(cls, value: Any) -> Any:
        if isinstance(value, str):
            return None if value.strip().lower() == "none" else {"type": value.strip()}
        return value

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.match(r"^(https?://|\$\{env:)", value.strip()):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.strip()


class RestSource(PullSource):
    """Reads a rest source's endpoint page by page (the runner calls `pull` in a thread;
    the client is synchronous)."""

    kind = "rest"
    config_model = RestConfig

    def __init__(self, name: str, config: RestConfig) -> None:
        super().__init__(name, config)
        where = f"source {name}"
        self.endpoint = resolve_secrets(config.endpoint, f"{where}: endpoint")
        headers = {
            k: resolve_secrets(v, f"{where}: headers.{k}") for k, v in config.headers.items()
        }
        self.params = {
            k: resolve_secrets(v, f"{where}: params.{k}") if isinstance(v, str) else v
            for k, v in config.params.items()
        }
        self.http = Http(name, config.auth, headers, config.retry, config.timeout)

    def close(self) -> None:
        self.http.close()

    # -- the walk ------------------------------------------------------------------------
    def pull(self, checkpoints: Mapping[str, Any]) -> Iterator[Page]:
        """One `Page` per HTTP page, each with the checkpoint after it (stream ``""``):

        - ``{"next": <position>, "since": ..., "max": ..., "page": 3}`` while the walk goes
          on (the request after page 3, the ``since`` sent, the newest timestamp so far);
        - ``{"since": <newest timestamp>}`` (``{}`` without ``incremental``) once it is over.
        """
        config: RestConfig = self.config
        paging, incremental = config.pagination, config.incremental
        position: dict[str, Any] = checkpoints.get("") or {}
        since = position.get("since", incremental.start if incremental else None)
        newest = position.get("max", since)
        # A walk interrupted after a committed page goes on with the request after it,
        # with the `since` it started with (the newest value read so far may be ahead of
        # records on later pages, when the API does not sort by it).
        state = position["next"] if "next" in position else first_state(paging)
        number = int(position.get("page", 0))
        seen = {orjson.dumps(state)}
        while True:
            number += 1
            url, params = request_for(paging, self.endpoint, state)
            if not (paging.style == "link" and state is not None):  # a next link has them
                params = {**self.params, **params}
                if incremental is not None and since is not None:
                    params[incremental.param] = since
            response, body = self.http.get_json(url, params, number)
            items = self._items(body, number)
            records = [self._record(item, number, i) for i, item in enumerate(items, 1)]
            if incremental is not None:
                for item in items:
                    value = dig(item, incremental.field)
                    if value is not None and (newest is None or later(value, newest)):
                        newest = value
            following = next_state(
                paging, state, str(response.request.url), body, len(items), response.links
            )
            if following is None:
                yield Page(records, {"": {"since": newest} if incremental else {}})
                return
            if orjson.dumps(following) in seen:
                raise RestSourceError(
                    f"source {self.name}, page {number}: the API points back to a page already "
                    f"read ({self.http.hide(str(following))}); stopping rather than loop"
                )
            seen.add(orjson.dumps(following))
            checkpoint = {"next": following, "since": since, "max": newest, "page": number}
            yield Page(records, {"": checkpoint})
            state = following

    def _record(self, item: Any, page: int, index: int) -> Record:
        config: RestConfig = self.config
        where = f"page {page}, item {index}"
        raw = orjson.dumps(item).decode()
        digest = hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if not isinstance(item, dict):
            return Record(None, raw, where, f"#{digest[:32]}", error="not a JSON object")
        if not config.key:
            return Record(item, raw, where, f"#{digest[:32]}")
        ids = [dig(item, field) for field in config.key]
        missing = [
            field for field, value in zip(config.key, ids, strict=True) if value in (None, "")
        ]
        if missing:
            error = f"key field {missing[0]!r} is missing"
            return Record(None, raw, where, f"#{digest[:32]}", error=error)
        where += ", " + ", ".join(f"{f}={v}" for f, v in zip(config.key, ids, strict=True))
        identity = "\0".join(str(value) for value in ids)
        if config.incremental is not None:
            identity += "\0" + str(dig(item, config.incremental.field))
        return Record(item, raw, where, identity)

    def _items(self, body: Any, page: int) -> list[Any]:
        path: str | None = self.config.records
        if path is not None:
            found = dig(body, path)
            found = [] if found is None else found  # an empty last page may say null
        elif isinstance(body, dict):
            found = next((body[k] for k in _RECORD_KEYS if isinstance(body.get(k), list)), None)
        else:
            found = body
        if not isinstance(found, list):
            what = f"at {path!r}" if path else f"(the body is a {type(body).__name__})"
            raise RestSourceError(
                f"source {self.name}, page {page}: no list of records {what}; say where the "
                "records are with 'records:' (e.g. records: data.items)"
            )
        return found


def later(a: Any, b: Any) -> bool:
    """Whether timestamp ``a`` is after ``b``: numbers (epoch) as numbers, ISO 8601 texts
    as instants (naive ones in UTC, whatever their offsets), other texts as texts.

    >>> later("2024-03-05T09:00:00+08:00", "2024-03-05T02:00:00Z"), later(1700, 1699.5)
    (False, True)
    """
    ka, kb = _instant(a), _instant(b)
    if ka is not None and kb is not None:
        return ka > kb
    return str(a) > str(b)


def _instant(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None
