"""The tag page and its rule editor, through the app as a plain form (the page without
scripts): check, preview, save; roles; errors at their line and column."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from httpx import Response

from tagloop.api.auth import CSRF_COOKIE
from tagloop.runtime import Runtime
from tagloop.store.tables import audit_log

SignIn = Callable[[str], TestClient]


def post(client: TestClient, tag: str, **fields: str) -> Response:
    return client.post(
        f"/tags/{tag}",
        data={"csrf_token": client.cookies[CSRF_COOKIE], **fields},
        follow_redirects=False,
    )


def test_the_tag_page_shows_definition_rule_versions_and_trend(as_role: SignIn) -> None:
    page = as_role("viewer").get("/tags/VIP")
    assert page.status_code == 200
    html = page.text
    assert "<h1>VIP" in html and "big spenders" in html
    # The rule, highlighted on the server (readable without scripts).
    assert '<span class="tk-name">spend</span> <span class="tk-op">&gt;=</span>' in html
    assert 'id="trend-data"' in html
    # A viewer may check and preview, and sees no save button.
    assert 'value="preview"' in html and 'value="save"' not in html


def test_an_editor_sees_save_and_the_builder_vocabulary(as_role: SignIn) -> None:
    html = as_role("editor").get("/tags/VIP").text
    assert 'value="save"' in html and "Save as version 2" in html
    data = re.search(r'<script type="application/json" id="editor-data">(.*?)</script>', html)
    assert data is not None
    island = yaml.safe_load(data.group(1))  # JSON is YAML
    assert island["builder"] == {
        "type": "condition",
        "left": "spend",
        "op": ">=",
        "right": [{"value": 1000}],
    }
    terms = island["vocabulary"]["terms"]
    assert terms["spend"] == "number" and terms["sum(order.amount, 90d)"] == "number"
    assert "上海客户" in island["vocabulary"]["tags"] and "VIP" not in island["vocabulary"]["tags"]


def test_check_points_at_the_error(as_role: SignIn) -> None:
    client = as_role("viewer")
    response = post(client, "VIP", rule="spend >= 1\nand cty == 'x'", action="check")
    assert response.status_code == 400
    assert "Line 2, column 5: unknown" in response.text
    ok = post(client, "VIP", rule="spend >= 10", action="check")
    assert ok.status_code == 200 and "The rule is valid." in ok.text


def test_preview_shows_gains_and_losses_without_storing(as_role: SignIn) -> None:
    client = as_role("viewer")
    response = post(client, "VIP", rule="spend < 100", action="preview")
    html = response.text
    assert 'id="pv-holders">1<' in html and 'id="pv-now">1<' in html
    assert 'id="pv-gained">+1<' in html and 'id="pv-lost">−1<' in html
    assert 'href="/entities/customer/C-2">C-2</a>' in html  # the one that would gain it
    assert "Evaluated on all 2 entities." in html
    assert client.get("/v1/tags/VIP").json()["version"] == 1


def test_a_viewer_cannot_save(as_role: SignIn) -> None:
    response = post(as_role("viewer"), "VIP", rule="spend > 1", action="save", base_version="1")
    assert response.status_code == 403
    assert "tags:write" in response.text


def test_the_form_needs_the_csrf_token(as_role: SignIn) -> None:
    response = as_role("editor").post("/tags/VIP", data={"rule": "true", "action": "save"})
    assert response.status_code == 403 and "CSRF" in response.text


def test_an_editor_saves_a_new_version(
    as_role: SignIn, console_rt: Runtime, console_workspace: object
) -> None:
    client = as_role("editor")
    before = client.get("/tags").text
    assert "50.0%" in before  # VIP: C-1 of C-1 and C-2
    saved = post(
        client, "上海客户", rule="city in ['上海', '北京']", action="save", base_version="1"
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/tags/%E4%B8%8A%E6%B5%B7%E5%AE%A2%E6%88%B7?saved=2"
    page = client.get(saved.headers["location"]).text
    assert "Saved: version 2 is in force" in page and 'id="coverage">100.0%' in page
    with console_rt.db.read() as conn:
        actions = [r.action for r in conn.execute(audit_log.select()) if r.target_id == "上海客户"]
    assert actions[-1] == "tag.version"
    # The same form again, from the old version: refused, nothing written.
    stale = post(client, "上海客户", rule="city == '上海'", action="save", base_version="1")
    assert stale.status_code == 409
    assert "Not saved" in stale.text and "version 2" in stale.text


def test_imported_and_unknown_tags(as_role: SignIn) -> None:
    client = as_role("editor")
    assert client.get("/tags/nope").status_code == 404


def test_a_sampled_preview_offers_the_exact_count(
    as_role: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagloop.engine import drafts

    monkeypatch.setattr(drafts, "SAMPLE", 1)
    client = as_role("viewer")
    sampled = post(client, "VIP", rule="spend < 100", action="preview").text
    assert "Evaluated on a random sample of 1 of 2 entities" in sampled
    assert 'value="preview_all">Count exactly on all 2 entities<' in sampled
    exact = post(client, "VIP", rule="spend < 100", action="preview_all").text
    assert "Evaluated on all 2 entities." in exact and 'id="pv-holders">1<' in exact


def test_every_term_the_builder_offers_is_rule_text(tmp_path: Path) -> None:
    from tagloop.console.editor import vocabulary
    from tagloop.rules import parse
    from tagloop.workspace import load_workspace
    from tests.conftest import write_workspace

    shop = """
        name: shop
        fields:
          Customer ID: string
          营业额: number
        events:
          sale day:
            properties:
              net amount: number
    """
    root = write_workspace(tmp_path / "ws", "sqlite:///x.db", extra={"entities/shop.yaml": shop})
    terms = vocabulary(load_workspace(root), "none", "shop")["terms"]
    assert terms["`Customer ID`"] == "string" and terms["营业额"] == "number"
    assert terms["sum(`sale day`.`net amount`, 30d)"] == "number"
    for term in terms:
        parse(term)  # each is valid as the left side of a condition
