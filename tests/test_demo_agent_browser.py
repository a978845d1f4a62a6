"""The demo's agent page in a real browser (uvicorn, Chromium via Playwright): the first run
shows each step live, model call by model call; the repeat says every step was replayed
from the cache with no model call, and its answer still arrives in pieces."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

# The served demo (this module's own uvicorn), the browser and a page on it.
from tests.test_demo_browser import browser, demo_url, migrated_demo_database, page  # noqa: F401

pytestmark = pytest.mark.xdist_group("demo-agent-browser")

QUESTION = "What is the weather in Madrid and in Oslo?"
#: The first run is under way and has shown a step already.
RUNNING_WITH_A_STEP = """() => document.getElementById("outcome").dataset.state === "running"
    && document.querySelectorAll("#steps li").length > 0"""


def run_agent(tab: Page) -> None:
    tab.fill("textarea[name=prompt]", QUESTION)
    tab.click("button[type=submit]")


def test_a_repeated_agent_run_replays_every_step_from_the_cache(page: Page) -> None:  # noqa: F811
    page.goto("/agent/")
    outcome, answer = page.locator("#outcome"), page.locator("li.answer .step-text")
    run_agent(page)
    page.wait_for_function(RUNNING_WITH_A_STEP)  # steps show while the agent is still at work
    expect(outcome).to_have_text("3 steps, 3 model calls")
    expect(page.locator("li.tool code")).to_have_text(["weather", "weather"])
    live_answer = answer.text_content()
    assert live_answer and "Madrid" in live_answer and "Oslo" in live_answer

    run_agent(page)

    expect(outcome).to_have_text("3 steps replayed, 0 model calls")
    expect(page.locator("li.model .source")).to_have_text(["replayed from the cache"] * 3)
    expect(answer).to_have_text(live_answer)
    assert int(page.locator("li.answer").get_attribute("data-pieces") or 0) > 1  # streamed, not one message
