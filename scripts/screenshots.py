"""Screenshots of each console page at 1440x900, into docs/screenshots/ (``make
screenshots``), taken with Debian's Chromium headless through Playwright on the demo
workspace.

The browser signs in with a short-lived operator API key (sent as ``Authorization``; the
console accepts keys as the API does), revoked at the end, so no password is needed and
no personal data is shown (operators do not read PII).

    .venv/bin/python scripts/screenshots.py [--workspace demo-workspace] [--lang zh]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from urllib.parse import quote

import uvicorn
from sqlalchemy import select

from tagloop import logs
from tagloop.api.app import create_app
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store.tables import entities, flow_runs, tag_assignments
from tagloop.timeutil import now_us

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


def targets(rt: Runtime) -> list[tuple[str, str]]:
    """(file name, path) of every page, on the busiest customer and the latest run."""
    with rt.db.read() as conn:
        busiest = conn.execute(
            select(entities.c.id)
            .join(
                tag_assignments,
                (tag_assignments.c.entity_type == entities.c.type)
                & (tag_assignments.c.entity_id == entities.c.id),
            )
            .where(entities.c.type == "customer", tag_assignments.c.tag == "VIP")
            .order_by(entities.c.event_count.desc())
            .limit(1)
        ).scalar()
        failed = conn.execute(
            select(flow_runs.c.id).where(flow_runs.c.status == "failed").limit(1)
        ).scalar()
        latest = (
            failed
            or conn.execute(
                select(flow_runs.c.id).order_by(flow_runs.c.created_at.desc()).limit(1)
            ).scalar()
        )
    found = [
        ("overview", "/"),
        ("tags", "/tags"),
        ("tag", f"/tags/{quote('VIP')}"),  # the tag page with its rule editor
        ("entity", f"/entities/customer/{quote(str(busiest))}"),
        ("flows", "/flows"),
    ]
    flow = next(iter(rt.workspace.flows), None)
    if flow is not None:
        found.append(("flow", f"/flows/{quote(flow)}"))
    if latest is not None:
        found.append(("run", f"/runs/{latest}"))
    found.append(("sources", "/sources"))
    found.append(("reviews", "/reviews"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / "demo-workspace")
    parser.add_argument("--lang", default="zh", choices=["zh", "en"])
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    logs.configure(level="WARNING")
    rt = Runtime.open(args.workspace)
    with rt.db.write() as conn:
        # operator and editor: the pages show the retry and save buttons people use
        made = key_store.create(conn, "screenshots", ["operator", "editor"], now_us())
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    OUT.mkdir(parents=True, exist_ok=True)
    locale = "zh-CN" if args.lang == "zh" else "en-US"
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
            anonymous = browser.new_context(viewport={"width": 1440, "height": 900}, locale=locale)
            page = anonymous.new_page()
            page.goto(f"{url}/login")
            page.screenshot(path=str(OUT / "signin.png"))
            context = browser.new_context(
                viewport={"width": 1440, "height": 900},
                locale=locale,
                extra_http_headers={"Authorization": f"Bearer {made.secret}"},
            )
            page = context.new_page()
            for name, path in targets(rt):
                page.goto(url + path)
                if name == "overview":
                    page.wait_for_function("document.querySelectorAll('.chart canvas').length >= 3")
                if name == "tag":  # the visual builder, drawn by the page's script
                    page.wait_for_selector("#builder fieldset")
                if name == "entity":  # open "why" of the first tag, as a user would
                    link = page.locator("a.why").first
                    if link.count():
                        link.click()
                        page.locator(".explain").wait_for()
                page.screenshot(path=str(OUT / f"{name}.png"))
                print(f"docs/screenshots/{name}.png  {path}")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        with rt.db.write() as conn:
            key_store.revoke(conn, made.prefix, now_us())
        rt.close()


if __name__ == "__main__":
    main()
