"""`tagloop sources run` killed with SIGKILL mid-stream, then restarted: every record is in
the store exactly once, for the RabbitMQ, MQTT, Redis streams and file source kinds.

One scenario (`killed_and_restarted`) serves every kind, as the NATS test
(`tests/sources/test_jetstream.py`) runs it: readings are published (or files dropped),
a first `python -m tagloop --workspace ROOT sources run` process is killed with SIGKILL as
soon as enough events are committed, a second one is started and stopped with SIGINT once
every reading is stored and the broker holds nothing un-acknowledged. Each reading has its
own time, so ``count(*) == count(DISTINCT time) == N`` means none lost, none twice.

What differs per kind is in its `Feed`: how readings are published, whether they are all
published up front or paced while the runs go (and some while no run is up), and how to
see that the broker has nothing left un-acknowledged. Where the broker cannot say so while
the source is connected (RabbitMQ over AMQP, MQTT), a *fence* tells: a bad message
published after the last reading was stored. The source commits and acknowledges one
batch before it delivers the next, so once the fence's dead letter is committed every
reading was acknowledged; only the fence itself may still be held when the run stops.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tagloop.runtime import Runtime
from tests.conftest import write_workspace
from tests.sources.test_brokers import (  # noqa: F401 (fixtures, looked up by name)
    AMQP,
    BASE_MS,
    REDIS,
    mapping,
    mqtt_names,
    rabbit_names,
    reading,
)

BATCH = 200  # messages (rows) per commit: test_brokers.mapping()'s 10 would be 2,000 commits
POLL = 0.005  # s between looks at the store: short, so that the kill often lands between a
# commit and its acknowledgement (the case the record keys are for), not only after it
FENCE = b"fence: not JSON"


def source(head: str, entity: str, *, typed: bool = True, **settings: object) -> str:
    """A source file: ``head`` (name, kind, connection), then ``settings`` and the
    ``mapping:`` block of `test_brokers.mapping` (whose batch settings are replaced)."""
    _, mapping_key, block = mapping(entity, typed).partition("mapping:")
    lines = "".join(f"        {key}: {value}\n" for key, value in settings.items())
    return f"{head.rstrip()}\n{lines}        {mapping_key}{block}"


# --- the scenario --------------------------------------------------------------------------


class Store:
    """The workspace's SQLite store, read while the runs write to it."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def scalar(self, sql: str) -> Any:
        """The one value of ``sql`` (None without a row)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()

    def events(self) -> int:
        return int(self.scalar("SELECT count(*) FROM events"))

    def dead_letters(self) -> int:
        return int(self.scalar("SELECT count(*) FROM dead_letters"))


@dataclass
class Feed:
    """How one kind gets its readings and shows what it has not acknowledged."""

    name: str  # the source's name (sources/<name>.yaml)
    yaml: str
    publish: Callable[[range], None]  # publish readings n for n in the range
    total: int
    kill_at: int  # the first run is killed once this many events are committed
    before: int  # readings published before the first run starts
    down: int = 0  # readings published while no run is up
    chunk: int = 0  # > 0: the rest is published this many at a time while a run goes ...
    window: int = 0  # ... each chunk only while fewer than this many wait to be stored
    prime: bool = False  # the broker drops what is published before the run subscribed
    fence: Callable[[], None] | None = None  # publish the fence (module docstring)
    settled: Callable[[Store], bool] = lambda _: True  # polled during the second run
    leftover: Callable[[Store], int] = lambda _: 0  # held after the second run stopped
    held: list[str] = field(default_factory=list)  # what `leftover` saw (for the message)


class Run:
    """One `tagloop sources run` process, its output kept in a log file."""

    def __init__(self, root: Path, log: Path) -> None:
        self.log = log
        command = [sys.executable, "-m", "tagloop", "--workspace", str(root), "sources", "run"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self, sig: signal.Signals, seconds: float = 30) -> int | None:
        """Send ``sig`` and wait; None (and the process killed) when it did not exit."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return None


