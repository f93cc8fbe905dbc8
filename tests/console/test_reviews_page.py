"""The review queue page (``/reviews``): the queue with its evidence, filters and pages,
approve / reject / override and bulk decisions through the API's own code (the entity's
tag follows, the audit trail records them), roles, CSRF and PII masking, and the overview's
count of pending items."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tagloop.api.auth import CSRF_COOKIE
from tagloop.ingest import canonical
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch
from tagloop.review import queue
from tagloop.review.policy import gated
from tagloop.runtime import Runtime
from tagloop.store import tags as tag_store
from tagloop.store import users as user_store
from tagloop.store.tables import audit_log, review_items
from tagloop.store.tags import TagChange
from tagloop.timeutil import now_us
from tests.console.conftest import PASSWORD
from tests.flows.conftest import FAILING_HOOK, flow_workspace

SignIn = Callable[[str], TestClient]
DAY = 86_400_000_000

# Tags held back for a reviewer, beside the console workspace's own (VIP, 上海客户, ...):
# `big` reads `name` (PII) so its evidence carries personal data; `grade` has a value to
# override; `churn_risk` is what a model's scores go through (confidence in between).
REVIEW_TAGS = """\
tags:
  - name: big
    entity: customer
    rule: spend >= 1000 and name != ''
    review: all
  - name: grade
    entity: customer
    value: "case when spend >= 500 then 'A' else 'B' end"
    review: all
  - name: churn_risk
    entity: customer
    kind: imported
    review: {mode: confidence, above: 0.9, below: 0.5}
"""


def review_workspace(root: Path) -> Path:
    """The console tests' workspace (tests/console/conftest.py) with the tags above."""
    ws = flow_workspace(
        root / "ws", f"sqlite:///{root / 'tagloop.db'}", {"hook.yaml": FAILING_HOOK}
    )
    (ws / "tags" / "reviews.yaml").write_text(REVIEW_TAGS, encoding="utf-8")
    return ws


_EVENTS = itertools.count()


def customers(rt: Runtime, *profiles: tuple[str, dict[str, Any]]) -> None:
    """Ingest customer profiles (id, attributes) through the streaming path."""
    batch = Batch()
    body = [
        {
            "id": f"rq-{next(_EVENTS)}",
            "type": "identify",
            "entity": {"type": "customer", "id": entity_id},
            "attributes": attributes,
        }
        for entity_id, attributes in profiles
    ]
    canonical.to_events(body, batch, ParseContext(rt.clock(), rt.workspace.timezone, "api"))
    rt.ingestor.check(batch)
    assert not batch.rejections, batch.rejections
    rt.ingestor.commit([event for _, event in batch.events])


def scored(rt: Runtime, entity_id: str, score: float) -> None:
    """A model's score on churn_risk, as a model layer stores it (through the policy)."""
    customers(rt, (entity_id, {"city": "杭州"}))
    raw = TagChange(
        "customer", entity_id, "churn_risk", "assigned", True, None, 1, "model:churn@v1",
        {"contributions": {"tenure": -0.31, "monthly_charges": 0.52, "contract": 0.05}},
        rt.clock(), confidence=score,
    )  # fmt: skip
    change = gated(raw, rt.workspace.tags["churn_risk"].spec.review, None)
    assert change is not None
    with rt.db.write() as conn:
        tag_store.apply(rt.db, conn, [change])


def item_id(rt: Runtime, tag: str, entity_id: str, status: str | None = "pending") -> int:
    chosen = queue.filters(
        rt.workspace, now=rt.clock(), tag=tag, entity_id=entity_id, status=status
    )
    (item,) = queue.page(rt.db, chosen, now=rt.clock(), after=None, limit=10)["items"]
    return int(item["id"])


def held(rt: Runtime, entity_id: str) -> dict[str, tuple[Any, str]]:
    with rt.db.read() as conn:
        return {
            a.tag: (a.value, a.status) for a in tag_store.for_entity(conn, "customer", entity_id)
        }


