"""Model scores on the entity profile: what the churn model said about a subscriber, with
the model's threshold and what it predicts, for principals holding ``models:read``."""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tagloop.api import permissions
from tagloop.api.app import create_app
from tagloop.demo import telco
from tagloop.ingest.event import Event
from tagloop.models import schedule, scoring
from tagloop.runtime import Runtime
from tagloop.timeutil import from_us, zone
from tests.conftest import make_key
from tests.models.conftest import DATA, telco_workspace

SUBSCRIBERS = 1_200  # events of about 950 subscribers: enough to train on, quick to load


@pytest.fixture(scope="module")
def scored_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """The churn model, with fewer trees, trained and scored on a slice of the Telco data."""
    root = tmp_path_factory.mktemp("scores")
    ws = telco_workspace(root / "ws", f"sqlite:///{root / 't.db'}")
    model = ws / "models" / "churn.yaml"
    text = (
        model.read_text(encoding="utf-8")
        .replace("n_estimators: 100", "n_estimators: 20")
        .replace("min_child_samples: 50", "min_child_samples: 10")
    )
    assert "n_estimators: 20" in text and "min_child_samples: 10" in text
    model.write_text(text, encoding="utf-8")
    assert DATA is not None  # bundled with tagloop
    rt = Runtime.open(ws)
    rt.ingestor.commit(list(itertools.islice(telco.events(DATA), SUBSCRIBERS)))
    schedule.train(rt.db, rt.workspace, rt.workspace.models["churn"], rt.clock())
    scoring.score(rt, "churn")
    yield rt
    rt.close()


def client_for(rt: Runtime, role: str) -> TestClient:
    client = TestClient(create_app(rt), base_url="http://127.0.0.1")
    client.headers.update(
        {"Authorization": f"Bearer {make_key(rt, role)}", "Accept-Language": "en"}
    )
    return client


def stored(rt: Runtime, highest: bool) -> tuple[str, float, int]:
    """The subscriber with the highest (or lowest) score: id, score, scored at."""
    order = "DESC" if highest else "ASC"
    with rt.db.read() as conn:
        ((entity_id, score, at),) = rt.db.fetch(
            conn,
            f"SELECT entity_id, score, scored_at FROM model_scores ORDER BY score {order} LIMIT 1",
            [],
        )
    return str(entity_id), float(score), int(at)


def scores_section(page: str) -> str:
    start = page.index('<h2 id="scores-h">')
    return page[start : page.index("</section>", start)]


def test_a_profile_shows_the_entitys_model_scores(scored_rt: Runtime) -> None:
    client = client_for(scored_rt, "viewer")
    risky, high, at = stored(scored_rt, highest=True)
    safe, low, _ = stored(scored_rt, highest=False)
    assert high >= 0.5 > low  # the threshold in models/churn.yaml
    page = client.get(f"/entities/subscriber/{risky}")
    assert page.status_code == 200, page.text
    section = scores_section(page.text)
    assert "Model scores" in section and "<strong>churn</strong>" in section
    assert f">{high:.3f}<" in section and ">0.50<" in section and ">v1<" in section
    when = from_us(at, zone("Asia/Shanghai"))
    assert f"{when.day} {when:%b %Y %H:%M}" in section  # in the workspace's zone
    assert "Yes (at or above the threshold)" in section
    assert html.escape("count(churned, 30d) > 0") in section  # what the model predicts
    other = scores_section(client.get(f"/entities/subscriber/{safe}").text)
    assert f">{low:.3f}<" in other and "No (below the threshold)" in other


def test_the_score_shown_is_the_one_score_reads(scored_rt: Runtime) -> None:
    """A subscriber met after the scoring run has no score yet (it is scored after the
    debounce): the profile says so rather than showing another's."""
    event = Event(
        "late-1", "subscription", "subscriber", "NEW-1", scored_rt.clock(),
        attributes={"contract": "Month-to-month", "tenure": 1},
    )  # fmt: skip
    scored_rt.ingestor.commit([event])
    page = client_for(scored_rt, "viewer").get("/entities/subscriber/NEW-1")
    section = scores_section(page.text)
    assert "No model has scored this entity yet" in section and "<table" not in section


def test_without_models_read_the_scores_are_not_shown(
    scored_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every built-in role that reads entities also reads models: a role without it is
    # what a narrower custom role would be.
    narrower = permissions.READ - {"models:read"}
    monkeypatch.setitem(permissions.ROLES, "viewer", narrower)
    client = client_for(scored_rt, "viewer")
    risky, high, _ = stored(scored_rt, highest=True)
    page = client.get(f"/entities/subscriber/{risky}")
    assert page.status_code == 200, page.text
    assert 'id="scores-h"' not in page.text and "Model scores" not in page.text
    assert f"{high:.3f}" not in page.text
    # the API refuses the same principal the score (the one permission for both)
    assert client.get(f"/v1/models/churn/scores/{risky}").status_code == 403
