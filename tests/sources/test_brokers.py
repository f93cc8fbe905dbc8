"""RabbitMQ, MQTT and Redis stream sources against the real servers, Kafka through
FastStream's in-memory broker: every good message stored once with its mapped fields, bad
ones in the dead letters, and what was not acknowledged when a run crashed or stopped
delivered again and deduplicated by the next run.

Each broker test runs the same three phases through the runner (`SourceRunner`), into a
real workspace store:

A. a run whose second commit "crashes" after committing and before acknowledging: the
   runner restarts the source with backoff, the broker redelivers, nothing is doubled;
B. a run that commits a batch and then hangs until it is cancelled (a stop with committed
   and buffered messages not acknowledged);
C. a fresh run, which gets them again and stores only what was missing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tagloop.runtime import Runtime
from tagloop.sources.base import Deliver, Record, StreamSource
from tagloop.sources.brokers.common import BrokerSource
from tagloop.sources.runner import SourceRunner
from tests import services
from tests.conftest import write_workspace

FIRST = 40  # phase A: 38 readings and 2 bad messages
SECOND = 20  # phase B: readings only
BASE_MS = 1_709_600_000_000


def mapping(entity: str, typed: bool = True) -> str:
    """The source's shared keys; without ``typed`` the stream (topic) gives the type."""
    kind = "type: vibration" if typed else ""
    return f"""
        batch_size: 10
        max_wait_ms: 20
        mapping:
          {kind}
          entity_type: device
          entity_id: {entity}
          time: at
          epoch: ms
          fields:
            rms: number
          properties: {{rms: rms}}
    """


# --- helpers -------------------------------------------------------------------------------


def reading(n: int) -> bytes:
    return orjson.dumps(
        {"reading": f"R{n}", "device": f"D-{n % 5}", "rms": f"{n}.5", "at": BASE_MS + n * 1000}
    )


BAD = {7: b"{not json", 23: orjson.dumps({"device": "D-3", "rms": "12,3x", "at": BASE_MS})}


def payloads(start: int, count: int, bad: bool) -> list[tuple[int, bytes]]:
    """``(n, body)`` for readings ``start..start+count``, two of them bad when ``bad``."""
    return [(n, BAD[n] if bad and n in BAD else reading(n)) for n in range(start, start + count)]


def workspace(tmp_path: Path, name: str, source: str) -> Runtime:
    root = write_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path}/store.db", extra={f"sources/{name}.yaml": source}
    )
    return Runtime.open(root)


def scalar(rt: Runtime, sql: str, **params: Any) -> Any:
    with rt.db.read() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def stored(rt: Runtime) -> int:
    return int(scalar(rt, "SELECT count(*) FROM events"))


def bad_keys(rt: Runtime) -> int:
    """Bad records kept, each once however often the broker redelivered it."""
    letters = int(scalar(rt, "SELECT count(*) FROM dead_letters"))
    assert letters == int(scalar(rt, "SELECT count(DISTINCT record_key) FROM dead_letters"))
    return letters


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting until {what}")
        await asyncio.sleep(0.02)


class Crash(Exception):
    """A failure injected between the commit and the acknowledgement."""


class Faults:
    """A ``deliver`` that commits for real, then crashes or hangs at a chosen call."""

    def __init__(
        self, deliver: Deliver, *, crash_on: int | None = None, hang_on: int | None = None
    ) -> None:
        self.deliver = deliver
        self.crash_on = crash_on
        self.hang_on = hang_on
        self.calls = 0
        self.crashed = False
        self.hung = asyncio.Event()

    async def __call__(self, records: list[Record]) -> None:
        await self.deliver(records)  # committed: from here on, an ack is what is missing
        self.calls += 1
        if self.calls == self.crash_on and not self.crashed:
            self.crashed = True
            raise Crash("crashed after the commit, before the acknowledgement")
        if self.calls == self.hang_on:
            self.hung.set()
            await asyncio.Event().wait()  # until cancelled


