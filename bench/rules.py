"""The rule engine benchmark (issue 3): streaming, batch per backend, and rule packages.

The workload (`bench/rules_workload.py`, seeded): 100,000 customers, 2,000,000 events
over 18 months, 200 tags mixing every construct of the rule language. Then:

1. *Preload*: the first events go into the SQLite store through the ordinary commit path
   but with no tags defined (fast), then the 200-tag workspace opens on that store, which
   records the tag versions and recomputes every tag in batch, and the engine's per-entity
   state is rebuilt for every entity (what a restarted server does lazily).
2. *Streaming*: the last ``--stream-events`` events (all of them with ``--stream-events
   0``) arrive as JSON bodies, as ``POST /v1/events`` receives them, in three consecutive
   segments with batches of 100, 2,000 and 500 events: parse, check, and commit with
   profile updates, rule evaluation and tag changes in one transaction. An event's latency
   runs from the moment its batch is handed over to the moment the commit returns.
3. *Batch*: every tag recomputed for every entity at the final time on SQLite, PostgreSQL
   (the same tables copied in) and DuckDB (loaded from the store), compared tag by tag.
4. *Packages*: the same conditions over flat per-entity data with tagloop, `rule-engine`
   and `json-logic` (`bench/rules_compare.py`).

    .venv/bin/python -m bench.rules                       # the issue's workload, recorded
    .venv/bin/python -m bench.rules --entities 5000 --events 100000 --no-record
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import machine, record
from bench.rules_backends import (
    BatchRun,
    disagreements,
    drop_postgres,
    duckdb_run,
    postgres_copy,
    timed_recompute,
)
from bench.rules_report import compare_packages, profile_table, report
from bench.rules_workload import (
    KIND_LABELS,
    Params,
    generate_events,
    generate_rules,
    late_share,
    write_workspace,
)
from tagloop.engine.plans import ActiveTag
from tagloop.ingest import body as bodies
from tagloop.ingest import canonical
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch, Event
from tagloop.runtime import Runtime
from tagloop.store import entities as entity_store
from tagloop.store import tags as tag_store
from tagloop.store.events import chunks
from tagloop.timeutil import time_text

SEGMENTS = [(100, 0.15), (2_000, 0.15), (500, 0.70)]  # (batch size, share of the stream)


class Clock:
    """The replay's "now": the arrival time of the latest batch."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class Segment:
    size: int
    events: int = 0
    seconds: float = 0.0
    latencies: list[tuple[float, int]] = field(default_factory=list)  # (seconds, events)
    tag_changes: int = 0
    evaluations: int = 0  # tag rules (and values) evaluated
    rss_mb: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency (ms) below which ``q`` of the events (not batches) fall."""
        ordered = sorted(self.latencies)
        total = sum(n for _, n in ordered)
        seen = 0
        for seconds, n in ordered:
            seen += n
            if seen >= q * total:
                return seconds * 1000
        return 0.0


def as_json(event: Event) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "entity": {"type": event.entity_type, "id": event.entity_id},
        "time": time_text(event.time),
    }
    if event.properties:
        item["properties"] = event.properties
    if event.attributes:
        item["attributes"] = event.attributes
    if event.related:
        item["related"] = event.related
    return item


def preload(root: Path, events: list[Event], arrivals: list[int], clock: Clock) -> float:
    """Store ``events`` with profiles through the commit path, with no tags defined."""
    rt = Runtime.open(root, clock=clock)
    started = time.perf_counter()
    try:
        for start in range(0, len(events), 5_000):
            chunk = events[start : start + 5_000]
            clock.now = arrivals[start + len(chunk) - 1]
            batch = Batch(list(enumerate(chunk)))
            for event in chunk:
                event.received_at = clock.now
            rt.ingestor.ingest(batch)
            if start % 200_000 == 0:
                print(f"  preloaded {start + len(chunk):,} events", flush=True)
    finally:
        rt.close()
    return time.perf_counter() - started


def warm(rt: Runtime) -> tuple[float, int]:
    """Rebuild the engine's state of every entity from the events table."""
    started = time.perf_counter()
    with rt.db.read() as conn:
        keys = [(r[0], r[1]) for r in rt.db.fetch(conn, "SELECT type, id FROM entities", ())]
        with rt.engine.lock:
            for chunk in chunks(keys, 2_000):
                rows = entity_store.load(rt.db, conn, chunk)
                rt.engine.prepare(rt.db, conn, {k: rows.get(k) for k in chunk})
    return time.perf_counter() - started, len(keys)


