"""Rate limits: a token bucket per API key (or user), and one per client address that
requests failing authentication draw from.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each
request takes one, and a request finding the bucket empty gets 429 with ``Retry-After``.
The rate of a caller is its key's own (``api_keys.limits``), else the most generous of its
roles' (``limits.roles`` in tagloop.yaml), else ``limits.default``.

Buckets live in the server process (`LocalLimiter`), or in Redis (`RedisLimiter`, when
``limits.redis_url`` or ``TAGLOOP_REDIS_URL`` is set) so that several server processes
share them. If Redis cannot be reached, each process keeps limits on its own until it can
again: neither every request refused (an outage of the limiter's store must not become an
outage of ingestion) nor none limited (see docs/security.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request

from tagloop import logs
from tagloop.errors import RateLimited
from tagloop.metrics import RATELIMIT_FALLBACKS, RATELIMIT_REJECTED
from tagloop.workspace.models import LimitSettings, RateSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from tagloop.runtime import Runtime

log = logs.get("tagloop.ratelimit")

REDIS_ENV = "TAGLOOP_REDIS_URL"
# Tokens are floats; a bucket refilled to 0.9999999 of a token holds one.
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Rate:
    """``rate`` tokens per second, at most ``burst`` held."""

    rate: float
    burst: int

    @classmethod
    def of(cls, spec: RateSpec) -> Rate:
        return cls(spec.rate, spec.burst)

    def describe(self) -> str:
        """
        >>> Rate(0.5, 20).describe()
        '0.5 requests per second (bursts of 20)'
        """
        return f"{self.rate:g} requests per second (bursts of {self.burst})"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of taking a token, in the terms of the response headers."""

    allowed: bool
    limit: int  # the burst: what a full bucket holds
    remaining: int  # whole tokens left
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until a token is there (0 when allowed)

    @classmethod
    def of(cls, rate: Rate, tokens: float, allowed: bool) -> Decision:
        """The decision for a bucket left with ``tokens``.

        >>> Decision.of(Rate(10, 20), 19.0, True)
        Decision(allowed=True, limit=20, remaining=19, reset=1, retry_after=0)
        >>> Decision.of(Rate(0.5, 20), 0.25, False).retry_after
        2
        """
        missing = rate.burst - tokens
        reset = math.ceil(missing / rate.rate - EPSILON) if missing > EPSILON else 0
        retry = 0 if allowed else max(1, math.ceil((1 - tokens) / rate.rate - EPSILON))
        return cls(allowed, rate.burst, max(0, int(tokens + EPSILON)), reset, retry)

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit``, ``-Remaining``, ``-Reset`` (and ``Retry-After`` on refusal).

        >>> Decision(True, 100, 99, 1, 0).headers()["RateLimit-Remaining"]
        '99'
        """
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class Limiter(ABC):
    """Token buckets by name."""

    @abstractmethod
    async def take(self, bucket: str, rate: Rate) -> Decision:
        """Take one token from ``bucket`` (created full) if it has one."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections (the server is stopping)."""


class LocalLimiter(Limiter):
    """Buckets in this process's memory: thread-safe, on the monotonic clock.

    >>> now = [0.0]
    >>> limiter = LocalLimiter(clock=lambda: now[0])
    >>> [limiter.take_now("k", Rate(1, 2)).allowed for _ in range(3)]
    [True, True, False]
    >>> now[0] += 1.0
    >>> limiter.take_now("k", Rate(1, 2)).allowed
    True
    """

    SWEEP_EVERY = 4096  # takes between removals of buckets that have filled up again

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # name -> (tokens, time of last take, rate, burst)
        self._buckets: dict[str, tuple[float, float, float, int]] = {}
        self._takes = 0

    def take_now(self, bucket: str, rate: Rate) -> Decision:
        """`take`, from synchronous code."""
        with self._lock:
            now = self._clock()
            state = self._buckets.get(bucket)
            if state is None:
                tokens = float(rate.burst)
            else:
                tokens = min(float(rate.burst), state[0] + max(0.0, now - state[1]) * rate.rate)
            allowed = tokens >= 1 - EPSILON
            if allowed:
                tokens = max(0.0, tokens - 1)
            self._buckets[bucket] = (tokens, now, rate.rate, rate.burst)
            self._takes += 1
            if self._takes % self.SWEEP_EVERY == 0:
                self._sweep(now)
        return Decision.of(rate, tokens, allowed)

    async def take(self, bucket: str, rate: Rate) -> Decision:
        return self.take_now(bucket, rate)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _sweep(self, now: float) -> None:
        # A full bucket is the same as none: dropping it bounds memory by the callers of
        # the last burst/rate seconds (one bucket per client address included).
        full = [
            name
            for name, (tokens, at, per_second, burst) in self._buckets.items()
            if tokens + (now - at) * per_second >= burst
        ]
        for name in full:
            del self._buckets[name]

    def __len__(self) -> int:
        return len(self._buckets)