class Run:
    """A `SourceRunner.run_forever` task, with the sources it built (to see them start)."""

    def __init__(self, rt: Runtime, name: str, faults: dict[str, int] | None = None) -> None:
        self.runner = SourceRunner(rt, rt.workspace.sources[name])
        self.faults = Faults(self.runner.deliver, **(faults or {}))
        self.sources: list[StreamSource] = []
        build = self.runner._source

        def capture() -> Any:
            source = build()
            self.sources.append(source)  # type: ignore[arg-type]
            return source

        self.runner._source = capture  # type: ignore[method-assign]
        self.runner.deliver = self.faults  # type: ignore[method-assign]
        self.task: asyncio.Task[None] | None = None

    @property
    def source(self) -> BrokerSource:
        source = self.sources[-1]
        assert isinstance(source, BrokerSource)
        return source

    async def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run_forever())
        await until(
            lambda: (bool(self.sources) and self.source.running) or self.task_failed(),
            30,
            "the source is consuming",
        )
        assert not self.task_failed(), self.task

    def task_failed(self) -> bool:
        return self.task is not None and self.task.done()

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def three_phases(
    rt: Runtime, name: str, publish: Callable[[list[tuple[int, bytes]]], Awaitable[None]]
) -> None:
    """Phases A, B and C (module docstring); ``publish`` sends ``(n, body)`` messages."""
    good_a = FIRST - len(BAD)
    # A: the second commit crashes before its ack; the runner restarts the source.
    run = Run(rt, name, {"crash_on": 2})
    await run.start()
    await publish(payloads(0, FIRST, bad=True))
    await until(lambda: stored(rt) == good_a and bad_keys(rt) == len(BAD), 60, "phase A is stored")
    assert run.faults.crashed and len(run.sources) >= 2, "the source was restarted"
    # The crashed batch was committed and came back: recognised, not stored again.
    await until(lambda: run.runner.total.duplicates >= 1, 30, "the redelivery is recognised")
    await run.stop()
    assert stored(rt) == good_a

    # B: a batch is committed, then the run hangs and is stopped before acknowledging it.
    run = Run(rt, name, {"hang_on": 1})
    await run.start()
    await publish(payloads(FIRST, SECOND, bad=False))
    await asyncio.wait_for(run.faults.hung.wait(), 30)
    held = run.source.in_flight
    assert held >= 1, "messages are held un-acknowledged when the run stops"
    await run.stop()
    committed_in_b = stored(rt) - good_a

    # C: a new run gets what B did not acknowledge; B's committed batch is a duplicate.
    run = Run(rt, name)
    await run.start()
    await until(lambda: stored(rt) == good_a + SECOND, 60, "phase C is stored")
    # Every message B committed without acknowledging comes back, and is recognised.
    await until(
        lambda: run.runner.total.duplicates >= committed_in_b and run.source.in_flight == 0,
        30,
        "B's committed messages are recognised and acknowledged",
    )
    await run.stop()


def check_store(rt: Runtime, *, entity_from: str = "payload") -> None:
    """Every good reading once with its mapped fields; the two bad ones as dead letters."""
    good = [n for n in range(FIRST + SECOND) if n not in BAD]
    with rt.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT entity_id, time, properties, type FROM events ORDER BY time")
        ).all()
        letters = conn.execute(
            sa.text("SELECT DISTINCT record_key, error FROM dead_letters ORDER BY error")
        ).all()
    assert len(rows) == len(good), "each reading exactly once"
    for n, (entity_id, at, props, kind) in zip(good, rows, strict=True):
        props = props if isinstance(props, dict) else orjson.loads(props)
        assert (entity_id, at, props, kind) == (
            f"D-{n % 5}",
            (BASE_MS + n * 1000) * 1000,  # stored in microseconds
            {"rms": n + 0.5},  # coerced from text
            "vibration",
        ), (entity_from, n)
    errors = [error for _, error in letters]
    assert len(errors) == 2, errors
    assert sum("field rms: '12,3x' is not a number" in error for error in errors) == 1
    assert sum(", invalid JSON: " in error for error in errors) == 1