def stream(
    rt: Runtime,
    events: list[Event],
    arrivals: list[int],
    clock: Clock,
    size: int,
    profile: Path | None = None,
) -> Segment:
    """Events as ``POST /v1/events`` bodies of ``size``, committed one after the other."""
    segment = Segment(size)
    tz = rt.workspace.timezone
    work = [
        (
            orjson.dumps([as_json(e) for e in events[i : i + size]]),
            arrivals[min(i + size, len(events)) - 1],
            min(size, len(events) - i),
        )
        for i in range(0, len(events), size)
    ]
    spy = _py_spy(profile) if profile is not None else None
    original = ActiveTag.evaluate
    counted = [0]

    def evaluate(tag: ActiveTag, ctx: Any) -> tuple[bool, Any]:
        counted[0] += 1
        return original(tag, ctx)

    ActiveTag.evaluate = evaluate  # type: ignore[method-assign]
    began = time.perf_counter()
    try:
        for body, arrival, count in work:
            clock.now = arrival
            handed = time.perf_counter()
            items = bodies.items(body, "application/json")
            batch = Batch()
            canonical.to_events(items.values, batch, ParseContext(arrival, tz, "api"))
            outcome = rt.ingestor.ingest(batch)
            segment.latencies.append((time.perf_counter() - handed, count))
            segment.events += outcome.accepted
    finally:
        segment.seconds = time.perf_counter() - began
        ActiveTag.evaluate = original  # type: ignore[method-assign]
        segment.evaluations = counted[0]
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    segment.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return segment


