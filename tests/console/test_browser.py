"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright.

Playwright's own browser download does not work here, so the tests use the system's
``/usr/bin/chromium``. Without it they skip, naming the reason; under ``CI=true`` they
fail instead (`.ci/run` installs chromium first), as `tests.services` does for services.
The fixtures (`browser`, `page`, `server`) are in conftest.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tagloop.runtime import Runtime
from tests.console.conftest import browser_sign_in, new_failed_run

pytestmark = pytest.mark.browser


def test_sign_in_find_a_customer_and_read_why_it_has_a_tag(page: Any) -> None:
    browser_sign_in(page, "viewer", "/entities")
    page.get_by_label("Entity id").fill("C-1")
    page.keyboard.press("Enter")  # the form works from the keyboard
    page.wait_for_url(re.compile(r"/entities/customer/C-1$"))
    assert page.get_by_role("heading", name=re.compile("customer C-1")).is_visible()
    page.get_by_role("link", name="VIP").click()  # htmx loads the explanation in place
    why = page.locator(".explain")
    why.wait_for()
    assert "spend >= 1000" in why.inner_text()
    assert "/entities/customer/C-1" in page.url  # no navigation: progressive enhancement


def test_the_overview_draws_its_charts(page: Any) -> None:
    browser_sign_in(page, "viewer", "/")
    page.wait_for_function("document.querySelectorAll('.chart canvas').length >= 3")
    assert page.locator("#events-now").is_visible()


def test_an_operator_retries_a_failed_flow_run(page: Any, console_rt: Runtime) -> None:
    run_id = new_failed_run(console_rt)
    browser_sign_in(page, "operator", f"/runs/{run_id}")
    assert page.locator("#run-status").inner_text() == "failed"
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(re.compile(r"retried=1$"))
    assert page.get_by_role("status").inner_text() == "Queued again"


def test_a_viewer_has_no_retry_button(page: Any, failed_run: str) -> None:
    browser_sign_in(page, "viewer", f"/runs/{failed_run}")
    assert page.get_by_role("button", name="Retry").count() == 0


def test_the_language_switch(page: Any) -> None:
    browser_sign_in(page, "viewer", "/tags")
    page.get_by_role("link", name="中文").click()
    page.wait_for_selector("h1:has-text('标签目录')")
    page.get_by_label("搜索标签（中文或英文）").fill("上海")
    page.wait_for_function("!document.querySelector('#tag-table').innerText.includes('hot_batch')")
    assert "上海客户" in page.locator("#tag-table").inner_text()
