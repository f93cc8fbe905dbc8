"""REST sources against a real HTTP server on 127.0.0.1, started by the tests: every
pagination style, every auth style, retries honouring Retry-After, incremental runs,
dead letters, a run resumed after a failure mid-walk, and the seed configuration."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagloop.errors import ValidationFailed, WorkspaceError
from tagloop.runtime import Runtime
from tagloop.sources.base import Page
from tagloop.sources.rest import Auth, RestConfig, RestSource, RestSourceError
from tagloop.sources.runner import SourceRunner
from tagloop.store import sources as source_store
from tests.conftest import write_workspace

STYLES: dict[str, dict[str, Any]] = {
    "page": {"style": "page", "size_param": "per_page"},
    "offset": {"style": "offset"},
    "cursor": {"style": "cursor", "next": "meta.next_cursor", "size_param": "limit"},
    "link": {"style": "link", "size_param": "limit"},
}


def customer(i: int, at: str = "2024-03-05T08:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"C-{i:04d}",
        "name": f"客户{i}",
        "amount": f"{i},000.50",
        "updated_at": at,
        **extra,
    }


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class CrmApi:
    """A small customer API: deterministic pages in four pagination styles, optional
    authentication, and scripted failures answered before the normal pages."""

    base: str = ""
    customers: list[dict[str, Any]] = field(default_factory=list)
    auth: tuple[str, str] | None = None  # a header that must have this value
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    fail_from_request: int | None = None  # answer 503 to this request and every later one
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.customers, self.auth, self.failures, self.requests = [], None, [], []
            self.fail_from_request = None

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append(Seen(url.path, query, headers, time.monotonic()))
            if self.auth is not None and headers.get(self.auth[0].lower()) != self.auth[1]:
                return 401, {}, b'{"error": "invalid credentials"}'
            if self.failures:
                status, extra = self.failures.pop(0)
                return status, extra, b'{"error": "busy"}'
            if self.fail_from_request is not None and len(self.requests) >= self.fail_from_request:
                return 503, {}, b"down for maintenance"
            since = query.get("updated_since")
            # Inclusive, as many APIs are: the newest record of a run is read again next run.
            rows = [c for c in self.customers if since is None or c["updated_at"] >= since]
        size = int(query.get("per_page") or query.get("limit") or 10)
        style = url.path.strip("/")
        if style == "page":
            page = int(query.get("page", 1))
            return 200, {}, orjson.dumps({"data": rows[(page - 1) * size : page * size]})
        if style == "offset":
            start = int(query.get("offset", 0))
            return 200, {}, orjson.dumps({"items": rows[start : start + size], "total": len(rows)})
        if style == "cursor":
            start = int(base64.b64decode(query["cursor"])) if "cursor" in query else 0
            more = start + size < len(rows)
            cursor = base64.b64encode(str(start + size).encode()).decode() if more else None
            body = {"data": rows[start : start + size], "meta": {"next_cursor": cursor}}
            return 200, {}, orjson.dumps(body)
        if style == "link":
            start = int(query.get("after", 0))
            links = {}
            if start + size < len(rows):
                since_part = f"&updated_since={since}" if since else ""
                # A relative link, as RFC 8288 allows: it is relative to this page.
                links["Link"] = f'</link?after={start + size}&limit={size}{since_part}>; rel="next"'
            return 200, links, orjson.dumps(rows[start : start + size])
        if style == "loop":
            return 200, {"Link": '</loop>; rel="next"'}, b"[]"
        if style == "html":
            return 200, {"Content-Type": "text/html"}, b"<html>maintenance</html>"
        return 404, {}, b'{"error": "no such endpoint"}'


@pytest.fixture(scope="module")
def server() -> Iterator[CrmApi]:
    api = CrmApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = api.answer(self.path, headers)
            self.send_response(status)
            self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield api
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def api(server: CrmApi) -> CrmApi:
    server.reset()
    return server


def source(api: CrmApi, path: str = "page", **options: Any) -> RestSource:
    config = RestConfig.model_validate({"endpoint": f"{api.base}/{path}", "key": "id", **options})
    return RestSource("crm", config)


def walk(src: RestSource, checkpoints: dict[str, Any] | None = None) -> list[Page]:
    try:
        return list(src.pull(checkpoints or {}))
    finally:
        src.close()


def ids(pages: list[Page]) -> list[str]:
    return [str((r.values or {}).get("id")) for page in pages for r in page.records]


# -- pagination ------------------------------------------------------------------------------
@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_pagination_style_reads_every_record_once_page_by_page(
    api: CrmApi, style: str
) -> None:
    api.customers = [customer(i) for i in range(1, 24)]
    pages = walk(source(api, style, pagination={**STYLES[style], "size": 5}))
    assert ids(pages) == [f"C-{i:04d}" for i in range(1, 24)]
    assert [len(p.records) for p in pages] == [5, 5, 5, 5, 3]
    assert pages[2].records[1].location == "page 3, item 2, id=C-0012"
    # Every page but the last says where the walk goes on; the last one that it is over.
    assert all("next" in p.checkpoints[""] for p in pages[:-1])
    assert pages[-1].checkpoints == {"": {}}
    assert api.requests[0].query.get(STYLES[style].get("size_param", "limit")) == "5"


def test_records_without_pagination_and_with_a_records_path(api: CrmApi) -> None:
    api.customers = [customer(i) for i in range(3)]
    pages = walk(source(api, "cursor", records="data"))
    assert len(pages) == 1 and ids(pages) == ["C-0000", "C-0001", "C-0002"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    style=st.sampled_from(sorted(STYLES)),
    count=st.integers(0, 40),
    size=st.integers(1, 12),
    crash_after=st.integers(0, 8),
)
def test_any_page_size_and_any_resume_point_reads_every_record_exactly_once(
    server: CrmApi, style: str, count: int, size: int, crash_after: int
) -> None:
    server.reset()
    server.customers = [customer(i) for i in range(count)]
    options = {"pagination": {**STYLES[style], "size": size}}
    first = walk(source(server, style, **options))
    assert sorted(ids(first)) == sorted(c["id"] for c in server.customers)
    assert len(set(ids(first))) == count
    # Stopped after any committed page but the last, the next run reads exactly the rest.
    # (After the last, a walk without `incremental` starts over; its keys deduplicate it.)
    done = first[: min(crash_after, len(first) - 1)]
    if done:
        rest = walk(source(server, style, **options), done[-1].checkpoints)
        assert ids(done) + ids(rest) == ids(first)
        numbers = [r.location.split(",")[0] for p in done + rest for r in p.records]
        assert numbers == [r.location.split(",")[0] for p in first for r in p.records]


def test_a_link_pointing_back_is_an_error_not_an_endless_run(api: CrmApi) -> None:
    with pytest.raises(RestSourceError, match=r"source crm, page 2: .*page already read"):
        walk(source(api, "loop", pagination="link"))


def test_an_answer_that_is_not_json_is_a_clear_error(api: CrmApi) -> None:
    with pytest.raises(RestSourceError) as caught:
        walk(source(api, "html"))
    assert "source crm, page 1: GET " in str(caught.value)
    assert "the answer is not JSON (text/html): '<html>maintenance</html>'" in str(caught.value)


# -- auth ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("auth", "header", "expected"),
    [
        ("api_key", "X-API-Key", "k-default"),
        (
            {"type": "api_key", "key": "${env:CRM_KEY}", "header": "X-Crm-Token"},
            "X-Crm-Token",
            "k-1",
        ),
        ({"type": "bearer", "token": "${env:CRM_KEY}"}, "Authorization", "Bearer k-1"),
        (
            {"type": "basic", "username": "etl", "password": "${env:CRM_KEY}"},
            "Authorization",
            "Basic " + base64.b64encode(b"etl:k-1").decode(),
        ),
    ],
)
def test_each_auth_style_sends_its_credentials(
    api: CrmApi, monkeypatch: pytest.MonkeyPatch, auth: Any, header: str, expected: str
) -> None:
    monkeypatch.setenv("TAGLOOP_SOURCE_CRM_API_KEY", "k-default")
    monkeypatch.setenv("CRM_KEY", "k-1")
    api.customers = [customer(1)]
    api.auth = (header, expected)
    assert ids(walk(source(api, auth=auth))) == ["C-0001"]


def test_an_api_key_as_query_parameter_is_hidden_from_errors(
    api: CrmApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_KEY", "k-secret-1")
    api.auth = ("X-API-Key", "something else")
    with pytest.raises(RestSourceError) as caught:
        walk(source(api, auth={"type": "api_key", "key": "${env:CRM_KEY}", "param": "apikey"}))
    assert api.requests[0].query["apikey"] == "k-secret-1"
    assert "apikey=***" in str(caught.value) and "k-secret-1" not in str(caught.value)


def test_refused_credentials_fail_at_once_naming_the_source(
    tmp_path: Path, api: CrmApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGLOOP_SOURCE_CRM_API_KEY", "wrong-key")
    api.auth = ("X-API-Key", "right-key")
    rt = Runtime.open(workspace(tmp_path, crm_source(api, "auth: api_key")))
    with pytest.raises(RestSourceError) as caught:
        SourceRunner(rt, rt.workspace.sources["crm"]).run_once()
    message = str(caught.value)
    assert message.startswith(f"source crm, page 1: GET {api.base}/page?per_page=10")
    assert message.endswith(
        "HTTP 401 Unauthorized: the API refused the credentials (auth: api_key, X-API-Key)"
    )
    assert "wrong-key" not in message
    assert len(api.requests) == 1  # not retried: asking again will not help


def test_a_missing_secret_names_the_environment_variable(api: CrmApi) -> None:
    with pytest.raises(ValidationFailed) as caught:
        source(api, auth="bearer")
    assert str(caught.value) == (
        "source crm: auth.token: environment variable TAGLOOP_SOURCE_CRM_TOKEN is not set"
    )


# -- retries ---------------------------------------------------------------------------------
def test_429_waits_what_retry_after_asks_then_goes_on(api: CrmApi) -> None:
    api.customers = [customer(i) for i in range(3)]
    api.failures = [(429, {"Retry-After": "1"}), (502, {})]
    pages = walk(source(api, retry={"attempts": 3, "initial": 0.01, "max_wait": 5}))
    assert ids(pages) == ["C-0000", "C-0001", "C-0002"]
    first, second, third = (seen.at for seen in api.requests)
    assert second - first >= 0.95  # Retry-After: 1 honoured
    assert third - second < 0.5  # a 502 without Retry-After: the short backoff


def test_503_until_the_retries_are_exhausted_is_a_clear_error(api: CrmApi) -> None:
    # Retry-After asks for an hour; max_wait keeps a run from stalling that long.
    api.failures = [(503, {"Retry-After": "3600"})] * 3
    started = time.monotonic()
    with pytest.raises(RestSourceError) as caught:
        walk(source(api, retry={"attempts": 3, "initial": 0.01, "max_wait": 0.05}))
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"source crm, page 1: GET {api.base}/page: HTTP 503 Service Unavailable; "
        "still failing after 3 attempts"
    )
    assert len(api.requests) == 3


def test_a_server_that_is_down_is_a_clear_error(api: CrmApi) -> None:
    config = RestConfig.model_validate(
        {"endpoint": "http://127.0.0.1:1/v1", "retry": {"attempts": 2, "initial": 0}}
    )
    with pytest.raises(RestSourceError, match=r"GET http://127.0.0.1:1/v1: ConnectError"):
        walk(RestSource("crm", config))


# -- end to end, into a workspace ---------------------------------------------------------------
def crm_source(api: CrmApi, extra: str = "", path: str = "page") -> str:
    return f"""
        name: crm
        type: rest
        endpoint: {api.base}/{path}
        key: id
        pagination: {{style: page, size_param: per_page, size: 10}}
        retry: {{attempts: 2, initial: 0.01, max_wait: 0.05}}
        {extra}
        mapping:
          type: order
          entity_type: customer
          entity_id: id
          time: updated_at
          fields:
            amount: number
          properties: {{amount: amount}}
    """


def workspace(tmp_path: Path, text: str) -> Path:
    return write_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path}/store.db", extra={"sources/crm.yaml": text}
    )


def stored(rt: Runtime) -> dict[str, float]:
    with rt.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT entity_id, properties FROM events WHERE source = 'crm'")
        ).all()
    return {e: (p if isinstance(p, dict) else orjson.loads(p))["amount"] for e, p in rows}


def at(minute: int) -> str:
    return f"2024-03-05T08:{minute:02d}:00Z"


def test_incremental_runs_read_only_what_changed(tmp_path: Path, api: CrmApi) -> None:
    # Not sorted by the timestamp: the newest record is on the first page.
    api.customers = [customer(i, at(59 if i == 2 else i)) for i in range(1, 26)]
    extra = "incremental: {field: updated_at, param: updated_since}"
    rt = Runtime.open(workspace(tmp_path, crm_source(api, extra)))
    runner = SourceRunner(rt, rt.workspace.sources["crm"])
    first = runner.run_once()
    assert (first.read, first.written, first.rejected) == (25, 25, 0)
    assert source_store.checkpoints(rt.db, "crm") == {"": {"since": at(59)}}
    assert all("updated_since" not in seen.query for seen in api.requests)
    # Two customers added, one changed: the next run asks only for what is newer.
    api.customers[4] = customer(5, "2024-03-05T09:05:00Z", amount="7")
    api.customers += [customer(26, "2024-03-05T09:01:00Z"), customer(27, "2024-03-05T09:02:00Z")]
    api.requests.clear()
    second = runner.run_once()
    assert {seen.query.get("updated_since") for seen in api.requests} == {at(59)}
    # The API's `since` is inclusive: the newest record of the last run comes again, and
    # its deterministic id makes it a duplicate, not a second event.
    assert (second.read, second.written, second.duplicates) == (4, 3, 1)
    third = runner.run_once()
    assert (third.read, third.written, third.duplicates) == (1, 0, 1)
    amounts = stored(rt)
    assert len(amounts) == 27 and amounts["C-0005"] in (5000.5, 7)
    with rt.db.read() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    assert total == 28  # C-0005's change is an event of its own


def test_records_that_do_not_map_go_to_dead_letters_and_the_others_are_stored(
    tmp_path: Path, api: CrmApi
) -> None:
    api.customers = [customer(i) for i in range(1, 25)]
    api.customers[12]["amount"] = "12,3x"  # page 2, item 3
    del api.customers[20]["id"]  # page 3, item 1
    rt = Runtime.open(workspace(tmp_path, crm_source(api)))
    tally = SourceRunner(rt, rt.workspace.sources["crm"]).run_once()
    assert (tally.read, tally.written, tally.rejected) == (24, 22, 2)
    assert tally.samples == [
        "source crm, page 2, item 3, id=C-0013, field amount: '12,3x' is not a number",
        "source crm, page 3, item 1, key field 'id' is missing",
    ]
    assert len(stored(rt)) == 22 and stored(rt)["C-0001"] == 1000.5
    with rt.db.read() as conn:
        letters = conn.execute(
            sa.text("SELECT location, payload FROM dead_letters ORDER BY seq")
        ).all()
    assert [loc for loc, _ in letters] == ["page 2, item 3, id=C-0013", "page 3, item 1"]
    assert orjson.loads(letters[0][1])["amount"] == "12,3x"


def test_a_run_that_fails_mid_walk_resumes_after_the_last_committed_page(
    tmp_path: Path, api: CrmApi
) -> None:
    api.customers = [customer(i) for i in range(1, 46)]
    api.fail_from_request = 3  # pages 1 and 2 are answered, then the server goes down
    rt = Runtime.open(workspace(tmp_path, crm_source(api)))
    runner = SourceRunner(rt, rt.workspace.sources["crm"])
    with pytest.raises(RestSourceError, match=r"source crm, page 3: .* 503 Service Unavailable"):
        runner.run_once()
    assert len(stored(rt)) == 20
    assert source_store.checkpoints(rt.db, "crm")[""]["next"] == 3
    api.fail_from_request = None
    api.requests.clear()
    again = runner.run_once()
    assert [seen.query["page"] for seen in api.requests] == ["3", "4", "5"]
    assert (again.read, again.written, again.duplicates) == (25, 25, 0)
    assert len(stored(rt)) == 45
    # Walk over: the next run starts from the first page again, storing nothing twice.
    assert source_store.checkpoints(rt.db, "crm") == {"": {}}
    assert runner.run_once().duplicates == 45


# -- configuration ---------------------------------------------------------------------------
SEED = """
    name: crm
    type: rest
    endpoint: https://api.crm.com/v1/customers
    auth: api_key
    every: 15m
    mapping:
      type: customer_updated
      entity_type: customer
      entity_id: id
