"""Lists of entities in the console: the holders of a tag (from the catalogue and the tag
page), a type's entities, a page at a time in id order, PII masked as in the API."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

SignIn = Callable[[str], TestClient]


def ids(html: str) -> list[str]:
    table = html.split('id="entity-list"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'href="/entities/customer/([^"]+)"', table)


def test_the_holders_of_a_tag(as_role: SignIn) -> None:
    client = as_role("viewer")
    catalogue = client.get("/tags").text
    assert 'href="/entities?type=customer&amp;tag=VIP">1</a>' in catalogue
    page = client.get("/entities", params={"type": "customer", "tag": "VIP"})
    assert page.status_code == 200
    assert ids(page.text) == ["C-1"]
    assert "holding VIP" in page.text
    # Personal data is masked for a viewer, as in the API.
    assert "王芳" not in page.text and "***" in page.text


def test_every_entity_of_a_type_a_page_at_a_time(
    as_role: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagloop.console import profiles

    monkeypatch.setattr(profiles, "LISTED", 1)
    client = as_role("viewer")
    first = client.get("/entities", params={"type": "customer", "list": "1"}).text
    assert ids(first) == ["C-1"]
    following = re.search(r'href="(/entities\?[^"]*cursor=[^"]+)" rel="next"', first)
    assert following is not None
    second = client.get(following.group(1).replace("&amp;", "&")).text
    assert ids(second) == ["C-2"]
    assert 'rel="next"' not in second and "First page" in second


def test_a_tag_of_another_type_or_unknown_is_an_error_page(as_role: SignIn) -> None:
    client = as_role("viewer")
    other = client.get("/entities", params={"type": "customer", "tag": "hot_batch"})
    assert other.status_code == 400 and "applies to product_batch" in other.text
    unknown = client.get("/entities", params={"type": "customer", "tag": "VIPP"})
    assert unknown.status_code == 404 and "VIP" in unknown.text
