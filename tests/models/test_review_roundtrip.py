"""The loop of issue 7 on the Telco data: the churn model proposes ``churn_risk`` tags, a
reviewer approves some and rejects others, and a model labelled by those decisions is
trained on exactly the decided subscribers (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tagloop.audit import Actor
from tagloop.demo import TEMPLATE, telco
from tagloop.models import schedule, scoring
from tagloop.review import decisions, labels, queue
from tagloop.runtime import Runtime
from tagloop.store import tags as tag_store
from tests.models.conftest import DATA, telco_workspace

REVIEWER = Actor("ana", "user", "10.0.0.7")


@pytest.fixture
def reviewed_rt(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    root = telco_workspace(tmp_path / "telco", database_url)
    tags = root / "tags" / "subscriber.yaml"
    text = tags.read_text("utf-8")
    rule = "    rule: score('churn') > 0.7\n"
    assert rule in text
    tags.write_text(text.replace(rule, rule + "    review: all\n"), encoding="utf-8")
    # A second model with the same features, labelled by the reviewers' decisions.
    churn = (TEMPLATE / "models" / "churn.yaml").read_text("utf-8")
    start, end = churn.index("label:\n"), churn.index("holdout:")
    reviewed = churn.replace("name: churn\n", "name: churn_reviewed\n")
    reviewed = reviewed[: reviewed.index("label:\n")] + "label:\n  reviews: churn_risk\n"
    reviewed += churn[end:]
    assert start < end
    (root / "models" / "churn_reviewed.yaml").write_text(reviewed, encoding="utf-8")
    rt = Runtime.open(root)
    assert telco.load(rt, DATA) is not None
    yield rt
    rt.close()


def test_decisions_on_model_tags_label_the_next_training(reviewed_rt: Runtime) -> None:
    rt = reviewed_rt
    churn = scoring.definition(rt.workspace, "churn")
    schedule.train(rt.db, rt.workspace, churn, rt.clock())
    report = scoring.score(rt, "churn")
    assert report.entities == 7043
    # Proposed, not held: every churn_risk assignment waits for a reviewer.
    with rt.db.read() as conn:
        assert tag_store.counts(conn).get("churn_risk", 0) == 0
    waiting = queue.page(
        rt.db,
        queue.filters(rt.workspace, now=rt.clock(), tag="churn_risk"),
        now=rt.clock(),
        after=None,
        limit=1000,
    )["items"]
    assert len(waiting) > 100
    assert all(0.7 < item["confidence"] <= 1.0 for item in waiting)
    approve = [item["id"] for item in waiting[:60]]
    reject = [item["id"] for item in waiting[60:100]]
    for ids, action, extra in (
        (approve, "approve", {}),
        (reject, "reject", {"reason": "outdated"}),
    ):
        chosen = queue.filters(rt.workspace, now=rt.clock(), ids=ids)
        outcome = decisions.decide(rt, chosen, action, REVIEWER, **extra)
        assert sorted(outcome.decided) == sorted(ids)
    with rt.db.read() as conn:
        assert tag_store.counts(conn)["churn_risk"] == 60
        decided = labels.decided(rt.db, conn, "churn_risk")
    assert sorted(label for label, _ in decided.values()).count(True) == 60
    assert len(decided) == 100
    # The next training learns from the 100 decisions, nothing else.
    version = schedule.train(
        rt.db, rt.workspace, scoring.definition(rt.workspace, "churn_reviewed"), rt.clock()
    )
    assert version.rows == 100
    rows = version.metrics["rows"]
    assert rows["train"] + rows["holdout"] == 100 and rows["positive_share"] == 0.6
