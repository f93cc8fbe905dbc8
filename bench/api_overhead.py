"""What authentication, authorisation, rate limiting and audit add to a read request.

``GET /v1/entities/customer/<id>`` is timed in-process (httpx over ASGI, no sockets, so
the figures are the server's own work) with everything on, and with the permission
dependencies bypassed and no rate limiter: the baseline. The two alternate request by
request on one app, so drift on a shared machine falls on both alike.

Configurations:

- ``viewer``: an API key with the viewer role: key lookup, permission check, rate limit
  (in-process); PII is masked, so nothing is audited.
- ``pii reader``: a key with ``pii:read`` reading a profile with a PII field: the same,
  plus the audit record every read of personal data writes.
- ``viewer, Redis``: as ``viewer``, with the rate limit buckets in Redis (when it is up).

    .venv/bin/python -m bench.api_overhead                   # results to docs
    .venv/bin/python -m bench.api_overhead --requests 2000 --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import socket
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from bench.common import machine, record
from tagloop import logs
from tagloop.api import ratelimit
from tagloop.api.app import create_app
from tagloop.api.permissions import Principal
from tagloop.plugins import manager
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.timeutil import now_us

REDIS = ("127.0.0.1", 6379)
CUSTOMERS = 1000
WORKSPACE = {
    "tagloop.yaml": "name: bench\ntimezone: Asia/Shanghai\ndatabase: '{database}'\n",
    "entities/customer.yaml": """
        name: customer
        fields:
          name: {type: string, pii: true}
          city: string
          spend: number
    """,
    "tags/tags.yaml": """
        tags:
          - {name: big_spender, entity: customer, rule: spend >= 5000}
          - {name: shanghai, entity: customer, rule: "city == '上海'"}
    """,
}


@dataclass
class Figures:
    on: list[float]
    off: list[float]

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    def row(self, name: str) -> str:
        cells = []
        for q in (0.5, 0.95, 0.99):
            on, off = self.pct(self.on, q), self.pct(self.off, q)
            cells.append(f"{on:.3f} / {off:.3f} / **{on - off:+.3f}**")
        paired = statistics.median(a - b for a, b in zip(self.on, self.off, strict=True))
        return f"| {name} | {' | '.join(cells)} | {paired * 1000:+.3f} |"


def make_workspace(root: Path, extra: str = "") -> Path:
    for name, text in WORKSPACE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = textwrap.dedent(text).replace("{database}", f"sqlite:///{root / 'bench.db'}")
        path.write_text(body + (extra if name == "tagloop.yaml" else ""), encoding="utf-8")
    return root


def key(rt: Runtime, *roles: str) -> dict[str, str]:
    """A key with the given roles, limited so generously that the bench never meets it
    (its own limits, so the per-key path is the one timed)."""
    with rt.db.write() as conn:
        new = key_store.create(conn, "bench", list(roles), now_us())
        key_store.set_limits(conn, new.id, rate=1e9, burst=10**9)
    return {"Authorization": f"Bearer {new.secret}"}


def bypass(principal: Principal) -> dict[Callable[..., Any], Callable[..., Any]]:
    """Dependency overrides that skip authentication, authorisation and rate limiting:
    every permission check becomes "this principal" (set where the endpoint looks)."""

    async def fixed(request: Request) -> Principal:
        request.state.principal = principal
        return principal

    overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
    for routers in manager().hook.tagloop_api_routers():
        for router in routers:
            for route in router.routes:
                if isinstance(route, APIRoute):
                    for dependency in route.dependant.dependencies:
                        if dependency.call is not None and hasattr(dependency.call, "permission"):
                            overrides[dependency.call] = fixed
    return overrides


async def seed(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    events = [
        {
            "type": "identify",
            "entity": {"type": "customer", "id": f"C{i:05d}"},
            "attributes": {"name": f"客户{i}", "city": "上海", "spend": i * 10},
        }
        for i in range(CUSTOMERS)
    ]
    response = await client.post("/v1/events", json=events, headers=headers)
    response.raise_for_status()


async def measure(
    app: FastAPI, headers: dict[str, str], requests: int, warmup: int, seed_value: int
) -> Figures:
    baseline = bypass(Principal("bench", "bench", ("viewer",)))
    limits = app.state.ratelimits
    rng = random.Random(seed_value)
    figures = Figures([], [])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for i in range(warmup + requests):
            url = f"/v1/entities/customer/C{rng.randrange(CUSTOMERS):05d}"
            order = (True, False) if i % 2 else (False, True)
            for on in order:
                app.dependency_overrides = {} if on else baseline
                app.state.ratelimits = limits if on else None
                began = time.perf_counter()
                response = await client.get(url, headers=headers if on else {})
                elapsed = time.perf_counter() - began
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text}")
                if on and "RateLimit-Remaining" not in response.headers:
                    raise RuntimeError("the rate limiter did not run")
                if i >= warmup:
                    (figures.on if on else figures.off).append(elapsed)
    app.dependency_overrides = {}
    app.state.ratelimits = limits
    return figures


def redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


async def run(requests: int, warmup: int, with_redis: bool) -> dict[str, Figures]:
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory() as tmp:
        extra = f"limits:\n  redis_url: redis://{REDIS[0]}:{REDIS[1]}/0\n" if with_redis else ""
        rt = Runtime.open(make_workspace(Path(tmp) / "ws"))
        try:
            app = create_app(rt)
            admin = key(rt, "admin")
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            ) as client:
                await seed(client, admin)
            gc.collect()
            gc.freeze()  # as the server does after start-up
            results["viewer"] = await measure(app, key(rt, "viewer"), requests, warmup, 1)
            pii = key(rt, "viewer", "pii:read")
            results["pii reader (+ audit record)"] = await measure(app, pii, requests, warmup, 2)
            if with_redis:
                redis_rt = Runtime.open(make_workspace(Path(tmp) / "ws", extra))
                try:
                    redis_app = create_app(redis_rt)
                    limits = redis_app.state.ratelimits
                    assert isinstance(limits.limiter, ratelimit.RedisLimiter)
                    headers = key(redis_rt, "viewer")
                    results["viewer, limits in Redis"] = await measure(
                        redis_app, headers, requests, warmup, 3
                    )
                    await limits.limiter.aclose()
                finally:
                    redis_rt.close()
        finally:
            rt.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000, help="timed, per mode")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    logs.configure(level="WARNING")  # one line per request would be most of what is timed
    with_redis = not args.no_redis and redis_up()
    results = asyncio.run(run(args.requests, args.warmup, with_redis))
    table = [
        "| configuration | p50: on / off / **added** (ms) | p95 | p99 | median of paired "
        "differences |",
        "|---|---:|---:|---:|---:|",
        *(figures.row(name) for name, figures in results.items()),
    ]
    print("\n".join(table))
    if args.no_record:
        return
    record(
        "api-overhead",
        "\n".join(
            [
                "## API overhead",
                "",
                "What authentication (API key lookup), authorisation, rate limiting and audit add "
                "to a read, `GET /v1/entities/customer/<id>`: timed in-process (httpx over "
                "ASGI), on against a baseline with the permission dependencies bypassed and no "
                "rate limiter, alternating request by request on one app "
                f"({args.requests:,} timed requests per mode after {args.warmup} warm-up).",
                "",
                f"Command: `.venv/bin/python -m bench.api_overhead --requests {args.requests}`. "
                f"Machine: {machine()}.",
                f"Measured {time.strftime('%Y-%m-%d')}. Target (issue 4): under 1 ms added at p95.",
                "",
                *table,
            ]
        ),
    )


if __name__ == "__main__":
    main()
