"""How fast the console's review queue answers on a large queue (issue 8: p95 < 300 ms;
tables page and filter on the server whatever their size).

A workspace on SQLite (or ``--database`` PostgreSQL) gets ``--items`` review items of
customers over four tags, written straight into the store (what months of proposals under
a ``review: all`` policy leave: most pending, some decided), created over 30 days. Then the
queue page ``/reviews`` is requested in-process with its filters, as the overview's count.

    .venv/bin/python -m bench.review_queue                     # 300,000 items, to docs
    .venv/bin/python -m bench.review_queue --items 20000 --requests 10 --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from bench.common import machine, record
from bench.console import measure, timing_table
from tagloop import logs
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store.tables import review_items
from tagloop.timeutil import now_us
from tagloop.workspace.scaffold import scaffold

DAY = 86_400_000_000
NAMES = ["上海客户", "北京客户", "高端客户", "普通客户"]
TAGS = """\
tags:
  - {name: 上海客户, entity: customer, rule: "city == '上海'", review: all}
  - {name: 北京客户, entity: customer, rule: "city == '北京'", review: all}
  - {name: 高端客户, entity: customer, rule: "客户等级 == '高端'", review: all}
  - {name: 普通客户, entity: customer, rule: "客户等级 == '普通'", review: all}
"""


def workspace(root: Path, url: str) -> Path:
    """The scaffold of ``tagloop init`` (customers) with four reviewed tags."""
    scaffold(root, "bench", "Asia/Shanghai", url)
    for old in (root / "tags").glob("*.yaml"):
        old.unlink()
    (root / "tags" / "reviewed.yaml").write_text(TAGS, encoding="utf-8")
    return root


def fill(rt: Runtime, items: int) -> None:
    """``items`` review items, 90 % pending, oldest first, in chunks of 10,000."""
    now = now_us()
    for start in range(0, items, 10_000):
        rows = [
            {
                "entity_type": "customer",
                "entity_id": f"C-{i // 4:07d}",
                "tag": NAMES[i % 4],
                "version": 1,
                "source": "rule:1",
                "value": True,
                "confidence": 1.0,
                "evidence": {"city": "上海", "客户等级": "高端"},
                "policy": "all",
                "status": "approved" if i % 10 == 0 else "pending",
                "created_at": now - 30 * DAY + i * (30 * DAY // items),
            }
            for i in range(start, min(items, start + 10_000))
        ]
        with rt.db.write() as conn:
            conn.execute(review_items.insert(), rows)


def pages(items: int) -> dict[str, str]:
    middle = f"C-{items // 8:07d}"
    return {
        "queue (pending, oldest first)": "/reviews",
        "a later page (after=...)": f"/reviews?after={items // 2}",
        "by tag": "/reviews?tag=" + quote("上海客户"),
        "by entity type": "/reviews?entity_type=customer",
        "waiting longer than 20 days": "/reviews?older_than=20d",
        "waiting less than 2 days": "/reviews?newer_than=2d",
        "one entity id": f"/reviews?entity_id={middle}",
        "all statuses": "/reviews?status=all",
        "overview (counts pending)": "/overview/live",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    logs.configure(level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'tagloop.db'}"
        rt = Runtime.open(workspace(Path(tmp) / "ws", url))
        try:
            started = time.perf_counter()
            fill(rt, args.items)
            print(f"{args.items:,} review items written in {time.perf_counter() - started:.1f} s")
            with rt.db.write() as conn:
                made = key_store.create(conn, "bench", ["reviewer"], now_us())
                key_store.set_limits(conn, made.prefix, 1e9, 1_000_000_000)
            targets = pages(args.items)
            timings = asyncio.run(measure(rt, targets, made.secret, args.requests, warmup=2))
            dialect = rt.db.dialect
        finally:
            rt.close()
    table = timing_table(timings, targets, first="request")
    print("\n".join(table))
    if args.no_record:
        return
    record(
        f"review-queue-{dialect}",
        "\n".join(
            [
                f"## Console: the review queue on {args.items:,} items ({dialect}, issue 8)",
                "",
                f"{args.items:,} review items of four tags (90 % pending) created over 30 days, "
                "written straight into the store; each request of the queue page in-process "
                f"(httpx over ASGI) with a reviewer's key, {args.requests} timed rounds after "
                "two of warm-up.",
                "",
                f"Command: `.venv/bin/python -m bench.review_queue --items {args.items} "
                f"--requests {args.requests}`. Machine: {machine()}. "
                f"Measured {time.strftime('%Y-%m-%d')}.",
                "",
                *table,
            ]
        ),
    )


if __name__ == "__main__":
    main()
