"""The demo's streaming chat page in a real browser, served as `make demo` serves it: uvicorn
(ASGI) running the example project on its embedded database cache, Debian's Chromium driven
by Playwright. The first ask streams live from the local model; the second is replayed from
the cache; the page says which."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.servers import Server, free_port
from tests.test_admin_browser import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Does the cache replay a streamed answer?"
#: The page is streaming and has shown part of the answer already.
STREAMING_PART_WAY = """() => document.getElementById("outcome").dataset.state === "streaming"
    && document.getElementById("answer-text").textContent.length > 0"""


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example project under uvicorn on a free port, on a fresh SQLite file."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "example_project.settings", "LLMCACHE_DEMO_LATENCY": "1.0"}
    env.update(LLMCACHE_DEMO_DB=str(tmp_path_factory.mktemp("demo") / "db.sqlite3"), LLMCACHE_DEMO_BACKEND="database")
    env.pop("OPENAI_API_KEY", None)
    for command in (["migrate", "--noinput", "-v", "0"], ["createcachetable"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "example_project.asgi:application", "--port", str(port)]
    server = Server("uvicorn", port)
    server.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server._wait_until_listening()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def page(demo_url: str) -> Iterator[Page]:
    """A page of headless Chromium on the demo."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("The demo browser test needs Chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(base_url=demo_url)
        page.goto("/")
        yield page
        browser.close()


def ask(page: Page, view: str, prompt: str = PROMPT) -> None:
    page.fill("textarea[name=prompt]", prompt)
    page.click(f"button[data-view={view}]")


@pytest.mark.parametrize("view", ["sync", "async"])
def test_first_ask_streams_live_and_the_second_is_replayed_from_the_cache(page: Page, view: str) -> None:
    prompt = f"{PROMPT} ({view} view)"
    outcome, answer = page.locator("#outcome"), page.locator("#answer-text")
    ask(page, view, prompt)
    page.wait_for_function(STREAMING_PART_WAY)  # part of the answer is on the page, more to come
    expect(outcome).to_have_text("Cache miss · streamed live from the model")
    live_answer = answer.text_content()
    ask(page, view, prompt)

    expect(outcome).to_have_text("Cache hit · replayed from the cache")
    expect(answer).to_have_text(live_answer or "")
    expect(page.locator("#view-badge")).to_have_text(f"{view} view")
    expect(page.locator("#timing")).to_contain_text("chunks")
    expect(page.locator("#tokens")).to_contain_text("tokens saved")
    assert int(page.locator("#tokens-saved").text_content() or 0) > 0
