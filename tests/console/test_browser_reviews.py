"""The review queue in a real browser (Debian's Chromium through Playwright; fixtures in
conftest.py): a reviewer approves with the button and with the keyboard, rejects from the
keyboard, and the items leave the queue while the entity gains the tag."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tagloop.runtime import Runtime
from tests.console.conftest import PASSWORD, browser_sign_in
from tests.console.test_reviews_page import (
    add_reviewer,
    customers,
    held,
    item_id,
    review_workspace,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def console_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return review_workspace(tmp_path_factory.mktemp("browser-reviews"))


@pytest.fixture(scope="module")
def queued(console_rt: Runtime, failed_run: str) -> dict[str, int]:
    """A reviewer, and a `big` proposal for each of K-1, K-2, K-3 (entity id -> item)."""
    add_reviewer(console_rt)
    customers(console_rt, *((f"K-{i}", {"spend": 3000 + i, "name": f"客户{i}"}) for i in (1, 2, 3)))
    return {f"K-{i}": item_id(console_rt, "big", f"K-{i}") for i in (1, 2, 3)}


def test_a_reviewer_decides_with_buttons_and_keys(
    page: Any, queued: dict[str, int], console_rt: Runtime
) -> None:
    from playwright.sync_api import expect

    browser_sign_in(page, "reviewer", "/reviews")
    page.goto("/reviews?tag=big")
    first, second, third = (page.locator(f"#item-{queued[k]}") for k in ("K-1", "K-2", "K-3"))
    expect(page.locator("#keys-line")).to_contain_text("approve")  # the help line shows

    # The button: htmx replaces the row, the status line says so, focus moves on.
    first.get_by_role("button", name="Approve").click()
    expect(first).to_contain_text("approved")
    expect(page.locator("#queue-status")).to_have_text("Approved 1")
    expect(second).to_be_focused()

    # Typing in a field fires no shortcut: "a" in the entity id filter approves nothing.
    page.get_by_label("Entity id").press("a")
    expect(page.get_by_label("Entity id")).to_have_value("a")
    assert held(console_rt, "K-2")["big"] == (True, "pending")

    # The keyboard: j / k move between items, a approves the current one.
    second.focus()
    page.keyboard.press("j")
    expect(third).to_be_focused()
    page.keyboard.press("k")
    expect(second).to_be_focused()
    page.keyboard.press("a")
    expect(second).to_contain_text("approved")
    expect(third).to_be_focused()

    # r focuses the reason picker; Enter on the chosen reason rejects.
    page.keyboard.press("r")
    reason = third.get_by_label("Reason for rejecting")
    expect(reason).to_be_focused()
    reason.select_option("duplicate")
    reason.press("Enter")
    expect(third).to_contain_text("rejected")

    # ? shows the help.
    page.keyboard.press("?")
    expect(page.get_by_role("heading", name="Keyboard shortcuts")).to_be_visible()

    # Reloaded, the decided items have left the queue; the entity holds the tag.
    page.reload()
    expect(page.locator("table.queue")).to_be_visible()
    for item in queued.values():
        expect(page.locator(f"#item-{item}")).to_have_count(0)
    page.goto("/entities/customer/K-1")
    expect(page.get_by_role("link", name="big")).to_be_visible()
    assert held(console_rt, "K-3")["big"] == (True, "rejected")


def test_a_stray_key_decides_nothing_and_a_race_is_reported(
    page: Any, queued: dict[str, int], console_rt: Runtime
) -> None:
    from playwright.sync_api import expect

    from tagloop.audit import Actor
    from tagloop.review import decisions, queue

    customers(console_rt, ("W-1", {"spend": 1500, "name": "甲"}))
    browser_sign_in(page, "reviewer", "/reviews")
    page.goto("/reviews?entity_type=customer&entity_id=W-1")
    number = item_id(console_rt, "big", "W-1")
    row = page.locator(f"#item-{number}")
    # With no current item, "a" only makes the first item the current one.
    page.keyboard.press("a")
    expect(row).to_be_focused()
    assert held(console_rt, "W-1")["big"] == (True, "pending")
    # Another reviewer decides it meanwhile: the page says so and keeps the row.
    chosen = queue.filters(console_rt.workspace, now=console_rt.clock(), ids=[number])
    decisions.decide(console_rt, chosen, "approve", Actor("ana", "user", "10.0.0.7"))
    page.keyboard.press("a")
    expect(page.locator("#queue-status")).to_contain_text("not pending")
    expect(row).to_be_focused()


def test_without_scripts_the_forms_still_decide(
    browser: Any, server: Any, console_rt: Runtime, queued: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    customers(console_rt, ("N-1", {"spend": 4242, "name": "无脚本"}))
    number = item_id(console_rt, "big", "N-1")
    context = browser.new_context(base_url=server.url, locale="en-US", java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login?next=/reviews")
        page.get_by_label("Username").fill("reviewer")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/reviews$"))
        page.goto("/reviews?entity_id=N-1")
        page.locator(f"#item-{number}").get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_contain_text("Approved 1")
        expect(page.locator(f"#item-{number}")).to_have_count(0)
        assert "entity_id=N-1" in page.url  # back to the queue with its filters
    finally:
        context.close()