"""


def test_the_seed_configuration_loads_one_to_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = Runtime.open(workspace(tmp_path, SEED))
    defn = rt.workspace.sources["crm"]
    assert (defn.kind, defn.spec.every) == ("rest", "15m")
    assert defn.config.endpoint == "https://api.crm.com/v1/customers"
    assert defn.config.auth == Auth(type="api_key")
    # The key is read when the source starts, from the environment, never from the file.
    with pytest.raises(ValidationFailed, match="TAGLOOP_SOURCE_CRM_API_KEY is not set"):
        RestSource("crm", defn.config)
    monkeypatch.setenv("TAGLOOP_SOURCE_CRM_API_KEY", "k")
    built = RestSource("crm", defn.config)
    assert built.http.client.headers["X-API-Key"] == "k"
    built.close()


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("auth: api_key", "auth: api_key\n    paginaton: link"), 6, "unknown key 'paginaton'"),
        (("auth: api_key", "auth: oauth"), 5, "auth.type: Input should be 'api_key', 'bearer'"),
        (("auth: api_key", "auth: {type: bearer, key: x}"), 5, "bearer takes token, not key"),
        (("auth: api_key", "pagination: {style: cursor}"), 5, "needs 'next'"),
        (("https://api.crm.com", "ftp://api.crm.com"), 4, "is not an http:// or https:// URL"),
    ],
)
def test_mistakes_in_a_rest_source_are_reported_at_their_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    with pytest.raises(WorkspaceError) as caught:
        Runtime.open(workspace(tmp_path, SEED.replace(*change)))
    (problem,) = caught.value.problems
    assert problem.where.startswith(f"sources/crm.yaml:{line}"), problem
    assert message in problem.message
