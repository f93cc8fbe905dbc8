"""Scoring on change: a commit that changes a feature's inputs marks the entity, due
after the debounce; the due entities are scored with the active version and their model
tags follow."""

from __future__ import annotations

from tagloop.ingest.event import Event
from tagloop.models import schedule, scoring
from tagloop.models.onchange import score_due
from tagloop.runtime import Runtime

MINUTE = 60_000_000


def pending(rt: Runtime) -> dict[str, int]:
    with rt.db.read() as conn:
        rows = rt.db.fetch(conn, "SELECT entity_id, due FROM model_pending", [])
    return {r[0]: r[1] for r in rows}


def score_of(rt: Runtime, entity_id: str) -> float:
    with rt.db.read() as conn:
        (row,) = rt.db.fetch(
            conn, "SELECT score FROM model_scores WHERE entity_id = ?", [entity_id]
        )
    return float(row[0])


def held(rt: Runtime, entity_id: str) -> bool:
    with rt.db.read() as conn:
        rows = rt.db.fetch(
            conn,
            "SELECT 1 FROM tag_assignments WHERE tag = 'churn_risk' AND entity_id = ?",
            [entity_id],
        )
    return bool(rows)


def test_a_changed_feature_rescores_after_the_debounce(telco_rt: Runtime) -> None:
    rt = telco_rt
    schedule.train(rt.db, rt.workspace, rt.workspace.models["churn"], rt.clock())
    scoring.score(rt, "churn")
    with rt.db.write() as conn:
        conn.exec_driver_sql("DELETE FROM model_pending")  # the load's own marks
    with rt.db.read() as conn:
        (risky, before), *_ = rt.db.fetch(
            conn, "SELECT entity_id, score FROM model_scores ORDER BY score DESC LIMIT 1", []
        )
    assert held(rt, risky) and before > 0.7
    # an event that changes nothing the features read marks nothing
    rt.ingestor.commit([Event("n1", "note", "subscriber", risky, rt.clock() - MINUTE)])
    assert pending(rt) == {}
    # a two-year contract: the churn model's strongest feature
    first = rt.clock()
    change = {"contract": "Two year", "tenure": 70}
    rt.ingestor.commit([Event("c1", "subscription", "subscriber", risky, first, attributes=change)])
    (due,) = pending(rt).values()
    assert first + 5 * MINUTE <= due <= rt.clock() + 5 * MINUTE  # schedule.debounce: 5m
    # another change within the debounce moves the time later: one scoring after the burst
    rt.ingestor.commit(
        [Event("c2", "subscription", "subscriber", risky, first + 1, attributes={"tenure": 71})]
    )
    assert pending(rt)[risky] >= due
    assert score_due(rt, due - 1) == {}  # not yet
    assert score_of(rt, risky) == before
    assert score_due(rt, rt.clock() + 6 * MINUTE) == {"churn": 1}
    assert pending(rt) == {}
    assert score_of(rt, risky) < before - 0.3
    assert not held(rt, risky)  # the model tag followed the new score
