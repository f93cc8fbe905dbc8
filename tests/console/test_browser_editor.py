"""The rule editor in a real browser (Debian's Chromium through Playwright; fixtures in
conftest.py): edit a rule in the visual builder, preview, save, and see the catalogue's
coverage change; errors appear as one types."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_edit_in_the_builder_preview_save_and_see_coverage_change(page: Any) -> None:
    browser_sign_in(page, "editor", "/tags")
    vip = page.locator("#tag-table tr", has_text="big spenders")
    assert "50.0%" in vip.inner_text()  # C-1 of the two customers
    page.get_by_role("link", name="VIP", exact=True).click()
    page.wait_for_url(re.compile(r"/tags/VIP$"))
    # The visual builder opens by default: one condition, spend at least 1000.
    builder = page.locator("#builder")
    builder.wait_for()
    assert page.get_by_label("Attribute or aggregate").input_value() == "spend"
    value = builder.get_by_label("Value")
    assert value.input_value() == "1000"
    value.fill("10")
    # The text follows the builder (through the server's draft check).
    page.wait_for_function("document.getElementById('rule').value === 'spend >= 10'")
    assert page.locator("#rule-status").inner_text() == "The rule is valid."
    page.get_by_role("button", name="Preview").click()
    page.locator("#preview").wait_for()
    assert page.locator("#pv-gained").inner_text() == "+1"
    assert page.locator("#pv-lost").inner_text() == "−0"
    assert page.locator("#preview").get_by_role("link", name="C-2").is_visible()
    page.get_by_role("button", name="Save as version 2").click()
    page.wait_for_url(re.compile(r"/tags/VIP\?saved=2$"))
    assert "version 2 is in force" in page.get_by_role("status").inner_text()
    assert page.locator("#coverage").inner_text() == "100.0%"
    page.get_by_role("link", name="Tag catalogue").first.click()
    page.wait_for_url(re.compile(r"/tags$"))
    assert "100.0%" in page.locator("#tag-table tr", has_text="big spenders").inner_text()


def test_errors_appear_as_one_types(page: Any) -> None:
    browser_sign_in(page, "viewer", "/tags/%E4%B8%8A%E6%B5%B7%E5%AE%A2%E6%88%B7")
    page.get_by_role("button", name="Text").click()
    rule = page.get_by_label("Rule text")
    rule.fill("city == '上海' and spend >")
    error = page.locator("#rule-status .error")
    error.wait_for()
    assert error.inner_text().startswith("Line 1, column 25:")  # just past the ">"
    # Highlighting follows the text: the keyword and the string are marked.
    page.wait_for_function("document.querySelector('#highlight .tk-keyword') !== null")
    assert page.locator("#highlight .tk-string").inner_text() == "'上海'"
    rule.fill("city == '上海' and spend > 1")
    page.wait_for_function(
        "document.getElementById('rule-status').innerText === 'The rule is valid.'"
    )
    # The builder shows what the text says.
    page.get_by_role("button", name="Visual builder").click()
    assert page.get_by_label("Attribute or aggregate").count() == 2
    assert page.get_by_role("button", name="Save as version 2").count() == 0  # a viewer
