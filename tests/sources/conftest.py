"""Broker fixtures shared by the source tests: a fresh stream per test, deleted after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import nats
import pytest
from nats.js.api import StreamConfig

from tests import services

NATS = "nats://127.0.0.1:4222"
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def stream() -> Iterator[str]:
    """A fresh JetStream stream (subjects ``<name>.>``), deleted afterwards."""
    services.require("NATS", "127.0.0.1", 4222)
    name = f"T{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        client = await nats.connect(NATS)
        await client.jetstream().add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        await client.close()

    async def delete() -> None:
        client = await nats.connect(NATS)
        await client.jetstream().delete_stream(name)
        await client.close()

    asyncio.run(create())
    yield name
    asyncio.run(delete())


@pytest.fixture
def redis_stream() -> Iterator[str]:
    services.require("Redis", "127.0.0.1", 6379)
    name = f"tagloop-test:{uuid.uuid4().hex[:10]}"
    yield name

    async def clean() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS)
        await client.delete(name)
        await client.aclose()

    asyncio.run(clean())
