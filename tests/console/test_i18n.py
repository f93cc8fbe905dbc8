"""Both languages: every key in both, Chinese when the browser asks, the switch."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from tagloop.console import i18n

SignIn = Callable[[str], TestClient]
TEMPLATES = Path(i18n.__file__).parent / "templates"
PYTHON = Path(i18n.__file__).parent


def test_every_key_is_in_both_languages() -> None:
    assert set(i18n.MESSAGES["zh"]) == set(i18n.MESSAGES["en"])
    for lang, messages in i18n.MESSAGES.items():
        assert all(text.strip() for text in messages.values()), lang


def test_every_key_used_exists() -> None:
    used: set[str] = set()
    for path in [*TEMPLATES.glob("*.html"), *PYTHON.glob("*.py")]:
        used |= set(re.findall(r"""\bt\(['"]([a-z_]+\.[a-z_.]+|[a-z_]+)['"]""", path.read_text()))
    # Kinds are looked up as 'kind.' ~ tag.kind
    missing = sorted(k for k in used if k not in i18n.MESSAGES["en"])
    assert not missing, missing


def test_chinese_by_default_when_the_browser_asks(as_role: SignIn) -> None:
    client = as_role("viewer")
    chinese = client.get("/tags", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in chinese.text and "标签目录" in chinese.text
    english = client.get("/tags", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in english.text and "Tag catalogue" in english.text


def test_the_switch_remembers_the_language(as_role: SignIn) -> None:
    client = as_role("viewer")
    switched = client.get("/lang/en?next=/flows", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/flows"
    page = client.get("/flows", headers={"Accept-Language": "zh-CN"})
    assert "Flows" in page.text and '<html lang="en">' in page.text
    client.get("/lang/zh")
    assert "流程" in client.get("/flows").text
    # Only pages of this site are targets of the switch.
    assert (
        client.get("/lang/zh?next=https://evil.example", follow_redirects=False).headers["location"]
        == "/"
    )


def test_dates_in_the_workspace_zone() -> None:
    from zoneinfo import ZoneInfo

    zh = i18n.Locale("zh", ZoneInfo("Asia/Shanghai"))
    assert zh.time("2025-03-01T00:00:00Z") == "2025年3月1日 08:00"
    en = i18n.Locale("en", ZoneInfo("Asia/Shanghai"))
    assert en.time(1740787200000000) == "1 Mar 2025 08:00"
    assert en.number(1234567) == "1,234,567" and en.percent(0.5) == "50.0%"
