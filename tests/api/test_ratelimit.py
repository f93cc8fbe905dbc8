"""Rate limits through the real app: headers on every response, 429 with Retry-After, per-key
overrides over role defaults, refill on an injected clock, limits per client address for
failed authentication, and buckets shared by two app instances through the real Redis."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import update

from tagloop.api import ratelimit
from tagloop.api.app import create_app
from tagloop.api.ratelimit import LocalLimiter, Rate, RedisLimiter
from tagloop.errors import ValidationFailed
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store.tables import api_keys
from tests import services
from tests.conftest import make_key, write_workspace

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
LIMITS = """
limits:
  roles:
    viewer: {rate: 1, burst: 3}
  anonymous: {rate: 1, burst: 4}
"""


def limited_workspace(root: Path, database: str, limits: str = LIMITS) -> Path:
    write_workspace(root, database)
    project = root / "tagloop.yaml"
    project.write_text(
        project.read_text(encoding="utf-8") + textwrap.dedent(limits), encoding="utf-8"
    )
    return root


@pytest.fixture
def rt(tmp_path: Path, sqlite_url: str) -> Iterator[Runtime]:
    runtime = Runtime.open(limited_workspace(tmp_path / "ws", sqlite_url))
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(rt: Runtime, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(rt, *roles)}"}


def key_id(rt: Runtime, headers: dict[str, str]) -> str:
    with rt.db.read() as conn:
        row = key_store.find(conn, headers["Authorization"].removeprefix("Bearer "))
    assert row is not None
    return str(row.id)


def set_key_limits(rt: Runtime, headers: dict[str, str], limits: dict[str, Any]) -> None:
    with rt.db.write() as conn:
        assert key_store.set_limits(conn, key_id(rt, headers), **limits)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_headers_on_every_response_and_decreasing(client: TestClient, rt: Runtime) -> None:
    headers = bearer(rt, "admin")  # the built-in admin default: 50/s, bursts of 100
    first = client.get("/v1/tags", headers=headers)
    second = client.get("/v1/tags", headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.headers["RateLimit-Limit"] == "100"
    assert first.headers["RateLimit-Remaining"] == "99"
    assert int(second.headers["RateLimit-Remaining"]) in (98, 99)  # 20 ms of refill at most
    assert int(first.headers["RateLimit-Reset"]) >= 1
    # Errors of authenticated requests carry them too.
    missing = client.get("/v1/tags/no_such_tag", headers=headers)
    assert missing.status_code == 404
    assert int(missing.headers["RateLimit-Remaining"]) < 99
    # Unauthenticated endpoints (probes) do not.
    assert "RateLimit-Limit" not in client.get("/healthz").headers


def test_429_with_retry_after_once_the_burst_is_spent(client: TestClient, rt: Runtime) -> None:
    headers = bearer(rt, "viewer")  # 1/s, bursts of 3 (LIMITS)
    statuses = [client.get("/v1/tags", headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = client.get("/v1/tags", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert "1 requests per second (bursts of 3)" in refused.json()["message"]
    retry = refused.headers["Retry-After"]
    assert retry.isdigit() and int(retry) >= 1
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    # Another key has its own bucket.
    assert client.get("/v1/tags", headers=bearer(rt, "viewer")).status_code == 200


def test_a_key_of_several_roles_gets_the_most_generous(client: TestClient, rt: Runtime) -> None:
    response = client.get("/v1/tags", headers=bearer(rt, "viewer", "ingest"))
    assert response.headers["RateLimit-Limit"] == "200"  # ingest's 100/s, bursts of 200


def test_a_keys_own_limits_beat_its_roles(rt: Runtime) -> None:
    app = create_app(rt)
    app.state.ratelimits = ratelimit.for_runtime(rt, clock=lambda: 1000.0)  # no refill
    generous, strict = bearer(rt, "viewer"), bearer(rt, "admin")
    with TestClient(app, raise_server_exceptions=False) as client:
        set_key_limits(rt, generous, {"rate": 1000, "burst": 500})
        statuses = {client.get("/v1/tags", headers=generous).status_code for _ in range(10)}
        assert statuses == {200}
        assert client.get("/v1/tags", headers=generous).headers["RateLimit-Limit"] == "500"

        set_key_limits(rt, strict, {"rate": None, "burst": 2})  # admin's rate, bursts of 2
        assert [client.get("/v1/tags", headers=strict).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        # 1 token short at admin's 50/s: back within a second.
        assert client.get("/v1/tags", headers=strict).headers["Retry-After"] == "1"


def test_invalid_stored_limits_fall_back_to_the_roles(client: TestClient, rt: Runtime) -> None:
    headers = bearer(rt, "viewer")
    with rt.db.write() as conn:  # as a hand-edited row might hold
        stmt = update(api_keys).where(api_keys.c.id == key_id(rt, headers))
        conn.execute(stmt.values(limits={"rate": "fast", "burst": 10}))
    assert client.get("/v1/tags", headers=headers).headers["RateLimit-Limit"] == "3"
    with rt.db.write() as conn, pytest.raises(ValidationFailed):
        key_store.set_limits(conn, key_id(rt, headers), rate=0, burst=None)


def test_buckets_refill_with_time(rt: Runtime) -> None:
    now = [1000.0]
    app = create_app(rt)
    app.state.ratelimits = ratelimit.for_runtime(rt, clock=lambda: now[0])
    headers = bearer(rt, "viewer")  # 1/s, bursts of 3
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):
            assert client.get("/v1/tags", headers=headers).status_code == 200
        refused = client.get("/v1/tags", headers=headers)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["RateLimit-Reset"] == "3"  # 3 tokens short at 1/s
        now[0] += 0.5
        assert client.get("/v1/tags", headers=headers).headers["Retry-After"] == "1"
        now[0] += 0.5  # one token back
        again = client.get("/v1/tags", headers=headers)
        assert again.status_code == 200
        assert again.headers["RateLimit-Remaining"] == "0"
        now[0] += 60  # full again, and no more than full
        response = client.get("/v1/tags", headers=headers)
        assert response.headers["RateLimit-Remaining"] == "2"
        assert response.headers["RateLimit-Reset"] == "1"


def test_failed_authentication_is_limited_per_address(client: TestClient, rt: Runtime) -> None:
    bad = {"Authorization": "Bearer tl_not_a_key"}
    before = counter("tagloop_ratelimit_rejected_total", bucket="address")
    statuses = [client.get("/v1/tags", headers=bad).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 401]  # bursts of 4 (LIMITS)
    refused = client.get("/v1/tags")  # no key at all draws from the same bucket
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "failed authentications" in refused.json()["message"]
    assert counter("tagloop_ratelimit_rejected_total", bucket="address") == before + 1
    # A valid key from the same address is not held up (docs/security.md says why).
    assert client.get("/v1/tags", headers=bearer(rt, "admin")).status_code == 200


def test_segment_write_key_in_the_body_is_limited(client: TestClient, rt: Runtime) -> None:
    key = make_key(rt, "ingest")
    set_key_limits(rt, {"Authorization": f"Bearer {key}"}, {"rate": 1, "burst": 1})
    message = {"writeKey": key, "userId": "c1", "event": "order", "properties": {}}
    assert client.post("/v1/track", json=message).status_code == 200
    refused = client.post("/v1/track", json=message)
    assert refused.status_code == 429 and refused.headers["RateLimit-Limit"] == "1"


def test_limits_can_be_turned_off(tmp_path: Path, sqlite_url: str) -> None:
    root = limited_workspace(tmp_path / "ws", sqlite_url, "limits:\n  enabled: false\n")
    runtime = Runtime.open(root)
    try:
        with TestClient(create_app(runtime)) as client:
            response = client.get("/v1/tags", headers=bearer(runtime, "viewer"))
        assert response.status_code == 200 and "RateLimit-Limit" not in response.headers
    finally:
        runtime.close()


def test_local_buckets_are_thread_safe() -> None:
    limiter = LocalLimiter(clock=lambda: 0.0)  # no refill: exactly the burst gets through
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(500):
            decision = limiter.take_now("k", Rate(1, 1000))
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1000 and len(allowed) == 4000


def test_full_buckets_are_forgotten() -> None:
    now = [0.0]
    limiter = LocalLimiter(clock=lambda: now[0])
    for i in range(LocalLimiter.SWEEP_EVERY - 1):
        limiter.take_now(f"addr:{i}", Rate(1, 2))
    assert len(limiter) == LocalLimiter.SWEEP_EVERY - 1
    now[0] += 2  # every bucket is full again
    limiter.take_now("addr:last", Rate(1, 2))  # the take that sweeps
    assert len(limiter) == 1  # only the bucket just drawn from


# --- Redis ---------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    services.require("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def test_two_app_instances_share_one_bucket_in_redis(
    tmp_path: Path, sqlite_url: str, redis_url: str
) -> None:
    limits = LIMITS + f"  redis_url: {redis_url}\n"
    # Two runtimes and two apps on one workspace database, as two server processes have.
    root = limited_workspace(tmp_path / "ws", sqlite_url, limits)
    first, second = Runtime.open(root), Runtime.open(root)
    try:
        headers = bearer(first, "viewer")  # 1/s, bursts of 3
        with (
            TestClient(create_app(first), raise_server_exceptions=False) as a,
            TestClient(create_app(second), raise_server_exceptions=False) as b,
        ):
            assert isinstance(a.app.state.ratelimits.limiter, RedisLimiter)  # type: ignore[attr-defined]
            assert a.get("/v1/tags", headers=headers).headers["RateLimit-Remaining"] == "2"
            assert b.get("/v1/tags", headers=headers).headers["RateLimit-Remaining"] == "1"
            assert a.get("/v1/tags", headers=headers).status_code == 200
            refused = b.get("/v1/tags", headers=headers)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) >= 1
            assert a.get("/v1/tags", headers=headers).status_code == 429
    finally:
        first.close()
        second.close()


def test_redis_buckets_refill_and_expire(redis_url: str) -> None:
    from redis import Redis

    async def scenario() -> tuple[list[bool], float]:
        limiter = RedisLimiter(redis_url, prefix=f"tagloop:test:{uuid.uuid4().hex}:")
        rate = Rate(50, 2)  # a token every 20 ms
        try:
            taken = [(await limiter.take("k", rate)).allowed for _ in range(3)]
            await asyncio.sleep(0.05)  # bounded by the rate, not a guess at a long wait
            taken.append((await limiter.take("k", rate)).allowed)
            ttl = Redis.from_url(redis_url).pttl(limiter.prefix + "k")
        finally:
            await limiter.aclose()
        return taken, float(ttl)  # type: ignore[arg-type]

    taken, ttl = asyncio.run(scenario())
    assert taken == [True, True, False, True]
    assert 0 < ttl <= 1100  # gone once the bucket would be full again


def test_unreachable_redis_falls_back_to_local_limits(tmp_path: Path, sqlite_url: str) -> None:
    # Nothing listens on port 1: connections are refused at once.
    limits = LIMITS + "  redis_url: redis://127.0.0.1:1/0\n"
    runtime = Runtime.open(limited_workspace(tmp_path / "ws", sqlite_url, limits))
    before = counter("tagloop_ratelimit_fallbacks_total")
    try:
        headers = bearer(runtime, "viewer")
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            statuses = [client.get("/v1/tags", headers=headers).status_code for _ in range(4)]
            last = client.get("/v1/tags", headers=headers)
        # Requests go on (ingestion is not lost), limited by this process alone.
        assert statuses == [200, 200, 200, 429]
        assert last.headers["RateLimit-Limit"] == "3"
        assert counter("tagloop_ratelimit_fallbacks_total") == before + 5
    finally:
        runtime.close()


def test_limits_go_back_to_redis_when_it_is_reachable_again(redis_url: str) -> None:
    from redis import Redis

    async def scenario() -> tuple[bool, bool, int]:
        prefix = f"tagloop:test:{uuid.uuid4().hex}:"
        limiter = RedisLimiter("redis://127.0.0.1:1/0", prefix=prefix, retry_after=0.05)
        rate = Rate(1, 5)
        try:
            await limiter.take("k", rate)  # refused connection: this process's bucket
            down = len(limiter.fallback) == 1
            limiter.url, limiter._script = redis_url, None  # Redis is back
            await asyncio.sleep(0.06)  # the retry interval (set short here)
            decision = await limiter.take("k", rate)
            stored = Redis.from_url(redis_url).exists(prefix + "k")
        finally:
            await limiter.aclose()
        return down, decision.allowed, int(stored)  # type: ignore[arg-type]

    down, allowed, stored = asyncio.run(scenario())
    assert down and allowed and stored == 1


def test_processes_leasing_tokens_from_redis_never_exceed_the_shared_burst(
    redis_url: str,
) -> None:
    from redis import Redis

    async def scenario() -> tuple[int, float, list[int]]:
        prefix = f"tagloop:test:{uuid.uuid4().hex}:"
        # Two server processes: two limiters sharing the buckets, each leasing a tenth.
        a, b = (RedisLimiter(redis_url, prefix=prefix, lease=0.1) for _ in range(2))
        rate = Rate(0.001, 100)  # no refill worth counting during the test
        try:
            first = await a.take("k", rate)
            in_redis = float(Redis.from_url(redis_url).hget(prefix + "k", "t"))  # type: ignore[arg-type]
            allowed = int(first.allowed)
            remaining = [first.remaining]
            for _ in range(150):
                for limiter in (a, b):
                    decision = await limiter.take("k", rate)
                    allowed += decision.allowed
                    remaining.append(decision.remaining)
        finally:
            await a.aclose()
            await b.aclose()
        return allowed, in_redis, remaining

    allowed, in_redis, remaining = asyncio.run(scenario())
    assert in_redis == pytest.approx(90, abs=0.01)  # one round trip took ten tokens
    # Each process spends only what it took: together never more than the burst, and
    # tokens still leased when the bucket ran dry are spent by their holder.
    assert allowed == 100
    assert remaining[0] == 99 and remaining[-1] == 0


def test_a_lease_not_spent_in_time_is_given_up(redis_url: str) -> None:
    async def scenario() -> tuple[int, bool]:
        prefix = f"tagloop:test:{uuid.uuid4().hex}:"
        a, b = (RedisLimiter(redis_url, prefix=prefix, lease=0.1) for _ in range(2))
        a.LEASE_SECONDS = 0.05  # type: ignore[misc]
        rate = Rate(0.001, 100)
        try:
            assert (await a.take("k", rate)).allowed  # a holds nine more
            deadline = time.monotonic() + 0.06
            while time.monotonic() < deadline:  # the lease's lifetime, set short here
                await asyncio.sleep(0.01)
            by_b = 0
            while (await b.take("k", rate)).allowed:
                by_b += 1
            late = (await a.take("k", rate)).allowed
        finally:
            await a.aclose()
            await b.aclose()
        return by_b, late

    by_b, late = asyncio.run(scenario())
    assert by_b == 90  # what Redis still held
    assert late is False  # a's expired tokens are not spent after the others'
