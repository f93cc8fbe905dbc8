"""Model tags turn into action: the ``churn_risk`` tags a scoring run gives start the flows
that wait for them, as the tags computed from events do (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from tagloop.demo import telco
from tagloop.models import schedule, scoring
from tagloop.runtime import Runtime
from tagloop.store import flows as flow_store
from tagloop.store import tags as tag_store
from tests.models.conftest import DATA, telco_workspace

RETAIN = """\
flow:
  name: retain
  trigger: {tag_added: churn_risk}
  steps:
    - set_attribute(retention, call)
"""


def test_the_tags_of_a_scoring_run_start_their_flows(tmp_path: Path, database_url: str) -> None:
    root = telco_workspace(tmp_path / "telco", database_url)
    (root / "flows").mkdir()
    (root / "flows" / "retain.yaml").write_text(RETAIN, encoding="utf-8")
    rt = Runtime.open(root)
    try:
        assert telco.load(rt, DATA) is not None
        schedule.train(rt.db, rt.workspace, scoring.definition(rt.workspace, "churn"), rt.clock())
        scoring.score(rt, "churn")
        with rt.db.read() as conn:
            holders = tag_store.counts(conn)["churn_risk"]
            runs = flow_store.runs(conn, flow="retain", limit=10_000)
        assert holders > 100
        assert len(runs) == holders
        assert {r.status for r in runs} == {"pending"}
        # Scoring again changes no tag, and starts nothing twice.
        scoring.score(rt, "churn")
        with rt.db.read() as conn:
            assert len(flow_store.runs(conn, flow="retain", limit=10_000)) == holders
    finally:
        rt.close()
