"""The review round trip on the store (SQLite and PostgreSQL): a proposal waits, a
decision applies or keeps it off, survives recomputation, becomes a label, is audited and
counts in the error rate; pins outlast recomputation until lifted or expired."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tagloop.audit import Actor
from tagloop.engine import batch
from tagloop.errors import Conflict, NotFound, ValidationFailed
from tagloop.review import decisions, labels, pins, queue, rates
from tagloop.review.policy import gated
from tagloop.runtime import Runtime
from tagloop.store import tags as tag_store
from tagloop.store.tables import audit_log, review_items, tag_history
from tagloop.store.tags import TagChange
from tests.review.conftest import DAY, Clock, customer, send

REVIEWER = Actor("ana", "user", "10.0.0.7")


def held(rt: Runtime, entity_id: str) -> dict[str, tuple[Any, str]]:
    with rt.db.read() as conn:
        rows = tag_store.for_entity(conn, "customer", entity_id)
    return {r.tag: (r.value, r.status) for r in rows}


def pending(rt: Runtime, **options: Any) -> list[dict[str, Any]]:
    chosen = queue.filters(rt.workspace, now=rt.clock(), **options)
    return queue.page(rt.db, chosen, now=rt.clock(), after=None, limit=1000)["items"]


def one(rt: Runtime, tag: str, entity_id: str) -> int:
    (item,) = [i for i in pending(rt, tag=tag) if i["entity"]["id"] == entity_id]
    return int(item["id"])


def decide(rt: Runtime, item_id: int, action: str, **extra: Any) -> decisions.Outcome:
    chosen = queue.filters(rt.workspace, now=rt.clock(), status=None, ids=[item_id])
    return decisions.decide(rt, chosen, action, REVIEWER, single=True, **extra)


def recompute(rt: Runtime) -> batch.Report:
    return batch.recompute(rt.db, rt.engine, rt.active, [t.name for t in rt.active], rt.clock())


def test_a_proposal_waits_then_approval_applies_it(rrt: Runtime) -> None:
    send(rrt, customer("c1", spend=2000, city="上海"))
    assert held(rrt, "c1")["big"] == (True, "pending")
    assert "vip_shanghai" not in held(rrt, "c1")  # it reads what the entity holds
    with rrt.db.read() as conn:
        assert tag_store.counts(conn).get("big", 0) == 0
    (item,) = pending(rrt, tag="big")
    assert item["evidence"]["values"] == {"spend": 2000}
    assert item["confidence"] == 1.0 and item["policy"] == "all"

    outcome = decide(rrt, item["id"], "approve")
    assert outcome.decided == [item["id"]] and outcome.propagated == 1
    assert held(rrt, "c1")["big"] == (True, "active")
    assert held(rrt, "c1")["vip_shanghai"] == (True, "active")
    assert pending(rrt, tag="big") == []
    with rrt.db.read() as conn:
        assert labels.decided(rrt.db, conn, "big") == {"c1": (True, rrt.clock())}
        changes = [
            r.change for r in conn.execute(select(tag_history).where(tag_history.c.tag == "big"))
        ]
    assert changes == ["proposed", "approved"]

    # approved stays applied: a recompute and new events change nothing
    assert recompute(rrt).changes == 0
    send(rrt, customer("c1", spend=2500))
    assert held(rrt, "c1")["big"] == (True, "active")
    with pytest.raises(Conflict, match="is approved by ana, not pending"):
        decide(rrt, item["id"], "approve")


def test_a_rejection_keeps_it_off_with_its_reason(rrt: Runtime, clock: Clock) -> None:
    send(rrt, customer("c1", spend=2000, city="上海"))
    item_id = one(rrt, "big", "c1")
    with pytest.raises(ValidationFailed, match="a rejection needs a reason"):
        decide(rrt, item_id, "reject")
    with pytest.raises(ValidationFailed, match="unknown reason 'outdate' \\(did you mean"):
        decide(rrt, item_id, "reject", reason="outdate")
    decide(rrt, item_id, "reject", reason="outdated", note="moved away")
    assert held(rrt, "c1")["big"] == (True, "rejected")
    # the rule still proposes the same: it stays off, in the stream and in batch
    clock.now += DAY
    send(rrt, customer("c1", city="上海"))
    assert recompute(rrt).changes == 0
    assert held(rrt, "c1")["big"] == (True, "rejected") and pending(rrt) == []
    with rrt.db.read() as conn:
        row = conn.execute(select(review_items).where(review_items.c.id == item_id)).one()
        assert (row.status, row.reason, row.note, row.decided_by) == (
            "rejected",
            "outdated",
            "moved away",
            "ana",
        )
        assert labels.decided(rrt.db, conn, "big") == {"c1": (False, row.decided_at)}
    # once the rule stops holding and holds again, the new proposal is reviewed anew
    send(rrt, customer("c1", spend=10))
    assert "big" not in held(rrt, "c1")
    send(rrt, customer("c1", spend=3000))
    assert held(rrt, "c1")["big"] == (True, "pending")


def test_every_decision_is_audited(rrt: Runtime) -> None:
    send(rrt, *(customer(f"c{i}", spend=1000 + i) for i in range(3)))
    ids = [i["id"] for i in pending(rrt, tag="big")]
    decide(rrt, ids[0], "approve")
    decide(rrt, ids[1], "reject", reason="duplicate")
    decide(rrt, ids[2], "override", value=False)
    with rrt.db.read() as conn:
        rows = list(conn.execute(select(audit_log).where(audit_log.c.target_type == "review")))
    assert [(r.action, r.target_id, r.actor, r.origin) for r in rows] == [
        ("review.approve", str(ids[0]), "ana", "10.0.0.7"),
        ("review.reject", str(ids[1]), "ana", "10.0.0.7"),
        ("review.override", str(ids[2]), "ana", "10.0.0.7"),
    ]
    assert rows[1].after["reason"] == "duplicate" and rows[0].before["status"] == "pending"
    from tagloop import audit

    assert audit.verify(rrt.db).ok


def test_error_rate_per_tag_and_week(rrt: Runtime, clock: Clock) -> None:
    send(rrt, *(customer(f"c{i}", spend=1000 + i) for i in range(8)))
    ids = [i["id"] for i in pending(rrt, tag="big")]
    for item_id in ids[:5]:
        decide(rrt, item_id, "approve")
    decide(rrt, ids[5], "reject", reason="wrong_entity")
    clock.now += 7 * DAY  # the next week
    decide(rrt, ids[6], "reject", reason="other")
    decide(rrt, ids[7], "approve")
    (figures,) = rates.error_rates(rrt.db, rrt.workspace.timezone, tag="big")
    assert (figures["reviewed"], figures["rejected"], figures["error_rate"]) == (8, 2, 0.25)
    assert [(w["week"], w["reviewed"], w["error_rate"]) for w in figures["weeks"]] == [
        ("2026-W01", 6, round(1 / 6, 4)),
        ("2026-W02", 2, 0.5),
    ]


def test_bulk_decisions_take_a_filtered_set(rrt: Runtime, clock: Clock) -> None:
    send(rrt, *(customer(f"old{i}", spend=1500) for i in range(4)))
    clock.now += 3 * DAY
    send(rrt, *(customer(f"new{i}", spend=1500) for i in range(2)))
    chosen = queue.filters(rrt.workspace, now=clock(), tag="big", older_than="2d")
    outcome = decisions.decide(rrt, chosen, "approve", REVIEWER)
    assert len(outcome.decided) == 4
    assert {i["entity"]["id"] for i in pending(rrt, tag="big")} == {"new0", "new1"}
    assert all(held(rrt, f"old{i}")["big"][1] == "active" for i in range(4))
    # paging: one at a time, in order
    chosen = queue.filters(rrt.workspace, now=clock(), tag="big")
    first = queue.page(rrt.db, chosen, now=clock(), after=None, limit=1)
    second = queue.page(rrt.db, chosen, now=clock(), after=first["next"], limit=1)
    assert first["total"] == 2 and second["next"] is None
    assert first["items"][0]["id"] < second["items"][0]["id"]
    with pytest.raises(ValidationFailed, match="older_than"):
        queue.filters(rrt.workspace, now=clock(), older_than="soon")
    with pytest.raises(NotFound, match="unknown tag 'bgi' \\(did you mean 'big'"):
        queue.filters(rrt.workspace, now=clock(), tag="bgi")


def test_a_changed_proposal_supersedes_and_stale_items_are_withdrawn(rrt: Runtime) -> None:
    send(rrt, customer("c1", spend=2000))
    first = one(rrt, "big", "c1")
    send(rrt, customer("c1", spend=10))  # the rule no longer holds: withdrawn
    assert pending(rrt) == [] and "big" not in held(rrt, "c1")
    with rrt.db.read() as conn:
        row = conn.execute(select(review_items).where(review_items.c.id == first)).one()
    assert row.status == "withdrawn"


def test_samples_wait_and_recomputation_does_not_resample(rrt: Runtime) -> None:
    send(rrt, *(customer(f"c{i}", spend=600) for i in range(40)))
    waiting = {i["entity"]["id"] for i in pending(rrt, tag="grade")}
    assert 8 <= len(waiting) <= 32  # about half
    for i in range(40):
        status = held(rrt, f"c{i}")["grade"][1]
        assert status == ("pending" if f"c{i}" in waiting else "active")
    assert recompute(rrt).changes == 0
    assert {i["entity"]["id"] for i in pending(rrt, tag="grade")} == waiting


def test_confidence_thresholds_for_scored_tags(rrt: Runtime) -> None:
    """What a model layer does: its changes, with the score as confidence, go through
    `gated` before they are stored."""
    send(rrt, *(customer(f"c{i}") for i in range(3)))
    spec = rrt.workspace.tags["churn_risk"].spec.review
    for entity_id, score in (("c0", 0.95), ("c1", 0.7), ("c2", 0.2)):
        raw = TagChange(
            "customer", entity_id, "churn_risk", "assigned", True, None, 1, "model:churn@v1",
            {"contributions": {"tenure": -0.31, "monthly_charges": 0.52, "contract": 0.05}},
            rrt.clock(), confidence=score,
        )  # fmt: skip
        change = gated(raw, spec, None)
        if change is not None:
            with rrt.db.write() as conn:
                tag_store.apply(rrt.db, conn, [change])
    assert held(rrt, "c0")["churn_risk"] == (True, "active")
    assert held(rrt, "c1")["churn_risk"] == (True, "pending")
    assert "churn_risk" not in held(rrt, "c2")
    (item,) = pending(rrt, tag="churn_risk")
    assert item["confidence"] == 0.7 and item["policy"] == "confidence"
    assert item["contributions"][0] == {"feature": "monthly_charges", "contribution": 0.52}


def test_pins_survive_recomputation_until_they_expire(rrt: Runtime, clock: Clock) -> None:
    send(rrt, customer("c1", spend=10, city="上海"), customer("c2", spend=5000, city="上海"))
    on = pins.place(rrt, "customer", "c1", "big", mode="include", actor=REVIEWER, expires="2d")
    off = pins.place(rrt, "customer", "c2", "big", mode="exclude", actor=REVIEWER)
    assert pending(rrt, tag="big") == []  # the pin decided c2's pending proposal
    assert held(rrt, "c1")["big"] == (True, "active")
    assert held(rrt, "c1")["vip_shanghai"] == (True, "active")  # readers follow at once
    assert held(rrt, "c2")["big"] == (None, "excluded")
    for _ in range(2):  # recomputation and new events leave pins alone
        assert recompute(rrt).changes == 0
        send(rrt, customer("c1", spend=20), customer("c2", spend=6000))
    assert held(rrt, "c1")["big"] == (True, "active") and held(rrt, "c2")["big"][1] == "excluded"
    with rrt.db.read() as conn:
        assert labels.decided(rrt.db, conn, "big") == {
            "c1": (True, on_time(on)),
            "c2": (False, on_time(off)),
        }
    # the include expires: the entity's timer fires and the rule applies again
    clock.now += 2 * DAY
    rrt.fire_timers()
    assert "big" not in held(rrt, "c1") and "vip_shanghai" not in held(rrt, "c1")
    # lifting the exclusion hands c2 back to the rule, whose proposal is reviewed
    pins.lift(rrt, off["id"], REVIEWER)
    assert held(rrt, "c2")["big"] == (True, "pending")
    with pytest.raises(NotFound, match="no live pin"):
        pins.lift(rrt, off["id"], REVIEWER)
    with pytest.raises(NotFound, match="no customer with id 'nobody'"):
        pins.place(rrt, "customer", "nobody", "big", mode="include", actor=REVIEWER)
    with pytest.raises(ValidationFailed, match="holds values of type string"):
        pins.place(rrt, "customer", "c1", "grade", mode="include", actor=REVIEWER)


def test_an_expired_pin_yields_in_batch_too(rrt: Runtime, clock: Clock) -> None:
    send(rrt, customer("c1", spend=10))
    pins.place(rrt, "customer", "c1", "big", mode="include", actor=REVIEWER, expires="1d")
    clock.now += 2 * DAY  # no timer fired yet: the batch recompute sees it has expired
    report = recompute(rrt)
    assert report.changes >= 1 and "big" not in held(rrt, "c1")


def test_override_applies_the_reviewers_value_as_a_pin(rrt: Runtime) -> None:
    send(rrt, *(customer(f"c{i}", spend=700) for i in range(30)))
    item_id = pending(rrt, tag="grade")[0]["id"]
    entity_id = pending(rrt, tag="grade")[0]["entity"]["id"]
    with pytest.raises(ValidationFailed, match="expected a string"):
        decide(rrt, item_id, "override", value=[3])
    decide(rrt, item_id, "override", value="C")
    assert held(rrt, entity_id)["grade"] == ("C", "active")
    assert recompute(rrt).changes == 0 and held(rrt, entity_id)["grade"] == ("C", "active")
    with rrt.db.read() as conn:
        assert labels.decided(rrt.db, conn, "grade")[entity_id][0] == "C"


def on_time(pin: dict[str, Any]) -> int:
    from tagloop.timeutil import parse_time

    return parse_time(pin["created_at"])