def killed_and_restarted(tmp_path: Path, feed: Feed) -> None:
    """Publish, run, SIGKILL mid-stream, publish more, run again; every reading once."""
    store_url = f"sqlite:///{tmp_path}/store.db"
    root = write_workspace(
        tmp_path / "ws", store_url, extra={f"sources/{feed.name}.yaml": feed.yaml}
    )
    Runtime.open(root)  # migrate before the clock starts
    store = Store(store_url)
    sent = 0  # readings 0 .. sent-1 are published

    def publish_up_to(end: int) -> None:
        nonlocal sent
        if end > sent:
            feed.publish(range(sent, end))
            sent = end

    def wait_until(condition: Callable[[], bool], what: str, run: Run, feed_up_to: int = 0) -> None:
        """Poll ``condition``, publishing paced chunks meanwhile (up to ``feed_up_to``);
        fail when the run exits, or when nothing is stored for 30 s."""
        progress: tuple[int, int] | None = None
        deadline = 0.0
        while not condition():
            assert run.alive(), f"the run exited ({what}):\n{run.output()}"
            if (now := (store.events(), store.dead_letters())) != progress:
                progress, deadline = now, time.monotonic() + 30
            assert time.monotonic() < deadline, (
                f"nothing stored for 30 s waiting until {what}: {store.events()} events "
                f"stored, {sent} readings published\n{run.output()}"
            )
            if feed.chunk and sent < feed_up_to and store.events() >= sent - feed.window:
                publish_up_to(min(feed_up_to, sent + feed.chunk))
            time.sleep(POLL)

    try:
        publish_up_to(feed.before)
        first = Run(root, tmp_path / "first.log")
        try:
            if feed.prime:
                resend_at = 0.0

                def subscribed() -> bool:
                    # Until the run subscribed, the broker drops reading 0; its copies are
                    # one record (same topic and payload), so sending it again is harmless.
                    nonlocal resend_at
                    if time.monotonic() >= resend_at:
                        feed.publish(range(1))
                        resend_at = time.monotonic() + 0.25
                    return store.events() > 0

                wait_until(subscribed, "the first run subscribed (reading 0 stored)", first)
                sent = max(sent, 1)
            wait_until(
                lambda: store.events() >= feed.kill_at,
                f"{feed.kill_at} events are committed",
                first,
                feed_up_to=feed.total - feed.down,
            )
        finally:
            outcome = first.stop(signal.SIGKILL, 10)
        assert outcome == -signal.SIGKILL, f"the first run ended with {outcome}"
        at_kill = store.events()
        assert feed.kill_at <= at_kill < feed.total, f"not killed mid-way ({at_kill} stored)"

        # While no run is up, the broker (or the folder) keeps what comes.
        publish_up_to(sent + feed.down)
        # Whatever was committed and not acknowledged comes back; its record key makes it
        # a duplicate, not a second event. A file is read on from its committed line.
        second = Run(root, tmp_path / "second.log")
        try:
            wait_until(
                lambda: store.events() >= feed.total,
                "every reading is stored",
                second,
                feed_up_to=feed.total,
            )
            if feed.fence is not None:
                feed.fence()
                wait_until(lambda: store.dead_letters() > 0, "the fence is committed", second)
            wait_until(lambda: feed.settled(store), "nothing is left un-acknowledged", second)
        finally:
            outcome = second.stop(signal.SIGINT)
        assert outcome is not None, f"the second run did not stop on SIGINT:\n{second.output()}"
        assert sent == feed.total
        left = feed.leftover(store)
        assert left == 0, f"{left} message(s) left un-acknowledged: {feed.held[:5]}"
        # Every reading once: each has its own time, and there are exactly as many events.
        assert store.events() == feed.total, f"{store.events() - feed.total} duplicates"
        assert int(store.scalar("SELECT count(DISTINCT time) FROM events")) == feed.total
        assert int(store.scalar("SELECT min(time) FROM events")) == BASE_MS * 1000
        last = (BASE_MS + (feed.total - 1) * 1000) * 1000  # stored in microseconds
        assert int(store.scalar("SELECT max(time) FROM events")) == last
        # Nothing else went to the dead letters; the fence once, however often it came.
        assert store.dead_letters() == (0 if feed.fence is None else 1)
    finally:
        store.engine.dispose()


# --- RabbitMQ ------------------------------------------------------------------------------


