"""Sustained events/s per source kind, and publish-to-tag-change latency, SQLite and PostgreSQL.

Each source runs in this process as ``tagloop sources run`` runs it (`SourceRunner`, commits
straight through the ingestor, no group-commit thread), into a fresh store: a SQLite file,
or a PostgreSQL database created for the run and dropped after it. The workspace has one
tag on the devices (``last(vibration.mm_s) > 50``), so every commit also evaluates rules.

- ``nats``: N messages published to a fresh JetStream stream before the clock starts;
  timed from the source's start to the commit of the last event.
- ``nats-serve``: the same through ``tagloop serve`` (the source in the sources process,
  commits in the writer process: two cores), timed from the first stored event to the last.
- ``table``: N rows in a fresh table of database ``test``, read incrementally by an id
  cursor; ``run_once()`` timed.
- ``mqtt``: the source subscribed, N QoS 1 messages published (by another process) as
  fast as Mosquitto takes them; timed from the first publish to the last commit.
- ``latency``: NATS, published by another process at a steady rate (default 1,000/s) with
  ``time.time_ns()`` in each payload; every event flips its device's tag (values alternate
  100/0 per device), and the latency is from that publish time to the return of the commit
  that stored the event and its tag change. Run with the source's ``max_wait_ms`` at 10
  (its default) and at 50 (``--max-wait-ms``).

Every run checks that each event was stored exactly once (the store's count is N).

    .venv/bin/python -m bench.sources                        # everything, results to docs
    .venv/bin/python -m bench.sources --events 5000 --backend sqlite --no-record
    .venv/bin/python -m bench.sources --only latency --seconds 10 --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import nats
import orjson
import psycopg
import sqlalchemy as sa
from nats.js.api import StreamConfig

from bench.common import RESULTS, machine, record
from tagloop import logs
from tagloop.ingest.pipeline import CommitResult, Part
from tagloop.runtime import Runtime
from tagloop.sources.kinds import kinds
from tagloop.sources.runner import SourceRunner

NATS = "nats://127.0.0.1:4222"
MQTT = ("127.0.0.1", 1883)
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_TABLES = "postgresql://postgres@127.0.0.1:5432/test"
DEVICES = 10_000
TARGETS = {"nats": 20_000, "nats-serve": 20_000, "table": 20_000, "mqtt": 5_000}
P95_TARGET_MS = 50.0
LABELS = {
    "nats": "NATS JetStream",
    "nats-serve": "NATS JetStream, in `tagloop serve`",
    "table": "PostgreSQL table",
    "mqtt": "MQTT (QoS 1)",
}

WORKSPACE = {
    "tagloop.yaml": "name: bench\ntimezone: Asia/Shanghai\ndatabase: '{database}'\n",
    "entities/device.yaml": """
        name: device
        fields:
          model: string
        events:
          vibration:
            properties: {mm_s: number, sent: integer, n: integer}
    """,
    "tags/tags.yaml": """
        tags:
          - {name: vibrating, entity: device, rule: "last(vibration.mm_s) > 50"}
    """,
}
MAPPING = """
    mapping:
      type: vibration
      entity_type: device
      entity_id: device
      time: at
      epoch: s
      properties: {mm_s: mm_s, sent: sent, n: n}
"""


# --- workspace and stores --------------------------------------------------------------------


def write_workspace(root: Path, database: str, name: str, source: str) -> Path:
    files = {**WORKSPACE, f"sources/{name}.yaml": textwrap.dedent(source)}
    for path_name, text in files.items():
        path = root / path_name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = textwrap.dedent(text).replace("{database}", database)
        path.write_text(body, encoding="utf-8")
    return root


@contextmanager
def store(backend: str) -> Iterator[str]:
    """A fresh store: a SQLite file in a temporary directory, or a PostgreSQL database."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/store.db"
        return
    name = f"tagloop_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stored(rt: Runtime, source: str, where: str = "") -> tuple[int, int]:
    """(events, distinct messages) the source stored: each message has its own ``n``."""
    n = "json_extract(properties, '$.n')" if rt.db.is_sqlite else "properties->>'n'"
    sql = f"SELECT count(*), count(DISTINCT {n}) FROM events WHERE source = :s {where}"
    with rt.db.read() as conn:
        total, distinct = conn.execute(sa.text(sql), {"s": source}).one()
    return int(total), int(distinct)