def add_reviewer(rt: Runtime) -> None:
    with rt.db.write() as conn:
        if user_store.get(conn, "reviewer") is None:
            user_store.create(conn, "reviewer", PASSWORD, ["reviewer"], now_us())


@pytest.fixture(scope="module")
def console_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return review_workspace(tmp_path_factory.mktemp("console-reviews"))


@pytest.fixture(scope="module", autouse=True)
def reviewer(console_rt: Runtime, failed_run: str) -> None:
    add_reviewer(console_rt)


def csrf(client: TestClient) -> str:
    return str(client.cookies[CSRF_COOKIE])


def row(html: str, number: int) -> str:
    """The queue's row of an item."""
    found = re.search(rf'<tr class="item" id="item-{number}".*?</tr>', html, re.S)
    assert found is not None, f"no row of item {number}"
    return found.group(0)


def test_the_queue_lists_items_with_their_evidence(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, ("Q-1", {"spend": 2500, "name": "李雷", "city": "上海"}))
    scored(console_rt, "Q-2", 0.7)
    page = as_role("reviewer").get("/reviews?entity_id=Q-1")
    assert page.status_code == 200 and "Review queue" in page.text
    big = row(page.text, item_id(console_rt, "big", "Q-1"))
    assert 'href="/entities/customer/Q-1"' in big and "big" in big and "100.0%" in big
    assert "<code>spend</code> = <code>2500</code>" in big and "spend &gt;= 1000" in big
    grade = row(page.text, item_id(console_rt, "grade", "Q-1"))
    assert '<code class="value">A</code>' in grade
    model = as_role("reviewer").get("/reviews?tag=churn_risk&entity_id=Q-2").text
    churn = row(model, item_id(console_rt, "churn_risk", "Q-2"))
    # The model's top contributions, the largest first, and its score as the confidence.
    assert churn.index("monthly_charges") < churn.index("tenure") < churn.index("contract")
    assert "+0.520" in churn and "-0.310" in churn and "70.0%" in churn


def test_filters_narrow_the_queue_and_bad_ones_say_why(
    as_role: SignIn, console_rt: Runtime
) -> None:
    customers(console_rt, ("F-1", {"spend": 3000, "name": "甲"}), ("F-2", {"spend": 10}))
    client = as_role("viewer")
    only_grade = client.get("/reviews?tag=grade&entity_id=F-1").text
    assert f'id="item-{item_id(console_rt, "grade", "F-1")}"' in only_grade
    assert f'id="item-{item_id(console_rt, "big", "F-1")}"' not in only_grade
    by_type = client.get("/reviews?entity_type=customer&entity_id=F-2").text
    assert by_type.count('<tr class="item"') == 1  # F-2 proposes grade B only
    # Age: make one of F-1's items three days old.
    old = item_id(console_rt, "big", "F-1")
    with console_rt.db.write() as conn:
        conn.execute(
            update(review_items)
            .where(review_items.c.id == old)
            .values(created_at=console_rt.clock() - 3 * DAY)
        )
    aged = client.get("/reviews?entity_id=F-1&older_than=2d").text
    assert aged.count('<tr class="item"') == 1 and f'id="item-{old}"' in aged and "3d" in aged
    recent = client.get("/reviews?entity_id=F-1&newer_than=1d").text
    assert f'id="item-{old}"' not in recent and recent.count('<tr class="item"') == 1
    assert "No review item matches" in client.get("/reviews?entity_id=F-1&status=approved").text
    # Bad filters: the form again, with the API's message and status.
    bad_age = client.get("/reviews?older_than=soon")
    assert bad_age.status_code == 400 and "older_than" in bad_age.text
    assert 'value="soon"' in bad_age.text  # kept in the form to correct it
    unknown = client.get("/reviews?tag=no_such_tag")
    assert unknown.status_code == 404 and "unknown tag" in unknown.text
    assert client.get("/reviews?status=lost").status_code == 400
    assert client.get("/reviews?after=abc").status_code == 400