def _py_spy(path: Path) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).with_name("py-spy")
    process = subprocess.Popen(
        [str(spy), "record", "-r", "100", "-f", "raw", "-o", str(path), "-p", str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return process


def plan(total: int) -> Iterator[tuple[int, int]]:
    """(batch size, events) of the streaming segments."""
    left = total
    for i, (size, share) in enumerate(SEGMENTS):
        n = left if i == len(SEGMENTS) - 1 else int(total * share) // size * size
        left -= n
        yield size, n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = Params()
    parser.add_argument("--entities", type=int, default=defaults.entities)
    parser.add_argument("--events", type=int, default=defaults.events)
    parser.add_argument("--months", type=int, default=defaults.months)
    parser.add_argument("--rules", type=int, default=defaults.rules)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--stream-events",
        type=int,
        default=100_000,
        help="events streamed through the engine at the end (0: all)",
    )
    parser.add_argument(
        "--compare-entities",
        type=int,
        default=10_000,
        help="customers in the rule-package comparison",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("/tmp/tagloop-bench-rules"),
        help="work directory (emptied first)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the main streaming segment; where the time goes",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    params = Params(args.entities, args.events, args.months, args.rules, args.seed)
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    figures: dict[str, Any] = {"params": params, "args": args, "kind_labels": KIND_LABELS}
    load_start = os.getloadavg()[0]

    tags, kinds = generate_rules(params.rules, params.seed)
    figures["kinds"] = kinds
    figures["batch_tags"] = sum(1 for t in tags if t["entity"] == "product_batch")
    print(
        "rules:",
        ", ".join(f"{kinds[k]} {label}" for k, label in KIND_LABELS.items()),
        f"({sum(1 for t in tags if t['entity'] == 'product_batch')} on product batches)",
    )
    started = time.perf_counter()
    events, arrivals = generate_events(params)
    figures["generate"] = time.perf_counter() - started
    figures["late"] = late_share(events)
    types = Counter(e.type for e in events)
    figures["types"] = ", ".join(f"{n / len(events):.0%} {k}" for k, n in types.most_common())
    print(
        f"generated {len(events):,} events in {figures['generate']:.1f} s "
        f"({figures['late']:.1%} arrive after a later-dated event)",
        flush=True,
    )

    url = f"sqlite:///{args.dir / 'store.db'}"
    streamed = len(events) if args.stream_events <= 0 else min(args.stream_events, len(events))
    split = len(events) - streamed
    clock = Clock(params.start)
    if split:
        seconds = preload(
            write_workspace(args.dir / "bare", url, []), events[:split], arrivals[:split], clock
        )
        figures["preload"] = (split, seconds)
        print(f"preloaded {split:,} events without tags in {seconds:.1f} s", flush=True)
    root = write_workspace(args.dir / "ws", url, tags)
    started = time.perf_counter()
    rt = Runtime.open(root, clock=clock)
    figures["open"] = time.perf_counter() - started
    print(
        f"opened the 200-tag workspace (versions + batch recompute with writes) in "
        f"{figures['open']:.1f} s",
        flush=True,
    )
    if split:
        figures["warm"] = warm(rt)
        print(
            f"rebuilt the state of {figures['warm'][1]:,} entities in {figures['warm'][0]:.1f} s",
            flush=True,
        )

    segments = []
    offset = split
    for size, count in plan(streamed):
        if count <= 0:
            continue
        main_segment = size == SEGMENTS[-1][0]
        spy = args.dir / "profile.txt" if args.profile and main_segment else None
        changes_before = _history(rt)
        segment = stream(
            rt, events[offset : offset + count], arrivals[offset : offset + count], clock, size, spy
        )
        segment.tag_changes = _history(rt) - changes_before
        offset += count
        segments.append(segment)
        print(
            f"  batches of {size}: {segment.rate:,.0f} events/s over {segment.events:,} "
            f"events; latency p50 {segment.percentile(0.5):.0f} ms, p95 "
            f"{segment.percentile(0.95):.0f} ms, p99 {segment.percentile(0.99):.0f} ms; "
            f"{segment.tag_changes / max(segment.events, 1):.2f} tag changes/event",
            flush=True,
        )
    figures["segments"] = segments
    if args.profile:
        figures["profile"] = profile_table(args.dir / "profile.txt", segments[-1])

    started = time.perf_counter()
    figures["timers"] = (rt.fire_timers(), time.perf_counter() - started)
    print(
        f"timers due at the end: {figures['timers'][0]:,} entities re-evaluated in "
        f"{figures['timers'][1]:.1f} s",
        flush=True,
    )
    now = clock.now
    with rt.db.read() as conn:
        figures["stored"] = tag_store.counts(conn)
    runs: list[BatchRun] = []
    runs.append(timed_recompute("sqlite", rt.db, rt.engine, rt.active, now))
    _say(runs[-1])
    runs.append(duckdb_run(rt.db, rt.engine, rt.active, now))
    _say(runs[-1])
    if not args.no_postgres:
        pg_root = write_workspace(
            args.dir / "ws-pg", "postgresql://postgres@127.0.0.1:5432/tagloop_bench_rules", tags
        )
        pg_db, pg_engine, pg_active, copy_seconds = postgres_copy(
            args.dir / "store.db", pg_root, clock
        )
        try:
            run = timed_recompute("postgresql", pg_db, pg_engine, pg_active, now)
            run.load_seconds = copy_seconds
            runs.append(run)
            _say(runs[-1])
        finally:
            pg_db.dispose()
            drop_postgres()
    written = timed_recompute("sqlite (writes)", rt.db, rt.engine, rt.active, now, write=True)
    _say(written)
    figures["batch"], figures["written"] = runs, written
    figures["mismatch"] = disagreements(runs)
    figures["stream_vs_batch"] = [
        f"{name}: stored {figures['stored'].get(name, 0)}, batch {count}"
        for name, count in sorted(runs[0].holders.items())
        if figures["stored"].get(name, 0) != count
    ]
    for line in figures["mismatch"]:
        print("  BACKENDS DISAGREE:", line)
    print(f"  streaming vs batch: {len(figures['stream_vs_batch'])} tags differ", flush=True)

    figures["packages"] = compare_packages(rt, now, args.compare_entities, params.seed)
    rt.close()
    figures["load"] = (load_start, os.getloadavg()[0])
    text = report(figures, " ".join(["python -m bench.rules", *sys.argv[1:]]), machine())
    print(text)
    if not args.no_record:
        record("rules", text)


def _history(rt: Runtime) -> int:
    with rt.db.read() as conn:
        return int(rt.db.fetch(conn, "SELECT count(*) FROM tag_history", ())[0][0])


def _say(run: BatchRun) -> None:
    extra = f" (+{run.load_seconds:.1f} s loading)" if run.load_seconds else ""
    print(
        f"batch on {run.backend}: {run.seconds:.1f} s{extra}, {run.sql_seconds:.1f} s in "
        f"{run.queries} queries; {sum(run.holders.values()):,} holders; "
        f"{len(run.streamed)} tags not in SQL; {run.changes:,} changes written",
        flush=True,
    )


if __name__ == "__main__":
    main()