# --- RabbitMQ ------------------------------------------------------------------------------

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def rabbit_names() -> Iterator[str]:
    services.require("RabbitMQ", "127.0.0.1", 5672)
    name = f"tagloop-test-{uuid.uuid4().hex[:10]}"
    yield name

    async def clean() -> None:
        import aio_pika

        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)
            await channel.exchange_delete(name)

    asyncio.run(clean())


def test_rabbitmq_stores_once_keeps_bad_ones_and_redelivers_what_was_not_acked(
    tmp_path: Path, rabbit_names: str
) -> None:
    import aio_pika

    name = rabbit_names
    source = f"""
        name: amqp_vibration
        kind: rabbitmq
        url: {AMQP}
        queue: {name}
        exchange: {name}
        exchange_type: topic
        routing_key: "vibration.#"
    """ + mapping("device")
    rt = workspace(tmp_path, "amqp_vibration", source)

    async def publish(messages: list[tuple[int, bytes]]) -> None:
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(name)
            for n, body in messages:
                # Half carry a message id (the key), half none (the key is a body hash).
                message_id = f"m-{n}" if n % 2 else None
                await exchange.publish(
                    aio_pika.Message(body, message_id=message_id), routing_key="vibration.line1"
                )

    async def leftover() -> int:
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count
            return int(count or 0)

    asyncio.run(three_phases(rt, "amqp_vibration", publish))
    check_store(rt)
    assert asyncio.run(leftover()) == 0, "everything was acknowledged"
    location = scalar(rt, "SELECT min(location) FROM dead_letters WHERE error LIKE '%JSON%'")
    assert location.startswith(f"queue {name}, routing key vibration.line1, ")


def test_rabbitmq_binding_needs_an_exchange(tmp_path: Path) -> None:
    from tagloop.sources.brokers.rabbit import RabbitConfig

    with pytest.raises(ValueError, match="routing_key needs an exchange"):
        RabbitConfig.model_validate({"queue": "q", "routing_key": "a.#"})


# --- MQTT ----------------------------------------------------------------------------------


@pytest.fixture
def mqtt_names() -> Iterator[str]:
    services.require("Mosquitto MQTT", "127.0.0.1", 1883)
    name = f"tl{uuid.uuid4().hex[:10]}"
    yield name

    async def end_session() -> None:
        import zmqtt

        # Connecting with a clean start and no expiry ends the test's persistent session.
        client = zmqtt.MQTTClient(
            "127.0.0.1", 1883, client_id=f"{name}-reader", clean_session=True, version="5.0"
        )
        async with client:
            pass

    asyncio.run(end_session())


def test_mqtt_maps_topic_segments_stores_once_and_gets_unacked_messages_again(
    tmp_path: Path, mqtt_names: str
) -> None:
    import zmqtt

    prefix = mqtt_names
    source = f"""
        name: mqtt_vibration
        kind: mqtt
        url: mqtt://127.0.0.1:1883
        client_id: {prefix}-reader
        topics:
          "{prefix}/+/device/{{device_id}}/vibration": vibration
    """ + mapping("meta.segments.device_id", typed=False)
    rt = workspace(tmp_path, "mqtt_vibration", source)

    async def publish(messages: list[tuple[int, bytes]]) -> None:
        client = zmqtt.MQTTClient("127.0.0.1", 1883, version="5.0")
        async with client:
            for n, body in messages:
                # The entity id is only in the topic: the mapping reads meta.segments.
                topic = f"{prefix}/plant1/device/D-{n % 5}/vibration"
                await client.publish(topic, body, qos=zmqtt.QoS.AT_LEAST_ONCE)

    asyncio.run(three_phases(rt, "mqtt_vibration", publish))
    check_store(rt, entity_from="topic")
    location = scalar(rt, "SELECT min(location) FROM dead_letters WHERE error LIKE '%JSON%'")
    assert location.startswith(f"topic {prefix}/plant1/device/D-2/vibration, payload sha256:")