def test_pages_follow_each_other_on_the_server(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, *((f"P-{i:02d}", {"spend": 100}) for i in range(30)))
    client = as_role("viewer")
    ids = [item_id(console_rt, "grade", f"P-{i:02d}") for i in range(30)]
    assert "Items 1–25 of" in client.get("/reviews?tag=grade").text
    pages: list[int] = []
    link: str | None = "/reviews?tag=grade"
    while link:
        html = client.get(link.replace("&amp;", "&")).text
        pages += [int(n) for n in re.findall(r'<tr class="item" id="item-(\d+)"', html)]
        found = re.search(r'<a href="([^"]+)" rel="next">', html)
        link = found.group(1) if found else None
        if link:
            assert 'rel="prev"' in client.get(link.replace("&amp;", "&")).text
    assert pages == sorted(pages) and len(pages) == len(set(pages))
    assert set(ids) <= set(pages)


def test_approve_applies_the_tag_audited_and_returns_to_the_filters(
    as_role: SignIn, console_rt: Runtime
) -> None:
    customers(console_rt, ("A-1", {"spend": 5000, "name": "韩梅梅"}))
    number = item_id(console_rt, "big", "A-1")
    client = as_role("reviewer")
    page = client.get("/reviews?entity_id=A-1")
    assert f'action="/reviews/{number}/approve"' in page.text
    assert held(console_rt, "A-1")["big"] == (True, "pending")
    done = client.post(
        f"/reviews/{number}/approve",
        data={"csrf_token": csrf(client), "back": "entity_id=A-1&evil=https://x.example"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/reviews?entity_id=A-1&done=approve&n=1&stale=0&skipped=0"
    after = client.get(done.headers["location"])
    assert "Approved 1" in after.text and f'id="item-{number}"' not in after.text
    assert held(console_rt, "A-1")["big"] == (True, "active")
    decided = client.get(f"/v1/reviews/{number}").json()
    assert decided["status"] == "approved" and decided["decision"]["by"] == "reviewer"
    with console_rt.db.read() as conn:
        records = list(
            conn.execute(audit_log.select().where(audit_log.c.action == "review.approve"))
        )
    assert ("reviewer", "user") in {(r.actor, r.actor_kind) for r in records}
    # Decided already: the API's 409, as a page.
    again = client.post(f"/reviews/{number}/approve", data={"csrf_token": csrf(client)})
    assert again.status_code == 409 and "not pending" in again.text


def test_reject_needs_a_reason_from_the_list(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, ("J-1", {"spend": 4000, "name": "张三"}))
    number = item_id(console_rt, "big", "J-1")
    client = as_role("reviewer")
    page = client.get("/reviews?entity_id=J-1").text
    assert '<option value="outdated">outdated</option>' in page
    assert 'name="reason" required' in page
    token = csrf(client)
    missing = client.post(f"/reviews/{number}/reject", data={"csrf_token": token})
    assert missing.status_code == 400 and "needs a reason" in missing.text
    unknown = client.post(f"/reviews/{number}/reject", data={"csrf_token": token, "reason": "meh"})
    assert unknown.status_code == 400 and "unknown reason" in unknown.text
    done = client.post(
        f"/reviews/{number}/reject",
        data={"csrf_token": token, "reason": "outdated", "back": "status=all&entity_id=J-1"},
    )
    assert done.status_code == 200 and "Rejected 1" in done.text
    assert "outdated" in row(done.text, number) and "rejected" in row(done.text, number)
    assert held(console_rt, "J-1")["big"] == (True, "rejected")
    assert client.get(f"/v1/reviews/{number}").json()["decision"]["reason"] == "outdated"


def test_override_applies_the_reviewers_value(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, ("O-1", {"spend": 700}))
    number = item_id(console_rt, "grade", "O-1")
    client = as_role("reviewer")
    done = client.post(
        f"/reviews/{number}/override", data={"csrf_token": csrf(client), "value": "C"}
    )
    assert done.status_code == 200 and "Overridden 1" in done.text
    assert held(console_rt, "O-1")["grade"] == ("C", "active")
    assert client.get(f"/v1/reviews/{number}").json()["status"] == "overridden"


def test_bulk_approves_or_rejects_the_selected(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, *((f"B-{i}", {"spend": 9000, "name": f"客户{i}"}) for i in range(3)))
    numbers = [item_id(console_rt, "big", f"B-{i}") for i in range(3)]
    client = as_role("reviewer")
    page = client.get("/reviews?tag=big&entity_id=B-0").text
    assert 'id="bulk"' in page and f'name="item-{numbers[0]}"' in page and 'form="bulk"' in page
    token = csrf(client)
    nothing = client.post("/reviews/decisions", data={"csrf_token": token, "action": "approve"})
    assert nothing.status_code == 400 and "select at least one" in nothing.text
    chosen = {f"item-{n}": "1" for n in numbers[:2]}
    approved = client.post(
        "/reviews/decisions",
        data={"csrf_token": token, "action": "approve", "back": "tag=big", **chosen},
        follow_redirects=False,
    )
    assert approved.headers["location"].startswith("/reviews?tag=big&done=approve&n=2&")
    assert [held(console_rt, f"B-{i}")["big"][1] for i in range(3)] == [
        "active",
        "active",
        "pending",
    ]
    no_reason = client.post(
        "/reviews/decisions",
        data={"csrf_token": token, "action": "reject", f"item-{numbers[2]}": "1"},
    )
    assert no_reason.status_code == 400 and "needs a reason" in no_reason.text
    # One still pending, one decided already: the decided one is reported, not decided again.
    rejected = client.post(
        "/reviews/decisions",
        data={
            "csrf_token": token,
            "action": "reject",
            "reason": "duplicate",
            f"item-{numbers[2]}": "1",
            f"item-{numbers[0]}": "1",
        },
    )
    assert "Rejected 1" in rejected.text and "1 were no longer pending" in rejected.text
    assert held(console_rt, "B-2")["big"] == (True, "rejected")
    assert held(console_rt, "B-0")["big"] == (True, "active")


def test_a_viewer_sees_no_decisions_and_the_server_refuses_them(
    as_role: SignIn, console_rt: Runtime
) -> None:
    customers(console_rt, ("V-1", {"spend": 1200, "name": "李四"}))
    number = item_id(console_rt, "big", "V-1")
    client = as_role("viewer")
    page = client.get("/reviews?entity_id=V-1").text
    assert f'id="item-{number}"' in page
    assert "/approve" not in page and 'type="checkbox"' not in page and 'id="bulk"' not in page
    assert "<kbd>a</kbd>" not in page and "<kbd>j</kbd>" in page  # only the keys that apply
    token = csrf(client)
    for action, extra in (("approve", {}), ("reject", {"reason": "other"}), ("override", {})):
        refused = client.post(f"/reviews/{number}/{action}", data={"csrf_token": token, **extra})
        assert refused.status_code == 403 and "reviews:write" in refused.text
    bulk = client.post(
        "/reviews/decisions", data={"csrf_token": token, "action": "approve", f"item-{number}": "1"}
    )
    assert bulk.status_code == 403
    assert held(console_rt, "V-1")["big"] == (True, "pending")
    # Signed out: the queue asks for a sign-in first.
    client.cookies.clear()
    assert client.get("/reviews", follow_redirects=False).headers["location"].startswith("/login")


def test_a_decision_without_the_csrf_token_is_refused(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, ("X-1", {"spend": 1300, "name": "王五"}))
    number = item_id(console_rt, "big", "X-1")
    client = as_role("reviewer")
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post(f"/reviews/{number}/approve", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
    bulk = client.post("/reviews/decisions", data={"action": "approve", f"item-{number}": "1"})
    assert bulk.status_code == 403
    assert held(console_rt, "X-1")["big"] == (True, "pending")


def test_personal_data_is_masked_without_pii_read(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, ("M-1", {"spend": 8000, "name": "赵六"}))
    number = item_id(console_rt, "big", "M-1")
    reviewer = row(as_role("reviewer").get("/reviews?entity_id=M-1").text, number)
    assert "赵六" not in reviewer and "<code>name</code> = <code>***</code>" in reviewer
    admin = row(as_role("admin").get("/reviews?entity_id=M-1").text, number)
    assert "<code>name</code> = <code>赵六</code>" in admin


def test_htmx_replaces_the_row_or_shows_the_error(as_role: SignIn, console_rt: Runtime) -> None:
    customers(console_rt, ("H-1", {"spend": 1100, "name": "钱七"}))
    number = item_id(console_rt, "big", "H-1")
    client = as_role("reviewer")
    headers = {"HX-Request": "true", "X-CSRF-Token": csrf(client)}
    fragment = client.post(f"/reviews/{number}/approve", headers=headers)
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith("<tr")
    assert f'id="item-{number}"' in fragment.text and "approved" in fragment.text
    assert 'data-message="Approved 1"' in fragment.text and "<form" not in fragment.text
    again = client.post(f"/reviews/{number}/approve", headers=headers)
    assert again.status_code == 409 and again.headers["HX-Retarget"] == "#queue-status"
    assert "not pending" in again.text and "<html" not in again.text


def test_unknown_items_are_404_pages(as_role: SignIn) -> None:
    client = as_role("reviewer")
    for target in ("/reviews/999999/approve", "/reviews/abc/approve"):
        missing = client.post(target, data={"csrf_token": csrf(client)})
        assert missing.status_code == 404 and "no review item" in missing.text


def test_the_overview_counts_the_pending_items(as_role: SignIn, console_rt: Runtime) -> None:
    client = as_role("viewer")
    expected = client.get("/v1/reviews?limit=1").json()["total"]
    for path in ("/", "/overview/live"):
        html = client.get(path).text
        found = re.search(r'<a href="/reviews" id="reviews-pending"[^>]*>([\d,]+)</a>', html)
        assert found is not None and int(found.group(1).replace(",", "")) == expected
    assert '<a href="/reviews">Reviews</a>' in client.get("/tags").text  # the nav link
    assert "审核队列" in client.get("/reviews", headers={"Accept-Language": "zh-CN"}).text


def test_statuses_policies_and_reasons_read_in_both_languages() -> None:
    from tagloop.console import i18n
    from tagloop.console.reviews import STATUSES
    from tagloop.workspace.models import ReviewSettings

    keys = [f"review_status.{s}" for s in STATUSES]
    keys += [f"review_policy.{p}" for p in ("all", "confidence", "sample")]
    keys += [f"reason.{r}" for r in ReviewSettings().reasons]
    for lang in i18n.LANGUAGES:
        assert [k for k in keys if k not in i18n.MESSAGES[lang]] == [], lang


def test_a_restricted_reviewer_sees_and_decides_only_its_types(
    anonymous: TestClient, console_rt: Runtime
) -> None:
    from tests.console.conftest import sign_in

    customers(console_rt, ("T-1", {"spend": 1900, "name": "孙八"}))
    number = item_id(console_rt, "big", "T-1")
    with console_rt.db.write() as conn:
        if user_store.get(conn, "batches") is None:
            user_store.create(
                conn, "batches", PASSWORD, ["reviewer"], now_us(), entity_types=["product_batch"]
            )
    anonymous.cookies.clear()
    client = sign_in(anonymous, "batches")
    assert "No review item matches" in client.get("/reviews").text
    assert client.get("/reviews?tag=big").status_code == 404  # as if it did not exist
    refused = client.post(f"/reviews/{number}/approve", data={"csrf_token": csrf(client)})
    assert refused.status_code == 404 and "no review item" in refused.text
    live = client.get("/overview/live").text
    assert '<a href="/reviews" id="reviews-pending" aria-describedby="h-reviews">0</a>' in live
    assert held(console_rt, "T-1")["big"] == (True, "pending")
    anonymous.cookies.clear()