# One atomic step per round trip: refill, then take up to ARGV[3] tokens (a lease, at least
# one). The clock is Redis's own (TIME), so that server processes on different machines need
# not agree on the time; the key expires once the bucket would be full again, which is the
# same as it not existing.
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted = math.min(want, math.floor(tokens + 1e-9))
if granted > 0 then
  tokens = math.max(0, tokens - granted)
end
redis.call('HSET', KEYS[1], 't', string.format('%.9f', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {granted, string.format('%.9f', tokens)}
"""


@dataclass(slots=True)
class _Lease:
    """Tokens this process took from a Redis bucket and has not spent yet."""

    tokens: int
    left: float  # what the Redis bucket held after the lease was taken (for the headers)
    until: float  # monotonic time after which unspent tokens are given up


class RedisLimiter(Limiter):
    """Buckets in Redis, shared by every process using the same ``prefix``.

    When Redis fails (unreachable, timing out), requests are limited by ``fallback``, this
    process's own buckets, for ``retry_after`` seconds before Redis is tried again. The
    first failure of an outage is logged, and each request limited so is counted
    (``tagloop_ratelimit_fallbacks_total``), so the outage shows on dashboards.
    """

    LEASE_SECONDS = 1.0  # how long leased tokens may be spent
    MAX_LEASE = 50
    SWEEP_AT = 10_000  # leases held before expired ones are dropped

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tagloop:rl:",
        fallback: LocalLimiter | None = None,
        timeout: float = 0.25,
        retry_after: float = 2.0,
        lease: float = 0.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.fallback = fallback or LocalLimiter()
        self.timeout = timeout
        self.retry_after = retry_after
        self.lease = lease
        self._leases: dict[str, _Lease] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Redis | None = None
        self._script: AsyncScript | None = None
        self._down_until = 0.0
        self._down = False

    def _connect(self) -> AsyncScript:
        # An asyncio connection belongs to the event loop that opened it; a server has
        # one loop per process, tests may start several.
        loop = asyncio.get_running_loop()
        if self._script is None or self._loop is not loop:
            from redis.asyncio import Redis

            self._client = Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                health_check_interval=30,
            )
            self._script = self._client.register_script(TOKEN_BUCKET)
            self._loop = loop
        return self._script

    def lease_size(self, rate: Rate) -> int:
        """Tokens taken from Redis in one round trip: ``lease`` of the burst, at least one.

        Small bursts (sign-in attempts, strict partner keys) get one: exact limits, a round
        trip per request. A process never spends more than it took, so the processes
        together never exceed the limit; tokens a process took and did not spend within
        ``LEASE_SECONDS`` are given up, so others may be refused up to that many early.

        >>> limiter = RedisLimiter("redis://x", lease=0.1)
        >>> limiter.lease_size(Rate(50, 100)), limiter.lease_size(Rate(1, 5))
        (10, 1)
        """
        return max(1, min(self.MAX_LEASE, int(rate.burst * self.lease + EPSILON)))

    async def take(self, bucket: str, rate: Rate) -> Decision:
        from redis.exceptions import RedisError

        now = time.monotonic()
        lease = self._leases.get(bucket)
        if lease is not None and lease.tokens > 0 and now < lease.until:
            lease.tokens -= 1
            return Decision.of(rate, lease.left + lease.tokens, True)
        if self._down and now < self._down_until:
            RATELIMIT_FALLBACKS.inc()
            return await self.fallback.take(bucket, rate)
        try:
            script = self._connect()
            granted, tokens = await script(
                keys=[self.prefix + bucket], args=[rate.rate, rate.burst, self.lease_size(rate)]
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return await self.fallback.take(bucket, rate)
        if self._down:
            self._down = False
            log.warning("rate limit store reachable again; limits are shared", url=self._safe_url)
        granted, left = int(granted), float(tokens)
        if granted > 1:
            self._keep(bucket, granted - 1, left, now)
        held = self._leases.get(bucket)
        unspent = held.tokens if held is not None and held.until > now else 0
        return Decision.of(rate, left + unspent, granted > 0)

    def _keep(self, bucket: str, tokens: int, left: float, now: float) -> None:
        if len(self._leases) >= self.SWEEP_AT:
            self._leases = {k: v for k, v in self._leases.items() if v.until > now}
        held = self._leases.get(bucket)
        if held is not None and held.until > now:  # two requests leased at once: keep both
            tokens += held.tokens
        self._leases[bucket] = _Lease(tokens, left, now + self.LEASE_SECONDS)

    def _failed(self, exc: BaseException) -> None:
        RATELIMIT_FALLBACKS.inc()
        if not self._down:
            log.warning(
                "rate limit store unreachable; limiting in this process until it is back",
                url=self._safe_url,
                error=str(exc) or type(exc).__name__,
            )
        self._down = True
        self._down_until = time.monotonic() + self.retry_after

    @property
    def _safe_url(self) -> str:
        # Never a password in the log.
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = self._script = None


def subject(principal: Any) -> tuple[str, str | None]:
    """The bucket of an authenticated caller, and its API key id (None for a user).

    Any principal with ``roles`` and a stable id will do: an API key (``key_id``) or, with
    ``kind="user"``, a signed-in user (``user_id``, else ``key_id``).

    >>> from types import SimpleNamespace as P
    >>> subject(P(key_id="k1", name="etl", roles=("ingest",)))
    ('key:k1', 'k1')
    >>> subject(P(kind="user", user_id="u7", key_id=None, name="ann", roles=()))
    ('user:u7', None)
    """
    kind = str(getattr(principal, "kind", "key"))
    if kind == "key" and getattr(principal, "key_id", None):
        key_id = str(principal.key_id)
        return f"key:{key_id}", key_id
    ident = (
        getattr(principal, "user_id", None)
        or getattr(principal, "key_id", None)
        or getattr(principal, "id", None)
        or principal.name
    )
    return f"{kind}:{ident}", None


class RateLimits:
    """What rate applies to whom, over a `Limiter`.

    A key's own limits (``api_keys.limits``) come with its principal, read with the key
    on every request, so a changed limit applies at once.
    """

    def __init__(
        self,
        settings: LimitSettings,
        limiter: Limiter,
    ) -> None:
        self.limiter = limiter
        self.default = Rate.of(settings.default)
        self.roles = {name: Rate.of(spec) for name, spec in settings.roles.items()}
        self.anonymous = Rate.of(settings.anonymous)
        # Invalid stored limits are logged once per key and process, not per request.
        self._warned: set[str] = set()

    def for_roles(self, roles: tuple[str, ...] | list[str]) -> Rate:
        """The most generous rate among ``roles`` (a role not configured has the default).

        >>> limits = RateLimits(LimitSettings(), LocalLimiter())
        >>> limits.for_roles(("viewer", "ingest"))
        Rate(rate=100.0, burst=200)
        >>> limits.for_roles(("auditor",)) == limits.default
        True
        """
        rates = [self.roles.get(role, self.default) for role in roles] or [self.default]
        return max(rates, key=lambda r: (r.rate, r.burst))

    def rate_for(self, principal: Any) -> tuple[str, Rate]:
        bucket, key_id = subject(principal)
        rate = self.for_roles(tuple(getattr(principal, "roles", ())))
        stored = getattr(principal, "limits", None)
        if key_id is not None and stored is not None:
            own = _override(stored, rate)
            if own is rate and key_id not in self._warned and len(self._warned) < 10_000:
                self._warned.add(key_id)
                log.warning("ignoring invalid key limits", key_id=key_id, limits=stored)
            rate = own
        return bucket, rate

    async def take(self, principal: Any) -> tuple[Decision, Rate]:
        bucket, rate = self.rate_for(principal)
        return await self.limiter.take(bucket, rate), rate

    async def take_address(self, address: str) -> Decision:
        return await self.limiter.take(f"addr:{address}", self.anonymous)


def _override(stored: Any, base: Rate) -> Rate:
    """A key's own ``{"rate": r, "burst": b}`` over ``base`` (either may be left out).

    >>> _override({"rate": 1000}, Rate(100, 200))
    Rate(rate=1000.0, burst=200)
    >>> _override({"rate": -1}, Rate(100, 200))  # not a rate: ignored
    Rate(rate=100, burst=200)
    """
    if not isinstance(stored, dict):
        return base
    rate, burst = stored.get("rate", base.rate), stored.get("burst", base.burst)
    if (
        isinstance(rate, int | float)
        and isinstance(burst, int | float)
        and not isinstance(rate, bool)
        and not isinstance(burst, bool)
        and rate > 0
        and burst >= 1
    ):
        return Rate(float(rate), int(burst))
    return base


def for_runtime(rt: Runtime, *, clock: Callable[[], float] | None = None) -> RateLimits | None:
    """The limits of ``rt``'s workspace (None when ``limits.enabled`` is false).

    Buckets are named after the database, so that every process serving one workspace
    shares them in Redis and two workspaces on one Redis do not.
    """
    settings = rt.workspace.project.limits
    if not settings.enabled:
        return None
    local = LocalLimiter(clock) if clock is not None else LocalLimiter()
    url = os.environ.get(REDIS_ENV) or settings.redis_url
    limiter: Limiter = local
    if url:
        database = hashlib.sha256(rt.workspace.database_url.encode()).hexdigest()[:16]
        limiter = RedisLimiter(
            url, prefix=f"tagloop:rl:{database}:", fallback=local, lease=settings.redis_lease
        )
    return RateLimits(settings, limiter)


def _limits(request: Request) -> RateLimits | None:
    found = getattr(request.app.state, "ratelimits", None)
    return found if isinstance(found, RateLimits) else None


async def check(request: Request, principal: Any) -> None:
    """Take a token from the bucket of an authenticated caller: 429 when it is empty.

    The outcome is left in ``request.state.ratelimit``, from which every response gets
    its ``RateLimit-*`` headers. A request checked once is not charged again.
    """
    limits = _limits(request)
    if limits is None or getattr(request.state, "ratelimit", None) is not None:
        return
    decision, rate = await limits.take(principal)
    request.state.ratelimit = decision
    if not decision.allowed:
        RATELIMIT_REJECTED.labels("caller").inc()
        raise RateLimited(
            f"too many requests: the limit of this caller is {rate.describe()}; "
            f"retry in {decision.retry_after} s",
            decision.retry_after,
        )


async def failed_authentication(request: Request) -> RateLimited | None:
    """Charge a request that failed authentication to its client address; the error to
    answer instead of 401 once that address's bucket is empty.

    This bounds how fast one address can try credentials and what floods of bad ones
    cost. It does not hold up valid keys from the same address: a key is 256 random
    bits, out of reach of guessing at any rate, and an office behind one address should
    not be locked out by one misconfigured client.
    """
    limits = _limits(request)
    if limits is None:
        return None
    address = request.client.host if request.client is not None else "unknown"
    decision = await limits.take_address(address)
    request.state.ratelimit = decision
    if decision.allowed:
        return None
    RATELIMIT_REJECTED.labels("address").inc()
    return RateLimited(
        f"too many failed authentications from {address}: the limit is "
        f"{limits.anonymous.describe()}; retry in {decision.retry_after} s",
        decision.retry_after,
    )