def once(total: int, distinct: int) -> int:
    """``total``, after checking that no message was stored twice."""
    if total != distinct:
        raise RuntimeError(f"{total - distinct} messages were stored more than once")
    return total


class Commits:
    """Wraps ``rt.ingestor.commit_many``: when the last commit returned, how many events
    and tag changes it stored, and (``sent``) each event's publish-to-commit latency."""

    def __init__(self, rt: Runtime, sent: bool = False) -> None:
        self.original = rt.ingestor.commit_many
        self.sent = sent
        self.last = 0.0  # perf_counter when the last commit returned
        self.last_wall = 0.0  # time.time() of the same
        self.calls = 0
        self.events = 0
        self.changes = 0
        self.seconds = 0.0  # spent inside commit_many
        self.samples: list[tuple[int, int]] = []  # (publish ns, commit returned ns)
        self.durations: list[float] = []  # seconds per commit_many call
        rt.ingestor.commit_many = self  # type: ignore[method-assign]

    def __call__(self, parts: list[Part]) -> list[CommitResult]:
        began = time.perf_counter()
        results = self.original(parts)
        done_ns = time.time_ns()
        self.last = time.perf_counter()
        self.last_wall = done_ns / 1e9
        self.seconds += self.last - began
        self.durations.append(self.last - began)
        self.calls += 1
        self.events += sum(r.accepted for r in results)
        self.changes += sum(len(r.tag_changes) for r in results)
        if self.sent:
            for part in parts:
                for event in part.events:
                    sent = (event.properties or {}).get("sent")
                    if sent is not None:
                        self.samples.append((int(sent), done_ns))
        return results


@dataclass
class Result:
    kind: str
    store: str
    events: int  # sent
    stored: int
    seconds: float
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.stored / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        check = "every event stored once" if self.stored == self.events else "NOT ALL STORED"
        return (
            f"{self.kind} -> {self.store}: {self.rate:,.0f} events/s ({self.stored:,} of "
            f"{self.events:,} in {self.seconds:.2f} s; {check}){self.note}"
        )


async def until(condition: Callable[[], bool], seconds: float, what: str, task: Any) -> None:
    """Poll ``condition``; fail after ``seconds`` or when the source task ended."""
    deadline = time.monotonic() + seconds
    while not condition():
        if task is not None and task.done():
            task.result()  # raises the source's exception
            raise RuntimeError(f"the source stopped before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting until {what}")
        await asyncio.sleep(0.005)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)


def reading(n: int, at: float, devices: int = DEVICES) -> bytes:
    return orjson.dumps(
        {
            "device": f"D-{n % devices:04d}",
            "mm_s": round(random.uniform(0, 100), 1),
            "at": at,
            "sent": 0,
            "n": n,
        }
    )


# --- NATS --------------------------------------------------------------------------------------


@contextmanager
def jetstream() -> Iterator[str]:
    """A fresh JetStream stream (subjects ``<name>.>``), deleted afterwards."""
    name = f"BENCH{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        client = await nats.connect(NATS, connect_timeout=5)
        await client.jetstream().add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        await client.close()

    async def delete() -> None:
        client = await nats.connect(NATS, connect_timeout=5)
        await client.jetstream().delete_stream(name)
        await client.close()

    asyncio.run(asyncio.wait_for(create(), 30))
    try:
        yield name
    finally:
        asyncio.run(asyncio.wait_for(delete(), 60))


async def nats_publish(subject: str, payloads: list[bytes]) -> None:
    client = await nats.connect(NATS, connect_timeout=5)
    js = client.jetstream()
    for start in range(0, len(payloads), 1000):
        await asyncio.gather(
            *(js.publish(subject, body) for body in payloads[start : start + 1000])
        )
    await client.close()


def nats_source(stream: str, extra: str = "") -> str:
    return f"""
        name: vibration
        kind: nats
        url: {NATS}
        stream: {stream}
        subjects: ["{stream}.vibration"]
        {extra}
    """ + textwrap.dedent(MAPPING).replace("\n", "\n        ")


