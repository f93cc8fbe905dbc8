"""Sustained ingestion through ``POST /v1/events`` (batches of 500), SQLite and PostgreSQL.

The server runs as its own process (``tagloop serve``); this process is the client. Bodies
are generated and serialised before the clock starts, so the client spends its time on
HTTP only. Afterwards every event is checked to be in the store.

    .venv/bin/python bench/ingest.py                 # both backends, results to docs
    .venv/bin/python bench/ingest.py --events 100000 --backend sqlite --no-record
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa

from bench.common import Server, machine, record

WORKSPACE = {
    "tagloop.yaml": "name: bench\ntimezone: Asia/Shanghai\ndatabase: '{database}'\n",
    "entities/customer.yaml": """
        name: customer
        fields:
          city: string
          level: string
          spend: number
        events:
          order:
            properties: {amount: number, quantity: integer, sku: string}
    """,
    "tags/tags.yaml": """
        tags:
          - {name: big_spender, entity: customer, rule: spend >= 5000}
          - {name: shanghai, entity: customer, rule: "city == '上海'"}
          - {name: gold, entity: customer, rule: "level in ['gold', 'platinum']"}
          - {name: active, entity: customer, rule: event_count >= 5}
          - {name: sh_gold, entity: customer, rule: "city == '上海' and level == 'gold'"}
    """,
}
CITIES = ["上海", "北京", "杭州", "深圳", "广州", "成都"]
LEVELS = ["bronze", "silver", "gold", "platinum"]


def make_workspace(root: Path, database: str) -> Path:
    for name, text in WORKSPACE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("{database}", database), encoding="utf-8")
    return root


def batches(total: int, size: int, entities: int, seed: int = 7) -> list[bytes]:
    """Order events with a profile update in one of ten, spread over ``entities``."""
    rng = random.Random(seed)
    start = 1_700_000_000
    out = []
    for b in range(total // size):
        items = []
        for i in range(size):
            n = b * size + i
            event = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "type": "order",
                "entity": {"type": "customer", "id": f"C{rng.randrange(entities):07d}"},
                "time": start + n,
                "properties": {
                    "amount": round(rng.uniform(1, 500), 2),
                    "quantity": rng.randrange(1, 5),
                    "sku": f"SKU-{rng.randrange(5000)}",
                },
            }
            if n % 10 == 0:
                event["type"] = "identify"
                event["attributes"] = {
                    "city": rng.choice(CITIES),
                    "level": rng.choice(LEVELS),
                    "spend": rng.randrange(0, 10_000),
                }
                del event["properties"]
            items.append(event)
        out.append(orjson.dumps(items))
    return out


def run(database: str, events: int, concurrency: int, entities: int) -> dict[str, float]:
    bodies = batches(events, 500, entities)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp) / "ws", database)
        with Server(root) as server:
            import subprocess

            key = subprocess.run(
                [
                    str(Path(server.process.args[0])),
                    "--workspace",
                    str(root),
                    "keys",
                    "create",
                    "bench",
                    "--role",
                    "ingest",
                    "-q",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            latencies: list[float] = []
            lock = threading.Lock()
            queue = list(reversed(bodies))

            def worker() -> None:
                with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                    while True:
                        with lock:
                            if not queue:
                                return
                            body = queue.pop()
                        began = time.perf_counter()
                        response = client.post("/v1/events", content=body)
                        elapsed = time.perf_counter() - began
                        if response.status_code != 200:
                            raise RuntimeError(response.text)
                        with lock:
                            latencies.append(elapsed)

            started = time.perf_counter()
            threads = [threading.Thread(target=worker) for _ in range(concurrency)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
        engine = sa.create_engine(
            database.replace("postgresql://", "postgresql+psycopg://")
            if database.startswith("postgresql")
            else database
        )
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
        engine.dispose()
    if stored != len(bodies) * 500:
        raise RuntimeError(f"stored {stored} events, sent {len(bodies) * 500}")
    latencies.sort()
    return {
        "events": stored,
        "seconds": seconds,
        "rate": stored / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(len(latencies) * 0.95)] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def postgres_database() -> str:
    name = f"tagloop_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=1, help="runs per backend")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows = []
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else postgres_database()
                try:
                    result = run(url, args.events, args.concurrency, args.entities)
                finally:
                    if backend == "postgresql":
                        drop_postgres(url)
            print(
                f"{backend}: {result['rate']:,.0f} events/s ({result['events']:,} events in "
                f"{result['seconds']:.1f} s); request p50 {result['p50']:.1f} ms, "
                f"p95 {result['p95']:.1f} ms, p99 {result['p99']:.1f} ms"
            )
            runs.append(result)
        runs.sort(key=lambda r: r["rate"])
        median = runs[len(runs) // 2]
        rows.append((backend, median, runs[0]["rate"], runs[-1]["rate"]))
    if args.no_record:
        return
    table = [
        "| backend | events/s (median) | range | events per run | request p50 | p95 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, r, low, high in rows:
        table.append(
            f"| {backend} | {r['rate']:,.0f} | {low:,.0f} to {high:,.0f} | {r['events']:,} | "
            f"{r['p50']:.1f} ms | {r['p95']:.1f} ms | {r['p99']:.1f} ms |"
        )
    record(
        "ingest",
        "\n".join(
            [
                "## Ingestion: `POST /v1/events`, batches of 500",
                "",
                f"Command: `.venv/bin/python -m bench.ingest --events {args.events} --entities "
                f"{args.entities} --concurrency {args.concurrency} --repeat {args.repeat}`. "
                f"Machine: {machine()}.",
                f"Measured {time.strftime('%Y-%m-%d')}. "
                "Target (issue 2): 20,000 events/s on SQLite.",
                "",
                *table,
            ]
        ),
    )


if __name__ == "__main__":
    main()