def test_mqtt_topic_patterns() -> None:
    from tagloop.sources.brokers.mqtt import MqttConfig, TopicPattern

    pattern = TopicPattern("factory/+/device/{device_id}/vibration")
    assert pattern.filter == "factory/+/device/+/vibration"
    assert pattern.segments("factory/f1/device/D-7/vibration") == {"device_id": "D-7"}
    assert TopicPattern("plant/{line}/#").segments("plant/L2/a/b") == {"line": "L2"}
    for bad, reason in [
        ("a/#/b", "'#' may only be the last level"),
        ("a/dev{id}/b", "a named level is a whole level"),
        ("a/b+/c", "must be whole levels"),
        ("a/{x}/{x}", "repeats"),
    ]:
        with pytest.raises(ValueError, match=reason):
            TopicPattern(bad)
    config = MqttConfig.model_validate({"topics": {"a/{x}": "t1", "b/#": None}})
    assert config.streams() == {"a/{x}": {"type": "t1"}, "b/#": {}}
    with pytest.raises(ValueError, match="same filter"):
        MqttConfig.model_validate({"topics": ["a/{x}", "a/+"]})


# --- Redis streams -------------------------------------------------------------------------

REDIS = "redis://127.0.0.1:6379/0"


def test_redis_streams_store_once_and_reread_pending_entries(
    tmp_path: Path, redis_stream: str
) -> None:
    from redis.asyncio import Redis

    stream = redis_stream
    source = f"""
        name: redis_vibration
        kind: redis
        url: {REDIS}
        streams: ["{stream}"]
        field: payload
    """ + mapping("device")
    rt = workspace(tmp_path, "redis_vibration", source)

    async def publish(messages: list[tuple[int, bytes]]) -> None:
        client = Redis.from_url(REDIS)
        for _, body in messages:
            await client.xadd(stream, {"payload": body, "origin": "plc-1"})
        await client.aclose()

    async def pending() -> int:
        client = Redis.from_url(REDIS)
        info = await client.xpending(stream, "tagloop-redis_vibration")
        await client.aclose()
        return int(info["pending"])

    asyncio.run(three_phases(rt, "redis_vibration", publish))
    check_store(rt)
    assert asyncio.run(pending()) == 0, "every entry was acknowledged"
    location = scalar(rt, "SELECT min(location) FROM dead_letters WHERE error LIKE '%JSON%'")
    assert location.startswith(f"stream {stream}, entry ")


# --- Kafka (in-memory) ---------------------------------------------------------------------


