"""The gate: the streaming evaluator and the batch (SQL) evaluator agree.

Random rules over every construct of the language, random events arriving in random order
and random batches: after ingestion through the streaming engine, every tag of every
entity equals what the SQL evaluator computes at the same ``now``, on SQLite, PostgreSQL
and DuckDB. A change to either evaluator that breaks this breaks the build.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tagloop.engine import batch, duck, imports
from tagloop.engine.evaluator import same
from tagloop.engine.explain import explain
from tagloop.ingest import canonical
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch
from tagloop.rules.sql.dialects import DIALECTS
from tagloop.runtime import Runtime
from tagloop.sources.files import read_text
from tests.conftest import _truncate, sqlite_copy
from tests.rules import rulegen

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def write(root: Path, database: str, tags: list[dict[str, Any]]) -> None:
    (root / "entities").mkdir(parents=True, exist_ok=True)
    (root / "tags").mkdir(exist_ok=True)
    (root / "tagloop.yaml").write_text(
        f"name: eq\ntimezone: Asia/Shanghai\ndatabase: '{database}'\n"
        "ingest: {max_future: 1000d}\n",
        encoding="utf-8",
    )
    (root / "entities" / "all.yaml").write_text(textwrap.dedent(rulegen.ENTITIES), encoding="utf-8")
    (root / "tags" / "gen.yaml").write_text(
        yaml.safe_dump({"tags": tags}, allow_unicode=True), encoding="utf-8"
    )


def stream(
    rt: Runtime, items: list[dict[str, Any]], order: list[int], cuts: list[int], now: int
) -> None:
    arrived = [items[i] for i in order]
    bounds = sorted({0, len(arrived), *(c % (len(arrived) + 1) for c in cuts)})
    for low, high in itertools.pairwise(bounds):
        parsed = Batch()
        canonical.to_events(arrived[low:high], parsed, ParseContext(now, rulegen.TZ, "api"))
        rt.ingestor.check(parsed)
        assert not parsed.rejections, parsed.rejections
        rt.ingestor.commit([e for _, e in parsed.events])


def upload(rt: Runtime, values: dict[str, int]) -> None:
    """Imported values for some customers (those that exist take them)."""
    tag = imports.imported_tag(rt.active, "imp")
    report = imports.ImportReport()
    text = "id,value\n" + "".join(f"{k},{v}\n" for k, v in values.items())
    parsed = imports.parse(tag, read_text(text, "csv"), report, where="imp.csv")
    imports.apply(rt.db, rt.engine, tag, parsed, report, where="imp.csv", now=rt.clock())


def streamed(rt: Runtime) -> dict[tuple[str, str, str], Any]:
    with rt.db.read() as conn:
        rows = rt.db.fetch(
            conn, "SELECT entity_type, entity_id, tag, value FROM tag_assignments", ()
        )
    return {(r[0], r[1], r[2]): rt.db.json_value(r[3]) for r in rows}


def compare(rt: Runtime, fetch: batch.Fetch, dialect: str, now: int) -> None:
    expected = streamed(rt)
    for entity_type in ("customer", "product_batch"):
        tags = batch.closure(
            rt.active, [t.name for t in rt.active if t.definition.entity == entity_type]
        )
        results = batch.evaluate(fetch, DIALECTS[dialect], rt.engine, entity_type, tags, now)
        for entity_id, values in results.items():
            for name, result in values.items():
                key = (entity_type, entity_id, name)
                note(
                    f"{dialect} {key}: batch {result.held} {result.value!r}, "
                    f"stream {expected.get(key)!r}"
                )
                assert result.held == (key in expected), key
                if result.held:
                    assert same(result.value, expected[key]), key
                    # and both explain it with the same values
                    why = explain(rt.db, rt.engine, rt.active, entity_type, entity_id, name)
                    assert _same_values(result.evidence, why["now"]["values"]), (
                        key,
                        result.evidence,
                        why["now"]["values"],
                    )


def _same_values(a: Any, c: Any) -> bool:
    if isinstance(a, dict) and isinstance(c, dict):
        return a.keys() == c.keys() and all(_same_values(a[k], c[k]) for k in a)
    return same(a, c)


@pytest.mark.slow
@SETTINGS
@given(
    tags=rulegen.tag_set(),
    items=rulegen.events(),
    data=st.data(),
    now_day=st.integers(*rulegen.NOW_RANGE),
)
def test_streaming_equals_batch(
    tmp_path_factory, database_url, migrated_sqlite, tags, items, data, now_day
) -> None:
    root = tmp_path_factory.mktemp("eq")
    if database_url.startswith("postgresql"):
        _truncate(database_url)
    else:
        database_url = sqlite_copy(migrated_sqlite, root / "t.db")
    write(root, database_url, tags)
    clock = [rulegen.T0 + now_day * rulegen.DAY]
    order = data.draw(st.permutations(range(len(items))))
    cuts = data.draw(st.lists(st.integers(0, 50), max_size=4))
    # Time then passes with no event: the timers must fire wherever a tag changed.
    later = data.draw(st.integers(0, 60 * 8)) * rulegen.DAY // 8
    rt = Runtime.open(root, clock=lambda: clock[0])
    dialect = "sqlite" if rt.db.is_sqlite else "postgresql"
    try:
        stream(rt, items, order, cuts, clock[0])
        upload(
            rt, data.draw(st.dictionaries(st.sampled_from(rulegen.CUSTOMERS), st.integers(0, 5)))
        )
        compare(rt, batch.fetcher(rt.db), dialect, clock[0])
        if rt.db.is_sqlite:
            compare(rt, duck.fetcher(duck.load(rt.db)), "duckdb", clock[0])
        clock[0] += later
        rt.fire_timers()
        compare(rt, batch.fetcher(rt.db), dialect, clock[0])
    finally:
        rt.close()
