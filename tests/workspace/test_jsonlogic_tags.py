"""JsonLogic conditions in a workspace: `jsonlogic:` in a tag file, live and in batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagloop.engine import batch
from tagloop.errors import WorkspaceError
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.store import tags as tag_store
from tagloop.workspace import load_workspace
from tests.conftest import write_workspace

# A query builder's export pasted into YAML (JSON is YAML), and one whose path is computed,
# so it reads the whole data and must be re-evaluated whenever any attribute changes.
TAGS = """
tags:
  - name: 优质本地客户
    entity: customer
    jsonlogic: {"and": [{">=": [{"var": "spend"}, 100]},
                        {"in": [{"var": "city"}, ["上海", "北京"]]}]}
  - name: 爱喝茶
    entity: customer
    jsonlogic:
      some:
        - {"var": "interests"}
        - {"==": [{"var": ""}, "tea"]}
  - name: computed_path
    entity: customer
    jsonlogic: {">": [{"var": {"cat": ["sp", "end"]}}, 50]}
"""
NOW = 1_714_536_000_000_000


def identify(who: str, **attributes: object) -> Event:
    return Event(
        id=f"{who}-{sorted(attributes.items())}",
        type="identify",
        entity_type="customer",
        entity_id=who,
        time=NOW - 1_000_000,
        attributes=attributes,
    )


def holders(rt: Runtime) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    with rt.db.read() as conn:
        for who in ("c1", "c2", "c3"):
            for assignment in tag_store.for_entity(conn, "customer", who):
                found.setdefault(assignment.tag, set()).add(who)
    return found


@pytest.fixture
def rt(tmp_path: Path, database_url: str) -> object:
    root = write_workspace(tmp_path / "ws", database_url, tags=TAGS)
    runtime = Runtime.open(root, clock=lambda: NOW)
    yield runtime
    runtime.close()


def test_jsonlogic_tags_hold_live_and_agree_in_batch(rt: Runtime) -> None:
    rt.ingestor.commit(
        [
            identify("c1", spend=120, city="上海", interests=["tea", "golf"]),
            identify("c2", spend=99.5, city="北京", interests=["coffee"]),
            identify("c3", spend=500, city="深圳"),
        ]
    )
    assert holders(rt) == {
        "优质本地客户": {"c1"},
        "爱喝茶": {"c1"},
        "computed_path": {"c1", "c2", "c3"},
    }
    # spend is read through a computed path: changing it must still re-evaluate the tag
    rt.ingestor.commit([identify("c3", spend=10)])
    assert holders(rt)["computed_path"] == {"c1", "c2"}

    names = [t.name for t in rt.active if t.definition.entity == "customer"]
    report = batch.recompute(rt.db, rt.engine, rt.active, names, NOW, write=False, keep=True)
    # a computed path and map/filter/some over a list have no SQL form: those tags are
    # computed entity by entity instead, and the report says why
    assert set(report.streamed) == {"computed_path", "爱喝茶"}
    assert "computed path" in report.streamed["computed_path"]
    in_batch: dict[str, set[str]] = {}
    for who, values in report.results["customer"].items():
        for name, result in values.items():
            if result.held:
                in_batch.setdefault(name, set()).add(who)
    assert in_batch == {"优质本地客户": holders(rt)["优质本地客户"]}


def test_a_jsonlogic_error_points_at_its_line_and_json_path(tmp_path: Path) -> None:
    broken = TAGS.replace('{"var": "city"}', '{"var": "cty"}')
    root = write_workspace(tmp_path / "ws", "sqlite:///unused.db", tags=broken)
    with pytest.raises(WorkspaceError) as failure:
        load_workspace(root)
    (problem,) = [str(p) for p in failure.value.problems]
    assert problem.startswith("tags/tags.yaml:6:33: ")  # the {"var": "cty"} itself
    assert "unknown attribute 'cty' of customer (did you mean 'city'?)" in problem
    assert "$.and[1].in[0]" in problem


def test_rule_and_jsonlogic_together_is_an_error(tmp_path: Path) -> None:
    both = TAGS.replace('    jsonlogic: {">"', '    rule: spend > 50\n    jsonlogic: {">"')
    root = write_workspace(tmp_path / "ws", "sqlite:///unused.db", tags=both)
    with pytest.raises(WorkspaceError) as failure:
        load_workspace(root)
    assert any("as 'rule' or as 'jsonlogic'" in str(p) for p in failure.value.problems)
