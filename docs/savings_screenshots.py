"""Take docs/admin-savings-*.png from a running `make demo` (its own data, made through its pages).

    make demo DEMO_ADDR=127.0.0.1:8765 &
    python docs/savings_screenshots.py http://127.0.0.1:8765

Asks the demo's chat page a few questions twice each (a miss streamed live, then a hit
replayed), then logs in to the admin as demo / demo and screenshots the dashboard's
"Savings over time" at 800, 1280 and 1920 px, light and dark.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

DOCS = Path(__file__).resolve().parent
QUESTIONS = [
    "What does an LLM cache save?",
    "How long does an entry live?",
    "Does the cache replay a streamed answer?",
    "Which servers can hold the entries?",
]
DASHBOARD = "/admin/llmcache_django/llmcache/"


def ask_twice(page: Page, question: str, view: str) -> None:
    outcome, button = page.locator("#outcome"), page.locator(f"button[data-view={view}]")
    for expected in (re.compile(r"^Cache (miss|hit)"), re.compile(r"^Cache hit")):  # a miss unless asked before
        page.fill("textarea[name=prompt]", question)
        button.click()
        expect(outcome).to_have_text(expected, timeout=60_000)
        expect(button).to_be_enabled(timeout=60_000)


def main(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(base_url=url)
        page.goto("/")
        for index, question in enumerate(QUESTIONS):
            ask_twice(page, question, "sync" if index % 2 else "async")
        for width in (800, 1280, 1920):
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    base_url=url, viewport={"width": width, "height": 900}, color_scheme=scheme
                )
                admin = context.new_page()
                admin.goto(f"/admin/login/?next={DASHBOARD}")
                admin.fill("#id_username", "demo")
                admin.fill("#id_password", "demo")
                admin.click("input[type=submit]")
                admin.wait_for_url(f"**{DASHBOARD}")
                admin.screenshot(path=DOCS / f"admin-savings-{width}px-{scheme}.png", full_page=True)
                context.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
