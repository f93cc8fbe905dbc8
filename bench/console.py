"""How fast each console page answers on the demo data (target, issue 8: p95 < 300 ms).

Pages are requested in-process (httpx over ASGI, no sockets: the figures are the server's
own work: authentication, the reads, rendering) with an API key of the operator role (no
PII: a page with personal data for a ``pii:read`` user costs one audit record more, see
the API overhead figures). Each page is requested ``--requests`` times after a warm-up,
pages interleaved round by round so that drift on a shared machine falls on all alike.

    make demo-workspace                                     # once (or `make run`)
    .venv/bin/python -m bench.console                       # results to docs
    .venv/bin/python -m bench.console --workspace DIR --requests 50 --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import func, select

from bench.common import machine, record
from tagloop import logs
from tagloop.api.app import create_app
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store.tables import entities, flow_runs, model_scores, tag_assignments
from tagloop.timeutil import now_us

TARGET_MS = 300.0


def pages(rt: Runtime) -> dict[str, str]:
    """The pages to time: one of each kind, on the busiest entity and the latest run."""
    with rt.db.read() as conn:
        busiest = conn.execute(
            select(entities.c.id)
            .where(entities.c.type == "customer")
            .order_by(entities.c.event_count.desc())
            .limit(1)
        ).scalar()
        tag = conn.execute(
            select(tag_assignments.c.tag)
            .where(
                tag_assignments.c.entity_type == "customer", tag_assignments.c.entity_id == busiest
            )
            .limit(1)
        ).scalar()
        run = conn.execute(
            select(flow_runs.c.id).order_by(flow_runs.c.created_at.desc()).limit(1)
        ).scalar()
        total = conn.execute(select(func.count()).select_from(entities)).scalar()
        # A subscriber the churn model scored (after `tagloop models score churn`), if any.
        scored = conn.execute(
            select(model_scores.c.entity_type, model_scores.c.entity_id)
            .order_by(model_scores.c.score.desc())
            .limit(1)
        ).first()
    print(f"{total:,} entities; busiest customer {busiest}, its tag {tag}, latest run {run}")
    found = {
        "sign-in": "/login",
        "overview": "/",
        "overview (live fragment)": "/overview/live",
        "tag catalogue": "/tags",
        "tag catalogue, search 客户": "/tags?q=" + quote("客户"),
        "tag catalogue, by coverage": "/tags?sort=coverage&order=desc",
        "entity search": "/entities",
        "entity profile": f"/entities/customer/{quote(str(busiest))}",
        "why it has a tag": f"/entities/customer/{quote(str(busiest))}/why/{quote(str(tag))}",
        **(
            {"entity profile with model scores": f"/entities/{scored[0]}/{quote(scored[1])}"}
            if scored is not None
            else {}
        ),
        "flows": "/flows",
    }
    first_flow = next(iter(rt.workspace.flows), None)
    if first_flow is not None:
        found["flow definition and runs"] = f"/flows/{quote(first_flow)}"
    if run is not None:
        found["flow run trace"] = f"/runs/{run}"
    found["sources"] = "/sources"
    found["review queue"] = "/reviews"
    found["a tag with its rule editor"] = f"/tags/{quote(str(tag))}"
    found["the holders of a tag"] = f"/entities?type=customer&tag={quote(str(tag))}"
    return found


def actions(rt: Runtime, tag: str) -> dict[str, tuple[str, dict[str, str]]]:
    """The rule editor's calls as one types and previews (POST, JSON): the tag's own rule,
    checked and previewed on every customer."""
    rule = rt.workspace.tags[tag].spec.rule or ""
    path = f"/v1/tags/{quote(tag)}"
    return {
        "rule editor: check a draft": (f"{path}/draft", {"rule": rule}),
        "rule editor: preview a draft": (f"{path}/preview", {"rule": rule}),
    }


Target = str | tuple[str, dict[str, str]]  # a page (GET), or a call (POST path, JSON body)


async def measure(
    rt: Runtime, targets: Mapping[str, Target], key: str, requests: int, warmup: int
) -> dict[str, list[float]]:
    app = create_app(rt)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}", "Accept-Language": "zh-CN,zh;q=0.9"}
    timings: dict[str, list[float]] = {name: [] for name in targets}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=headers
    ) as client:
        for round_number in range(warmup + requests):
            for name, target in targets.items():
                started = time.perf_counter()
                if isinstance(target, str):
                    path, response = target, await client.get(target)
                else:
                    path, response = target[0], await client.post(target[0], json=target[1])
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
                if round_number >= warmup:
                    timings[name].append(elapsed)
    return timings


def where(target: Target) -> str:
    return target if isinstance(target, str) else f"POST {target[0]}"


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def timing_table(
    timings: dict[str, list[float]], targets: Mapping[str, Target], first: str = "page"
) -> list[str]:
    """The figures as a Markdown table, each request against the 300 ms target."""
    table = [
        f"| {first} | p50 (ms) | p95 (ms) | p99 (ms) | target p95 | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, values in timings.items():
        p95 = quantile(values, 0.95)
        verdict = "met" if p95 < TARGET_MS else "**missed**"
        table.append(
            f"| {name} (`{where(targets[name])}`) | {statistics.median(values):.1f} | {p95:.1f} "
            f"| {quantile(values, 0.99):.1f} | < {TARGET_MS:.0f} ms | {verdict} |"
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("demo-workspace"))
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument(
        "--actions",
        default="VIP",
        help="the tag whose rule the editor's calls check and preview ('' for none)",
    )
    args = parser.parse_args()
    logs.configure(level="WARNING")  # a log line per request would be part of what is timed
    rt = Runtime.open(args.workspace)
    try:
        with rt.db.write() as conn:
            made = key_store.create(conn, "bench-console", ["operator"], now_us())
            # The bench asks faster than any person: lift the key's rate limit.
            key_store.set_limits(conn, made.prefix, 1e9, 1_000_000_000)
        targets: dict[str, Target] = {**pages(rt)}
        if args.actions:
            targets.update(actions(rt, args.actions))
        try:
            timings = asyncio.run(measure(rt, targets, made.secret, args.requests, args.warmup))
        finally:
            with rt.db.write() as conn:
                key_store.revoke(conn, made.prefix, now_us())
    finally:
        rt.close()
    table = timing_table(timings, targets)
    print("\n".join(table))
    if args.no_record:
        return
    record(
        "console",
        "\n".join(
            [
                "## Console: time to answer each page (issue 8)",
                "",
                "Each page of the web console requested in-process (httpx over ASGI) on the "
                "demo workspace of `make run` (the full Online Retail file and the Telco "
                "subscribers), with an operator's API key and `Accept-Language: zh-CN`; "
                f"{args.requests} timed requests per page after {args.warmup} warm-up rounds, "
                "pages interleaved. The profile is the customer with the most events.",
                "",
                f"Command: `.venv/bin/python -m bench.console --requests {args.requests}`. "
                f"Machine: {machine()}.",
                f"Measured {time.strftime('%Y-%m-%d')}. Target (issue 8): p95 under 300 ms.",
                "",
                *table,
            ]
        ),
    )


if __name__ == "__main__":
    main()