def rabbitmq_feed(tmp_path: Path, name: str) -> Feed:
    import aio_pika

    async def declare(channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
        # As the source declares them: published before it first starts, nothing is lost.
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(name, durable=True)
        await queue.bind(exchange, routing_key="vibration.#")
        return queue

    async def publish(numbers: range) -> None:
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()  # publisher confirms: each is awaited
            await declare(channel)
            exchange = await channel.get_exchange(name)
            for start in range(numbers.start, numbers.stop, 500):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            # Half carry a message id (the key), half none (a body hash).
                            aio_pika.Message(reading(n), message_id=f"m-{n}" if n % 2 else None),
                            routing_key=f"vibration.line{n % 3}",
                        )
                        for n in range(start, min(start + 500, numbers.stop))
                    )
                )

    async def fence() -> None:
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(name)
            await exchange.publish(
                aio_pika.Message(FENCE, message_id="fence"), routing_key="vibration.fence"
            )

    async def left_in_queue() -> list[bytes]:
        """Once the run's consumer is gone, and with it every message it held
        un-acknowledged back in the queue, what the queue holds."""
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            async with asyncio.timeout(30):
                while True:
                    queue = await channel.declare_queue(name, passive=True)
                    if not queue.declaration_result.consumer_count:
                        break
                    await asyncio.sleep(0.05)
            bodies = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                bodies.append(message.body)
            return bodies

    def leftover(feed: Feed) -> int:
        feed.held = [repr(body[:80]) for body in asyncio.run(left_in_queue()) if body != FENCE]
        return len(feed.held)

    head = f"""
        name: amqp_vibration
        kind: rabbitmq
        url: {AMQP}
        queue: {name}
        exchange: {name}
        exchange_type: topic
        routing_key: "vibration.#"
    """
    total = 12_000  # slower than the others: some 1,700 a second here
    feed = Feed(
        name="amqp_vibration",
        yaml=source(head, "device", batch_size=BATCH, max_wait_ms=20),
        publish=lambda numbers: asyncio.run(publish(numbers)),
        total=total,
        kill_at=total // 5,
        before=total,
        fence=lambda: asyncio.run(fence()),
    )
    feed.leftover = lambda _: leftover(feed)
    return feed


# --- MQTT ----------------------------------------------------------------------------------


def mqtt_feed(tmp_path: Path, prefix: str) -> Feed:
    """Paced: Mosquitto keeps at most ``max_queued_messages`` (default 1000) QoS 1
    messages per session, the un-acknowledged ones in flight included when the client is
    away, and silently drops the rest (docs/sources-brokers.md); and it sends a client at
    most ``max_inflight_messages`` (default 20) un-acknowledged ones, so the source, which
    acknowledges after the commit, gets some 20 messages per ``max_wait_ms``. The readings
    are sent in chunks of 100, each only while fewer than 300 wait to be stored, and 300
    while no run is up: at most 700 are ever held for the session, so none may be dropped
    and every one must be stored exactly once. The session does not exist before the first run
    subscribes: reading 0 is sent until it is stored. After the second run stopped, a
    client resuming the session must get nothing again (but the fence) before a marker
    published once it subscribed."""
    import zmqtt

    topic = f"{prefix}/plant1/device/{{device}}/vibration"
    client_id = f"{prefix}-reader"

    async def publish(numbers: range) -> None:
        client = zmqtt.MQTTClient("127.0.0.1", 1883, version="5.0")
        async with client:
            for n in numbers:
                await client.publish(
                    topic.format(device=f"D-{n % 5}"), reading(n), qos=zmqtt.QoS.AT_LEAST_ONCE
                )

    async def fence() -> None:
        client = zmqtt.MQTTClient("127.0.0.1", 1883, version="5.0")
        async with client:
            await client.publish(topic.format(device="fence"), FENCE, qos=zmqtt.QoS.AT_LEAST_ONCE)

    async def resent(feed: Feed) -> int:
        """What the session still holds: the messages sent again to a client resuming it,
        before a marker published once it subscribed (the broker keeps their order). They
        are acknowledged as they come: Mosquitto sends no more than ``max_inflight_messages``
        (20) un-acknowledged ones, and the marker would wait behind them."""
        reader = zmqtt.MQTTClient(
            "127.0.0.1",
            1883,
            client_id=client_id,
            clean_session=False,
            session_expiry_interval=60,
            version="5.0",
        )
        marker = topic.format(device="marker")
        async with reader:
            pattern = f"{prefix}/+/device/+/vibration"
            async with reader.subscribe(pattern, qos=zmqtt.QoS.AT_LEAST_ONCE) as subscription:
                publisher = zmqtt.MQTTClient("127.0.0.1", 1883, version="5.0")
                async with publisher:
                    await publisher.publish(marker, b"marker", qos=zmqtt.QoS.AT_LEAST_ONCE)
                async with asyncio.timeout(30):
                    while (message := await subscription.get_message()).topic != marker:
                        if message.payload != FENCE:
                            feed.held.append(f"{message.topic}: {message.payload[:80]!r}")
        return len(feed.held)

    head = f"""
        name: mqtt_vibration
        kind: mqtt
        url: mqtt://127.0.0.1:1883
        client_id: {client_id}
        topics:
          "{prefix}/+/device/{{device_id}}/vibration": vibration
    """
    total = 6_000
    feed = Feed(
        name="mqtt_vibration",
        yaml=source(
            head, "meta.segments.device_id", typed=False, batch_size=BATCH // 2, max_wait_ms=20
        ),
        publish=lambda numbers: asyncio.run(publish(numbers)),
        total=total,
        kill_at=total // 3,
        before=0,
        down=300,
        chunk=100,
        window=300,
        prime=True,
        fence=lambda: asyncio.run(fence()),
    )
    feed.leftover = lambda _: asyncio.run(resent(feed))
    return feed