def run_nats(backend: str, events: int, batch_size: int | None = None) -> Result:
    at = int(time.time()) - 3600
    payloads = [reading(n, at + n // 1000) for n in range(events)]
    with jetstream() as stream, store(backend) as url, tempfile.TemporaryDirectory() as tmp:
        extra = f"batch_size: {batch_size}" if batch_size else ""
        rt = Runtime.open(write_workspace(Path(tmp), url, "vibration", nats_source(stream, extra)))
        try:
            published = time.perf_counter()
            asyncio.run(asyncio.wait_for(nats_publish(f"{stream}.vibration", payloads), 600))
            published = time.perf_counter() - published
            commits = Commits(rt)
            runner = SourceRunner(rt, rt.workspace.sources["vibration"])

            async def scenario() -> float:
                started = time.perf_counter()
                task = asyncio.create_task(runner.run_forever())
                try:
                    await until(
                        lambda: runner.total.written >= events,
                        events / 500 + 60,
                        "every event is committed",
                        task,
                    )
                finally:
                    await stop(task)
                return commits.last - started

            seconds = asyncio.run(scenario())
            total, distinct = stored(rt, "vibration")
        finally:
            rt.close()
    result = Result("nats", backend, events, once(total, distinct), seconds)
    result.note = (
        f"; {commits.calls:,} commits, {commits.seconds:.2f} s in commit_many; "
        f"published beforehand in {published:.1f} s"
    )
    return result


def run_nats_served(backend: str, events: int) -> Result:
    """NATS through `tagloop serve`: the source in the sources process, committing through
    the writer process (mapping and commits on two cores), as a deployment runs it. Timed
    from the first stored event to the last (the server's start-up left out)."""
    import socket
    import subprocess
    import sys

    at = int(time.time()) - 3600
    payloads = [reading(n, at + n // 1000) for n in range(events)]
    with jetstream() as stream, store(backend) as url, tempfile.TemporaryDirectory() as tmp:
        root = write_workspace(Path(tmp), url, "vibration", nats_source(stream))
        rt = Runtime.open(root)  # migrated before the server starts; used to count
        try:
            asyncio.run(asyncio.wait_for(nats_publish(f"{stream}.vibration", payloads), 600))
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            tagloop = str(Path(sys.executable).with_name("tagloop"))
            server = subprocess.Popen(
                [tagloop, "-w", str(root), "serve", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + events / 500 + 120
                first: tuple[float, int] | None = None
                while True:
                    assert server.poll() is None, "tagloop serve stopped"
                    assert time.monotonic() < deadline, "not every event was stored in time"
                    count = stored(rt, "vibration")[0]
                    if first is None and count:
                        first = (time.perf_counter(), count)
                    if count >= events:
                        break
                    time.sleep(0.05)
                assert first is not None
                seconds = time.perf_counter() - first[0]
            finally:
                server.terminate()
                server.wait(60)
            total, distinct = stored(rt, "vibration")
        finally:
            rt.close()
    result = Result(
        "nats-serve", backend, events - first[1], once(total, distinct) - first[1], seconds
    )
    result.note = f"; through tagloop serve (sources and writer processes), {first[1]:,} stored "
    result.note += "before the clock started"
    return result


# --- PostgreSQL table ------------------------------------------------------------------------


def run_table(backend: str, events: int) -> Result:
    table = f"bench_readings_{uuid.uuid4().hex[:8]}"
    at = time.time() - 3600
    with psycopg.connect(PG_TABLES, autocommit=True, connect_timeout=10) as pg:
        pg.execute(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, device text NOT NULL, "
            "mm_s double precision, at double precision NOT NULL, sent bigint, n bigint)"
        )
        try:
            with pg.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
                for n in range(events):
                    row = (n, f"D-{n % DEVICES:04d}", round(random.uniform(0, 100), 1))
                    copy.write_row((*row, at + n / 1000, 0, n))
            pg.execute(f"ANALYZE {table}")
            source = f"""
                name: readings
                kind: sql
                url: {PG_TABLES}
                table_mapping:
                  {table}: {{type: vibration, cursor: id}}
            """ + textwrap.dedent(MAPPING).replace("\n", "\n                ")
            with store(backend) as url, tempfile.TemporaryDirectory() as tmp:
                rt = Runtime.open(write_workspace(Path(tmp), url, "readings", source))
                try:
                    commits = Commits(rt)
                    runner = SourceRunner(rt, rt.workspace.sources["readings"])
                    started = time.perf_counter()
                    tally = runner.run_once()
                    seconds = time.perf_counter() - started
                    total, distinct = stored(rt, "readings")
                finally:
                    rt.close()
        finally:
            pg.execute(f"DROP TABLE IF EXISTS {table}")
    if tally.written != total:
        raise RuntimeError(f"the run says it wrote {tally.written}, the store has {total}")
    result = Result("table", backend, events, once(total, distinct), seconds)
    result.note = f"; {commits.calls:,} commits, {commits.seconds:.2f} s in commit_many"
    return result


# --- MQTT --------------------------------------------------------------------------------------


def mqtt_publisher(topic: str, events: int, window: int, out: Queue[Any]) -> None:
    """Another process: ``events`` QoS 1 messages, ``window`` awaiting their PUBACK at once."""
    import zmqtt

    async def flood() -> tuple[float, float]:
        at = int(time.time()) - 3600
        payloads = [reading(n, at + n // 1000) for n in range(events)]
        client = zmqtt.MQTTClient(MQTT[0], MQTT[1], version="5.0")
        async with client:
            first = time.time()
            for start in range(0, events, window):
                await asyncio.gather(
                    *(
                        client.publish(topic, body, qos=zmqtt.QoS.AT_LEAST_ONCE)
                        for body in payloads[start : start + window]
                    )
                )
            return first, time.time()

    out.put(asyncio.run(asyncio.wait_for(flood(), 600)))


async def end_mqtt_session(client_id: str) -> None:
    import zmqtt

    # A clean start with no expiry ends the source's persistent session at the broker.
    client = zmqtt.MQTTClient(
        MQTT[0], MQTT[1], client_id=client_id, clean_session=True, version="5.0"
    )
    async with client:
        pass


DROPPED = "$SYS/broker/publish/messages/dropped"


async def mosquitto_dropped(fresh: bool = False, seconds: float = 12) -> int | None:
    """Mosquitto's count of messages it dropped (queues full), from ``$SYS``: the retained
    value, or with ``fresh`` the first one published after the call (Mosquitto publishes it
    every ``sys_interval``, 10 s by default, when it changed; the retained one may predate
    the last drops), else the retained one. None when the broker does not publish it."""
    import zmqtt

    deadline = time.monotonic() + seconds
    retained: int | None = None
    async with (
        zmqtt.MQTTClient(MQTT[0], MQTT[1], version="5.0") as client,
        client.subscribe(DROPPED, qos=zmqtt.QoS.AT_MOST_ONCE) as subscription,
    ):
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(subscription.get_message(), max(0.1, left))
            except TimeoutError:
                break
            if message.retain and fresh:
                retained = int(message.payload)
                continue
            return int(message.payload)
    return retained


def run_mqtt(backend: str, events: int, window: int) -> Result:
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    topic = f"{prefix}/vibration"
    source = f"""
        name: telemetry
        kind: mqtt
        url: mqtt://{MQTT[0]}:{MQTT[1]}
        client_id: {prefix}-reader
        topics: ["{topic}"]
    """ + textwrap.dedent(MAPPING).replace("\n", "\n        ")
    ctx = multiprocessing.get_context("spawn")
    with store(backend) as url, tempfile.TemporaryDirectory() as tmp:
        rt = Runtime.open(write_workspace(Path(tmp), url, "telemetry", source))
        try:
            commits = Commits(rt)
            runner = SourceRunner(rt, rt.workspace.sources["telemetry"])

            async def scenario() -> tuple[float, float, int, int | None]:
                import zmqtt

                dropped_before = await mosquitto_dropped()
                if dropped_before is None:
                    print("  note: Mosquitto's $SYS dropped count is not available")
                task = asyncio.create_task(runner.run_forever())
                try:
                    # Probes until one is committed: the subscription is active then.
                    async with zmqtt.MQTTClient(MQTT[0], MQTT[1], version="5.0") as client:
                        for attempt in range(100):
                            body = orjson.dumps(
                                {
                                    "device": "D-probe",
                                    "mm_s": 0,
                                    "at": time.time(),
                                    "sent": 0,
                                    "n": -attempt,
                                }
                            )
                            await client.publish(topic, body, qos=zmqtt.QoS.AT_LEAST_ONCE)
                            try:
                                await until(lambda: runner.total.written > 0, 0.3, "probe", task)
                                break
                            except TimeoutError:
                                continue
                        else:
                            raise TimeoutError("the MQTT source did not start within 30 s")
                    probes = runner.total.written
                    out: Queue[Any] = ctx.Queue()
                    publisher = ctx.Process(
                        target=mqtt_publisher, args=(topic, events, window, out)
                    )
                    publisher.start()
                    first, last = await asyncio.to_thread(out.get, True, 600)
                    await asyncio.to_thread(publisher.join, 30)
                    # What Mosquitto dropped (its queue per client is bounded) never comes:
                    # wait until all arrived, or nothing arrived for 5 s.
                    seen, quiet = runner.total.read, time.monotonic()
                    deadline = time.monotonic() + events / 500 + 60
                    while runner.total.written < events + probes and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                        if runner.total.read != seen:
                            seen, quiet = runner.total.read, time.monotonic()
                        elif time.monotonic() - quiet > 5:
                            break
                finally:
                    await stop(task)
                dropped = None
                if dropped_before is not None and runner.total.written < events + probes:
                    after = await mosquitto_dropped(fresh=True)
                    dropped = None if after is None else after - dropped_before
                return first, last, probes, dropped

            first, last, probes, dropped = asyncio.run(scenario())
            total, distinct = stored(rt, "telemetry", "AND entity_id <> 'D-probe'")
        finally:
            rt.close()
            asyncio.run(asyncio.wait_for(end_mqtt_session(f"{prefix}-reader"), 30))
    seconds = commits.last_wall - first
    result = Result("mqtt", backend, events, once(total, distinct), seconds)
    result.note = (
        f"; published in {last - first:.2f} s ({events / (last - first):,.0f}/s, "
        f"{window} awaiting PUBACK), {commits.calls:,} commits"
    )
    if dropped is not None:
        result.note += f"; Mosquitto dropped {dropped:,} (its $SYS count)"
    result.extra = {"published": events / (last - first), "probes": probes}
    if dropped is not None:
        result.extra["dropped"] = dropped
    return result


# --- latency -----------------------------------------------------------------------------------


def paced_publisher(
    subject: str, rate: float, seconds: float, devices: int, out: Queue[Any]
) -> None:
    """Another process: messages at a steady ``rate``, each with its publish time (ns);
    message ``k`` is device ``k % devices`` with 100 and 0 alternating per device."""

    async def pace() -> tuple[int, float, int]:
        client = await nats.connect(NATS, connect_timeout=5)
        js = client.jetstream()
        total = int(rate * seconds)
        pending: list[asyncio.Future[Any]] = []
        first_ns = time.time_ns()
        began = time.perf_counter()
        for k in range(total):
            wait = began + k / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            now_ns = time.time_ns()
            body = orjson.dumps(
                {
                    "device": f"D-{k % devices:04d}",
                    "mm_s": 100.0 if (k // devices) % 2 == 0 else 0.0,
                    "at": round(now_ns / 1e9, 6),
                    "sent": now_ns,
                    "n": k,
                }
            )
            pending.append(asyncio.ensure_future(js.publish(subject, body)))
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - began
        await client.close()
        return total, elapsed, first_ns

    out.put(asyncio.run(asyncio.wait_for(pace(), seconds + 120)))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run_latency(
    backend: str, seconds: float, rate: float, devices: int, max_wait_ms: int
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with jetstream() as stream, store(backend) as url, tempfile.TemporaryDirectory() as tmp:
        source = nats_source(stream, f"max_wait_ms: {max_wait_ms}")
        rt = Runtime.open(write_workspace(Path(tmp), url, "vibration", source))
        try:
            commits = Commits(rt, sent=True)
            runner = SourceRunner(rt, rt.workspace.sources["vibration"])
            subject = f"{stream}.vibration"

            async def scenario() -> tuple[int, float, int]:
                task = asyncio.create_task(runner.run_forever())
                try:
                    probe = orjson.dumps(
                        {"device": "D-probe", "mm_s": 0, "at": time.time(), "sent": 0, "n": -1}
                    )
                    await nats_publish(subject, [probe])
                    await until(lambda: runner.total.written == 1, 30, "the probe is in", task)
                    out: Queue[Any] = ctx.Queue()
                    publisher = ctx.Process(
                        target=paced_publisher, args=(subject, rate, seconds, devices, out)
                    )
                    publisher.start()
                    published = await asyncio.to_thread(out.get, True, seconds + 150)
                    await asyncio.to_thread(publisher.join, 30)
                    await until(
                        lambda: runner.total.written >= published[0] + 1,
                        60,
                        "every event is committed",
                        task,
                    )
                finally:
                    await stop(task)
                return published  # type: ignore[no-any-return]

            total, elapsed, first_ns = asyncio.run(scenario())
            count, distinct = stored(rt, "vibration", "AND entity_id <> 'D-probe'")
        finally:
            rt.close()
    warm = first_ns + 1_000_000_000  # the first second is warm-up
    latencies = [(done - sent) / 1e6 for sent, done in commits.samples if sent >= warm]
    if count != total or distinct != total:
        raise RuntimeError(f"stored {count} events ({distinct} messages), published {total}")
    if commits.changes != total:
        print(f"  note: {commits.changes:,} tag changes for {total:,} events")
    return {
        "store": backend,
        "max_wait_ms": max_wait_ms,
        "events": total,
        "stored": count,
        "rate": total / elapsed,
        "changes": commits.changes,
        "commits": commits.calls,
        "p50": statistics.median(latencies),
        "p95": pct(latencies, 0.95),
        "p99": pct(latencies, 0.99),
        "max": max(latencies),
        "samples": len(latencies),
        "commit_p50": statistics.median(commits.durations) * 1000,
        "commit_p95": pct(commits.durations, 0.95) * 1000,
        "commit_max": max(commits.durations) * 1000,
    }


# --- report ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="per throughput run")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--only", default="nats,nats-serve,table,mqtt,latency", help="comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="latency run length")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency publish rate")
    parser.add_argument("--latency-devices", type=int, default=1000)
    parser.add_argument(
        "--max-wait-ms",
        default="10,50",
        help="the NATS source's max_wait_ms in the latency runs, comma-separated (10: default)",
    )
    parser.add_argument(
        "--nats-batch-size", type=int, help="the NATS source's batch_size (default: its own)"
    )
    parser.add_argument("--mqtt-window", type=int, default=100, help="publishes in flight")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    logs.configure(level="WARNING")
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = only - {"nats", "nats-serve", "table", "mqtt", "latency"}
    if unknown:
        parser.error(f"unknown --only {', '.join(sorted(unknown))}")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: list[Result] = []
    skipped: list[str] = []
    latencies: list[dict[str, Any]] = []
    for backend in backends:
        if "nats" in only:
            results.append(run_nats(backend, args.events, args.nats_batch_size))
            print(results[-1].line(), flush=True)
        if "nats-serve" in only:
            results.append(run_nats_served(backend, args.events))
            print(results[-1].line(), flush=True)
        if "table" in only:
            results.append(run_table(backend, args.events))
            print(results[-1].line(), flush=True)
        if "mqtt" in only:
            if "mqtt" in kinds():
                results.append(run_mqtt(backend, args.events, args.mqtt_window))
                print(results[-1].line(), flush=True)
            elif backend == backends[0]:
                skipped.append("mqtt: the `mqtt` source kind is not registered")
                print(f"skipped {skipped[-1]}")
        for wait in [int(w) for w in args.max_wait_ms.split(",")] if "latency" in only else []:
            lat = run_latency(backend, args.seconds, args.rate, args.latency_devices, wait)
            latencies.append(lat)
            print(
                f"latency -> {backend}, max_wait_ms {wait}: p50 {lat['p50']:.1f} ms, "
                f"p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms "
                f"at {lat['rate']:,.0f} "
                f"events/s ({lat['stored']:,} of {lat['events']:,} stored once, "
                f"{lat['changes']:,} tag changes, {lat['commits']:,} commits taking "
                f"p50 {lat['commit_p50']:.1f} ms, p95 {lat['commit_p95']:.1f} ms, "
                f"max {lat['commit_max']:.1f} ms)",
                flush=True,
            )
    if args.no_record:
        return
    table = [
        "| source kind | store | events | events/s | target | |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        target = TARGETS[r.kind]
        met = "met" if r.rate >= target and r.stored == r.events else "**missed**"
        events = f"{r.stored:,}" if r.stored == r.events else f"{r.stored:,} of {r.events:,}"
        table.append(
            f"| {LABELS[r.kind]} | {r.store} | {events} | {r.rate:,.0f} | {target:,} | {met} |"
        )
    latency_table = [
        "| latency, NATS -> committed tag change | store | `max_wait_ms` | events/s achieved "
        "| p50 | p95 | p99 | max | target p95 | |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for lat in latencies:
        met = "met" if lat["p95"] < P95_TARGET_MS else "**missed**"
        latency_table.append(
            f"| {lat['events']:,} events, {lat['changes']:,} tag changes | {lat['store']} | "
            f"{lat['max_wait_ms']} | {lat['rate']:,.0f} | {lat['p50']:.1f} ms | "
            f"{lat['p95']:.1f} ms | {lat['p99']:.1f} ms | {lat['max']:.1f} ms | "
            f"< {P95_TARGET_MS:.0f} ms | {met} |"
        )
    command = f".venv/bin/python -m bench.sources --events {args.events} --seconds {args.seconds:g}"
    if args.backend != "both":
        command += f" --backend {args.backend}"
    if args.nats_batch_size:
        command += f" --nats-batch-size {args.nats_batch_size}"
    if args.max_wait_ms != "10,50":
        command += f" --max-wait-ms {args.max_wait_ms}"
    if only != {"nats", "nats-serve", "table", "mqtt", "latency"}:
        command += f" --only {','.join(sorted(only))}"
    record(
        "sources",
        "\n".join(
            [
                "## Sources: events/s per kind, and publish-to-tag-change latency",
                "",
                "Each source runs in-process as `tagloop sources run` runs it (`SourceRunner`, "
                "default batch sizes) into a fresh store with one tag on the devices "
                "(`last(vibration.mm_s) > 50`); every run checks that each event was stored "
                "exactly once. NATS: the messages are in the stream before the clock starts, "
                "timed from the source's start to the last commit; in `tagloop serve`, the "
                "source runs in the sources process and commits in the writer process, "
                "timed from the first stored event to the last. Table: `run_once()` over a "
                "PostgreSQL table read by an id cursor. MQTT: QoS 1, published by another "
                "process while the source runs, timed from the first publish to the last "
                "commit. Latency: another process publishes to NATS at a steady rate, each "
                "event flipping its device's tag; from `time.time_ns()` in the payload to "
                "the return of the commit holding the event and its tag change (the first "
                "second left out as warm-up).",
                "",
                f"Command: `{command}`. Machine: {machine()}.",
                f"Measured {time.strftime('%Y-%m-%d')}. Targets (issue 5): 20,000 events/s from "
                "NATS and from a PostgreSQL table, 5,000/s from MQTT; p95 under 50 ms at "
                "1,000 events/s.",
                "",
                *table,
                *(["", *(f"Skipped: {s}." for s in skipped)] if skipped else []),
                "",
                *latency_table,
                "",
                ANALYSIS,
                analysis(),
            ]
        ),
    )


ANALYSIS = "<!-- sources-analysis: kept when the section is rewritten -->"


def analysis() -> str:
    """What was written below the tables of the recorded section (the profile's findings)."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    section = text.partition("<!-- sources:begin -->")[2].partition("<!-- sources:end -->")[0]
    return section.partition(ANALYSIS)[2].strip()


if __name__ == "__main__":
    main()
