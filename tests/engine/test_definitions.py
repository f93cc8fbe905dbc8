"""Tag versions: a changed rule is a new version and is recomputed; a removed tag retires."""

from __future__ import annotations

from pathlib import Path

from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.store import tags


def spend(rt: Runtime, entity_id: str, amount: int) -> None:
    rt.ingestor.commit(
        [
            Event(
                id=f"{entity_id}-{amount}",
                type="identify",
                entity_type="customer",
                entity_id=entity_id,
                time=amount,
                attributes={"spend": amount},
            )
        ]
    )


def holders(rt: Runtime, tag: str) -> set[str]:
    with rt.db.read() as conn:
        return {entity_id for _, entity_id in tags.assigned_ids(conn, tag)}


def test_new_version_recomputes_and_removal_retires(workspace: Path) -> None:
    rt = Runtime.open(workspace)
    for entity_id, amount in (("a", 500), ("b", 1500), ("c", 5000)):
        spend(rt, entity_id, amount)
    assert holders(rt, "VIP") == {"b", "c"}
    rt.close()

    path = workspace / "tags" / "tags.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("spend >= 1000", "spend >= 2000"), encoding="utf-8")
    rt = Runtime.open(workspace)
    vip = next(t for t in rt.active if t.name == "VIP")
    assert vip.version == 2
    assert holders(rt, "VIP") == {"c"}
    with rt.db.read() as conn:
        (held,) = [a for a in tags.for_entity(conn, "customer", "c") if a.tag == "VIP"]
        history_b = [
            (h.change, h.version) for h in tags.history(conn, "customer", "b") if h.tag == "VIP"
        ]
    assert held.version == 2 and held.source == "rule:VIP@v2"  # confirmed under v2
    assert history_b == [("removed", 2), ("assigned", 1)]
    rt.close()

    path.write_text(
        text.replace("  - name: VIP", "  - name: VIP_old").replace("spend >= 1000", "spend >= 1"),
        encoding="utf-8",
    )
    rt = Runtime.open(workspace)
    assert holders(rt, "VIP") == set()
    assert holders(rt, "VIP_old") == {"a", "b", "c"}
    with rt.db.read() as conn:
        retired = [h for h in tags.history(conn, "customer", "c") if h.tag == "VIP"]
    assert (retired[0].change, retired[0].source) == ("removed", "retired")
    rt.close()


def test_reopening_without_changes_keeps_versions(workspace: Path) -> None:
    Runtime.open(workspace).close()
    rt = Runtime.open(workspace)
    assert {t.name: t.version for t in rt.active} == {
        "VIP": 1,
        "上海客户": 1,
        "frequent": 1,
        "hot_batch": 1,
    }
    rt.close()