# --- Redis streams -------------------------------------------------------------------------


def redis_feed(tmp_path: Path, stream: str) -> Feed:
    from redis.asyncio import Redis

    group = "tagloop-redis_vibration"

    async def publish(numbers: range) -> None:
        client = Redis.from_url(REDIS)
        for start in range(numbers.start, numbers.stop, 1000):
            async with client.pipeline(transaction=False) as pipe:
                for n in range(start, min(start + 1000, numbers.stop)):
                    pipe.xadd(stream, {"payload": reading(n), "origin": "plc-1"})
                await pipe.execute()
        await client.aclose()

    async def pending() -> int:
        """Entries the group read and did not acknowledge, and entries it did not read."""
        client = Redis.from_url(REDIS)
        try:
            (info,) = await client.xinfo_groups(stream)
            summary = await client.xpending(stream, group)
        finally:
            await client.aclose()
        return int(summary["pending"]) + int(info.get("lag") or 0)

    head = f"""
        name: redis_vibration
        kind: redis
        url: {REDIS}
        streams: ["{stream}"]
        field: payload
    """
    total = 20_000
    return Feed(
        name="redis_vibration",
        yaml=source(head, "device", batch_size=BATCH, max_wait_ms=20),
        publish=lambda numbers: asyncio.run(publish(numbers)),
        total=total,
        kill_at=total // 5,
        before=total,
        settled=lambda _: asyncio.run(pending()) == 0,
        leftover=lambda _: asyncio.run(pending()),
    )


# --- files ---------------------------------------------------------------------------------


def file_feed(tmp_path: Path, _: None) -> Feed:
    """Files of 1,000 readings, JSONL and CSV in turn, appear in a watched folder (each
    written aside and renamed into place, as a producer should): three before the first
    run, then while the runs go, two while no run is up."""
    drop = tmp_path / "ws" / "drop"
    written: list[Path] = []

    def publish(numbers: range) -> None:
        drop.mkdir(parents=True, exist_ok=True)
        for start in range(numbers.start, numbers.stop, 1000):
            rows = [orjson.loads(reading(n)) for n in range(start, min(start + 1000, numbers.stop))]
            if (start // 1000) % 2:
                text = io.StringIO()
                writer = csv.DictWriter(text, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
                path, body = drop / f"readings-{start:06d}.csv", text.getvalue().encode()
            else:
                path = drop / f"readings-{start:06d}.jsonl"
                body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
            aside = drop / f".{path.name}.part"
            aside.write_bytes(body)
            os.replace(aside, path)
            written.append(path)

    def settled(store: Store) -> bool:
        """Every file is in the committed checkpoint, read to its end."""
        position = store.scalar(
            "SELECT position FROM source_checkpoints WHERE source = 'file_vibration'"
        )
        files = orjson.loads(position or "{}").get("files", {})
        return all(files.get(str(path), {}).get("complete") for path in written)

    head = """
        name: file_vibration
        kind: file
        path: drop/readings-*
        every: 200ms
    """
    total = 20_000
    return Feed(
        name="file_vibration",
        yaml=source(head, "device", batch_size=BATCH),
        publish=publish,
        total=total,
        kill_at=6_100,  # mid-file (files of 1,000 readings)
        before=3_000,
        down=2_000,
        chunk=1_000,
        window=3_000,
        settled=settled,
    )


# --- the tests -----------------------------------------------------------------------------

FEEDS: dict[str, tuple[Callable[[Path, Any], Feed], str | None]] = {
    # kind: (its feed, the fixture naming its queue, topics or stream)
    "rabbitmq": (rabbitmq_feed, "rabbit_names"),
    "mqtt": (mqtt_feed, "mqtt_names"),
    "redis": (redis_feed, "redis_stream"),
    "file": (file_feed, None),
}


@pytest.fixture
def feed(request: pytest.FixtureRequest, tmp_path: Path) -> Feed:
    """The kind's feed; its fixture requires its server (skip, or fail under CI=true)
    and cleans up after the test."""
    build, fixture = FEEDS[request.param]
    return build(tmp_path, request.getfixturevalue(fixture) if fixture else None)


@pytest.mark.slow
@pytest.mark.parametrize("feed", list(FEEDS), indirect=True)
def test_killed_mid_stream_then_restarted_stores_every_record_exactly_once(
    tmp_path: Path, feed: Feed
) -> None:
    killed_and_restarted(tmp_path, feed)