def test_kafka_commits_the_offsets_of_committed_batches_only(tmp_path: Path) -> None:
    """FastStream's TestKafkaBroker drives the real subscriber, parser and handler; the
    group's offsets go to a recording consumer, so what would be committed is checked."""
    from aiokafka import (  # type: ignore[import-untyped]  # no stubs
        AIOKafkaConsumer,
        ConsumerRecord,
        TopicPartition,
    )
    from faststream.kafka import TestKafkaBroker

    from tagloop.sources.brokers.kafka import KafkaSource

    source_yaml = """
        name: kafka_vibration
        kind: kafka
        bootstrap_servers: 127.0.0.1:9092
        topics: {mes.vibration: vibration}
    """ + mapping("device", typed=False)
    rt = workspace(tmp_path, "kafka_vibration", source_yaml)
    runner = SourceRunner(rt, rt.workspace.sources["kafka_vibration"])

    class Recorder(AIOKafkaConsumer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.commits: list[dict[TopicPartition, int]] = []

        async def commit(self, offsets: Any = None) -> None:
            self.commits.append(dict(offsets))

        def __del__(self) -> None:  # never started: nothing to close (aiokafka would warn)
            pass

    # Two partitions: even readings in 0, odd ones in 1, offsets counting per partition.
    records = [
        ConsumerRecord(
            "mes.vibration", n % 2, n // 2, BASE_MS, 0, None, body, None, 0, len(body), []
        )
        for n, body in payloads(0, FIRST, bad=True)
    ]
    chunks = [records[i : i + 10] for i in range(0, FIRST, 10)]

    async def run(deliver: Deliver, feed: list[list[Any]]) -> tuple[Recorder, BaseException | None]:
        source = runner._source()
        assert isinstance(source, KafkaSource)
        broker = source.broker()
        recorder = Recorder()
        async with TestKafkaBroker(broker) as test_broker:
            task = asyncio.create_task(source.consume(test_broker, deliver))
            await until(lambda: source.running, 10, "the source is consuming")
            (subscriber,) = test_broker.subscribers
            subscriber.parser._setup(recorder)  # type: ignore[attr-defined]
            for chunk in feed:
                if task.done():
                    break
                await subscriber.process_message(chunk)
                # One broker batch is one delivery: wait for it before the next fetch.
                await until(lambda: source.in_flight == 0 or task.done(), 10, "the batch")
            task.cancel()
            outcomes = await asyncio.gather(task, return_exceptions=True)
        return recorder, outcomes[0] if isinstance(outcomes[0], BaseException) else None

    async def scenario() -> None:
        faults = Faults(runner.deliver, crash_on=2)
        recorder, outcome = await run(faults, chunks)
        assert isinstance(outcome, Crash)
        # Only the first batch (offsets 0-4 of each partition) was committed to Kafka,
        # though the second one is in the store.
        assert recorder.commits == [
            {TopicPartition("mes.vibration", 0): 5, TopicPartition("mes.vibration", 1): 5}
        ]
        assert stored(rt) == 20 - 1  # reading 7 is bad
        # The group resumes at the committed offsets: the second batch comes again.
        resumed = [r for r in records if r.offset >= 5]
        again = [resumed[i : i + 10] for i in range(0, len(resumed), 10)]
        recorder, outcome = await run(runner.deliver, again)
        assert isinstance(outcome, asyncio.CancelledError)
        assert recorder.commits[-1] == {
            TopicPartition("mes.vibration", 0): 20,
            TopicPartition("mes.vibration", 1): 20,
        }

    asyncio.run(scenario())
    assert stored(rt) == FIRST - len(BAD)
    assert bad_keys(rt) == len(BAD)
    assert scalar(rt, "SELECT count(DISTINCT id) FROM events") == FIRST - len(BAD)
    key = scalar(rt, "SELECT record_key FROM dead_letters WHERE error LIKE '%JSON%' LIMIT 1")
    assert key == "mes.vibration/1/3"  # reading 7: odd, the fourth of partition 1


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "service"),
    [
        ("rabbitmq", {"url": "amqp://guest:hunter2@127.0.0.1:5672/", "queue": "q"}, 5672),
        ("mqtt", {"url": "mqtt://u:hunter2@127.0.0.1:1", "topics": ["a/#"]}, None),
        ("redis", {"url": "redis://:hunter2@127.0.0.1:1/0", "streams": ["s"]}, None),
    ],
)
def test_a_broker_that_refuses_fails_the_start_without_showing_the_password(
    kind: str, options: dict[str, Any], service: int | None
) -> None:
    from tagloop.sources.brokers import BrokerUnavailable
    from tagloop.sources.kinds import build, kinds

    if service is not None:  # RabbitMQ is up and refuses the wrong password
        services.require("RabbitMQ", "127.0.0.1", service)
    config = kinds()[kind].config_model.model_validate({**options, "connect_timeout_s": 3})
    source = build("plant", kind, config)

    async def never(records: list[Record]) -> None:
        raise AssertionError("nothing is delivered")

    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(asyncio.wait_for(source.run(never), 30))
    message = str(caught.value)
    assert "cannot start" in message and "hunter2" not in message, message
    assert "***" in message  # the URL is shown masked
