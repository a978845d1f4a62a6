"""The dashboard's savings over time and money column in Chromium, at 800, 1280 and 1920 px,
light and dark (issue 24): the charts draw, the cost column shows, nothing spills out."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from llmcache_django.core import series
from llmcache_django.core.cache import LLMCache
from tests import test_admin_browser
from tests.savings_models import PricedChatModel
from tests.test_admin_browser import ARTIFACTS, DASHBOARD, LAYOUT_PROBLEMS

pytestmark = pytest.mark.django_db(transaction=True)
# The admin browser tests' fixtures: Chromium, the static files, the emptied database cache.
browser = test_admin_browser.browser
static_files = test_admin_browser.static_files
cache = test_admin_browser.cache
PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.60}}
#: The relative luminance (0-255) of an element's background colour.
BACKGROUND_LUMA = """(element) => {
  const [r, g, b] = getComputedStyle(element).backgroundColor.match(/[0-9.]+/g).map(Number);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}"""


def fill_history(cache: LLMCache) -> None:
    """Real lookups through a model for the current hour, and earlier hours' counts as their flushes wrote them."""
    model = PricedChatModel(cache=cache)
    for question in ("What is a cache?", "What is a TTL?", "What is a cache?", "What is a cache?"):
        model.invoke(question)
    now = time.time()
    for hours_ago in range(1, 48, 3):
        series.add(
            cache.store,
            {
                "hits": hours_ago % 7 + 1,
                "misses": 2,
                "tokens_saved": 4000 * (hours_ago % 7 + 1),
                "ms_saved": 1500 * (hours_ago % 7 + 1),
                "input_tokens:gpt-4o-mini": 1000 * (hours_ago % 7 + 1),
                "output_tokens:gpt-4o-mini": 3000 * (hours_ago % 7 + 1),
            },
            now - hours_ago * 3600,
        )


def test_the_savings_charts_and_cost_column_fit_every_width_light_and_dark(
    browser: Browser, live_server: Any, static_files: None, cache: LLMCache, settings: Any
) -> None:
    settings.LLM_CACHE_PRICES = PRICES
    fill_history(cache)
    User.objects.create_superuser("root", "root@example.com", "pw")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"/admin/login/?next={DASHBOARD}")
        page.fill("#id_username", "root")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(f"**{DASHBOARD}")
        for width in (800, 1280, 1920):
            for scheme in ("light", "dark"):
                page.set_viewport_size({"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
                page.reload()
                check_savings_section(page, width, scheme)
    finally:
        context.close()


def check_savings_section(page: Page, width: int, scheme: str) -> None:
    """The savings section at ``width`` pixels in the ``scheme`` colour scheme: every chart
    visible and inside the window, the right cost, the right background, nothing overflowing."""
    where = f"{width} px, {scheme}"
    section = page.locator('.llmcache-savings[data-alias="default"]')
    section.scroll_into_view_if_needed()
    for window in ("hourly", "daily"):
        for chart in ("lookups", "tokens", "time", "cost"):
            figure = section.locator(f'.llmcache-charts[data-window="{window}"] figure[data-chart="{chart}"]')
            expect(figure).to_be_visible()
            box = figure.locator("svg").bounding_box()
            assert box is not None and box["width"] >= 150 and box["x"] + box["width"] <= width, (where, box)
    expect(section.locator("th.llmcache-money")).to_have_text("Cost saved")
    expect(section.locator("tbody tr").first.locator("td.llmcache-money")).to_have_text(
        "0.0624"
    )  # 2 + 30 hits, each 1000 in + 3000 out: 0.00195
    hits = section.locator('[data-window="hourly"] [data-chart="lookups"] rect.llmcache-bar-hits')
    expect(hits).to_have_count(1 + 8)  # this hour and the 8 earlier hours within the last 24
    luma = page.locator(".llmcache-bar-chart svg").first.evaluate(BACKGROUND_LUMA)
    assert (luma < 100) if scheme == "dark" else (luma > 150), (where, luma)
    totals = section.locator(".llmcache-scroll").first
    assert totals.evaluate("(box) => box.scrollWidth <= box.clientWidth"), f"the totals table scrolls at {where}"
    assert page.evaluate(LAYOUT_PROBLEMS) == [], where
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"admin-savings-{width}px-{scheme}.png", full_page=True)


def test_no_price_no_cost_column(browser: Browser, live_server: Any, static_files: None, cache: LLMCache) -> None:
    fill_history(cache)
    User.objects.create_superuser("root", "root@example.com", "pw")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"/admin/login/?next={DASHBOARD}")
        page.fill("#id_username", "root")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(f"**{DASHBOARD}")
        section = page.locator('.llmcache-savings[data-alias="default"]')
        expect(section.locator('figure[data-chart="tokens"]').first).to_be_visible()
        expect(section.locator(".llmcache-money")).to_have_count(0)
        expect(section.locator('figure[data-chart="cost"]')).to_have_count(0)
    finally:
        context.close()
