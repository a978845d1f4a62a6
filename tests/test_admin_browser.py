"""The "LLM cache" admin in a real browser: Playwright driving Debian's Chromium against
pytest-django's ``live_server``, on the embedded database cache."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django.contrib.admin
import pytest
from django.contrib.auth.models import User
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration
from playwright.sync_api import Browser, Page, expect, sync_playwright

import llmcache_django
from llmcache_django import llm_cache_control, llm_caches
from llmcache_django.core.cache import LLMCache
from llmcache_django.langgraph import LangGraphCache

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DASHBOARD = "/admin/llmcache_django/llmcache/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, launched once for the module's tests (each gets a context of its
    own). Playwright's sync API runs an event loop in this thread, which
    Django's async-safety check would take for async code calling the ORM."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("The admin browser test needs Chromium: apt-get install -y chromium")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def static_files(settings: Any, tmp_path: Path) -> None:
    """Let the live server serve the admin's CSS and ours, as ``collectstatic`` would lay
    them out, when ``django.contrib.staticfiles`` is not installed (the live server then
    serves ``STATIC_ROOT``, read on each request)."""
    if "django.contrib.staticfiles" in settings.INSTALLED_APPS:
        return
    root = tmp_path / "static"
    root.mkdir()
    (root / "admin").symlink_to(Path(django.contrib.admin.__file__).parent / "static" / "admin")
    (root / "llmcache_django").symlink_to(Path(llmcache_django.__file__).parent / "static" / "llmcache_django")
    settings.STATIC_ROOT = str(root)


@pytest.fixture
def cache(settings: Any) -> LLMCache:
    """The default alias on the database cache, empty; a second alias shows beside it."""
    settings.LLM_CACHES = {
        "default": {"CACHE": "db", "TTL": 3600},
        "summaries": {"CACHE": "default", "TTL": None, "NAMESPACE": "summaries"},
    }
    for alias in llm_caches:
        llm_caches[alias].clear()
        llm_caches[alias].reset_stats()
    return llm_caches["default"]


@pytest.fixture
def page(browser: Browser, live_server: Any, static_files: None) -> Iterator[Page]:
    """A browser page logged in to the admin as a superuser."""
    User.objects.create_superuser("root", "root@example.com", "pw")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 720})
    page = context.new_page()
    page.goto(f"/admin/login/?next={DASHBOARD}")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{DASHBOARD}")
    yield page
    context.close()


def test_operator_sees_an_entry_arrive_opens_it_and_clears_its_model(page: Page, cache: LLMCache) -> None:
    count = page.locator('tr[data-alias="default"] .llmcache-count')
    expect(count).to_have_text("0")
    fill_other_entries(cache)
    page.reload()
    expect(count).to_have_text("3")

    usage = {"input_tokens": 14, "output_tokens": 28, "total_tokens": 42}
    answer = AIMessage(content="Paris is the capital of France.", usage_metadata=usage)
    chat = GenericFakeChatModel(messages=iter([answer]), cache=cache)
    chat.invoke("What is the capital of France?")
    chat.invoke("What is the capital of France?")  # served from the cache: a hit on the chart
    page.reload()
    expect(count).to_have_text("4")
    row = page.locator('tr[data-alias="default"]')
    expect(row.locator(".llmcache-legend")).to_have_text("1 hit · 1 miss")
    expect(row).to_contain_text("42")  # tokens saved
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "admin-dashboard.png", full_page=True)

    page.click('tr[data-alias="default"] th a')
    page.screenshot(path=ARTIFACTS / "admin-entries.png", full_page=True)
    page.click("text=What is the capital of France?")
    expect(page.locator(".llmcache-text")).to_have_text("Paris is the capital of France.")
    expect(page.locator(".llmcache-ttl-left")).to_have_text(re.compile(r"59 min|1 h"))
    page.screenshot(path=ARTIFACTS / "admin-entry.png", full_page=True)

    page.click(".breadcrumbs a:text-is('default')")
    page.select_option("#llmcache-model", "generic-fake-chat-model")
    page.click("#changelist-search input[type=submit]")
    expect(page.locator("tr.llmcache-entry")).to_have_count(1)
    page.click("text=Clear model generic-fake-chat-model…")
    expect(page.locator(".llmcache-confirm-count")).to_have_text("1 entry")
    page.click("input[value='Yes, clear them']")

    expect(page.locator(".messagelist")).to_contain_text("Deleted 1 entry (model 'generic-fake-chat-model'")
    expect(page.locator("#result_list")).not_to_contain_text("What is the capital of France?")
    expect(page.locator("tr.llmcache-entry")).to_have_count(3)
    assert cache.count_entries(model="generic-fake-chat-model") == 0
    assert cache.count_entries() == 3


def fill_other_entries(cache: LLMCache) -> None:
    """Entries of two other models, as a real project would have them, and some traffic on
    the second alias."""
    for prompt, model, text in [
        ("Summarise the release notes for 2.0.", "gpt-4o", "Faster lookups, a new admin, safer clears."),
        ("Translate 'good morning' to Norwegian.", "gpt-4o", "God morgen."),
        ("Write a haiku about caches.", "claude-3-5-sonnet", "Keys hum in the dark / answers wait for questions"),
    ]:
        llm_string = f"[('_type', 'chat'), ('model_name', '{model}'), ('stop', None)]"
        cache.update(prompt, llm_string, [ChatGeneration(message=AIMessage(content=text))])
    summaries = llm_caches["summaries"]
    summary = FakeListChatModel(responses=["A short summary."], cache=summaries)
    for _ in range(4):
        summary.invoke("Summarise this ticket: the admin page is slow.")  # one miss, three hits
    summaries.flush_stats()


def test_with_its_servers_killed_the_admin_still_answers_and_fits_800_pixels(
    browser: Browser, live_server: Any, static_files: None, settings: Any
) -> None:
    from tests import servers

    redis_server, memcached_server = servers.start_redis(), servers.start_memcached()
    settings.CACHES = {
        **settings.CACHES,
        "redis": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        },
        "memcached": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": memcached_server.location,
        },
    }
    settings.LLM_CACHES = {"default": {"CACHE": "db"}, "chat": {"CACHE": "redis"}, "summaries": {"CACHE": "memcached"}}
    llm_caches["default"].clear()
    for alias in ("chat", "summaries"):
        FakeListChatModel(responses=["x"], cache=llm_caches[alias]).invoke("a question long enough to wrap " * 4)
    redis_server.stop()
    memcached_server.stop()
    User.objects.create_superuser("root", "root@example.com", "pw")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 800, "height": 720})
    page = context.new_page()
    try:
        page.goto(f"/admin/login/?next={DASHBOARD}")
        page.fill("#id_username", "root")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(f"**{DASHBOARD}")
        for alias, port in (("chat", redis_server.port), ("summaries", memcached_server.port)):
            expect(page.locator(f'tr[data-alias="{alias}"] .llmcache-error')).to_contain_text(f"127.0.0.1:{port}")
        expect(page.locator('tr[data-alias="default"] .llmcache-count')).to_have_text("0")  # the rest still works
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "admin-dashboard-servers-down-800px.png", full_page=True)
        page.click('tr[data-alias="chat"] th a')
        expect(page.locator(".llmcache-server-error")).to_contain_text(f"127.0.0.1:{redis_server.port}")
        expect(page.locator("#searchbar")).to_have_count(0)
        expect(page.locator("a.llmcache-clear")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


#: What a page at a given width must not do: be wider than the window, clip or hide a
#: control, cover the title with the object tools, or break a word of a prompt in two
#: (elsewhere than after a hyphen).
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const page = document.documentElement.scrollWidth;
  if (page > window.innerWidth) problems.push(`the page is ${page} px wide`);
  const controls = "#content a.button, #content input[type=submit], #content .object-tools a";
  for (const control of document.querySelectorAll(controls)) {
    const rect = control.getBoundingClientRect(), name = control.textContent.trim() || control.value;
    if (rect.right > window.innerWidth + 1) problems.push(`${name} is off the window`);
    for (let box = control.parentElement; box && box !== document.body; box = box.parentElement) {
      if (!/(auto|scroll|hidden)/.test(getComputedStyle(box).overflowX)) continue;
      const edge = box.getBoundingClientRect();
      if (rect.left < edge.left - 1 || rect.right > edge.right + 1) problems.push(`${name} is clipped`);
    }
  }
  const title = document.querySelector("#content h1");
  if (title) {
    const range = document.createRange();
    range.selectNodeContents(title);
    for (const tool of document.querySelectorAll(".object-tools a")) {
      const a = tool.getBoundingClientRect();
      for (const b of range.getClientRects()) {
        if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) {
          problems.push(`${tool.textContent.trim()} covers the title`);
        }
      }
    }
  }
  for (const cell of document.querySelectorAll(".llmcache-prompt-cell a")) {
    const text = cell.firstChild;
    if (!text || text.nodeType !== Node.TEXT_NODE) continue;
    for (const match of text.data.matchAll(/[^\\s-]+/g)) {  // a break after a hyphen is a fair one
      const range = document.createRange();
      range.setStart(text, match.index);
      range.setEnd(text, match.index + match[0].length);
      const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
      if (lines.size > 1) problems.push(`"${match[0]}" is broken across lines`);
    }
  }
  return problems;
}"""


@pytest.mark.parametrize("width", [800, 1280])
def test_every_page_fits_the_window_with_the_sidebar_open(
    browser: Browser, live_server: Any, static_files: None, cache: LLMCache, width: int
) -> None:
    fill_other_entries(cache)
    long_prompt = "Explain how the least-recently-used eviction policy interacts with per-entry TTLs " * 3
    cache.update(
        long_prompt, "[('model_name', 'gpt-4o-mini-2024-07-18')]", [ChatGeneration(message=AIMessage(content="x"))]
    )
    answer = AIMessage(content="A long answer, stored compressed. " * 100)  # "… before compression" shows
    cache.update("Tell me everything.", "[('model_name', 'gpt-4o')]", [ChatGeneration(message=answer)])
    FakeListChatModel(responses=["a"], cache=cache).invoke("one")  # hits, misses and savings on the dashboard
    with llm_cache_control(scope="tenant:a-rather-long-tenant-name-to-fit"):  # the scopes section
        scoped = FakeListChatModel(responses=["b"], cache=cache)
        scoped.invoke("two")
        scoped.invoke("two")
    name = next(info.name for info in cache.entries() if info.prompt == long_prompt)
    namespace = ("__pregel_ns_writes", "a_graph_with_a_rather_long_name:9f1c2e44-5b1e-4a8e-9f00", "summarise_ticket")
    LangGraphCache(cache=cache).set({(namespace, f"{'k' * 64}{index}"): ("done", 600) for index in range(3)})
    User.objects.create_superuser("root", "root@example.com", "pw")
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"/admin/login/?next={DASHBOARD}")
        page.fill("#id_username", "root")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(f"**{DASHBOARD}")
        expect(page.locator("#nav-sidebar")).to_be_visible()  # Django opens it from 768 px
        pages = {
            "dashboard": DASHBOARD,
            "entries": f"{DASHBOARD}default/",
            "model": f"{DASHBOARD}default/?model=gpt-4o-mini-2024-07-18",
            "entry": f"{DASHBOARD}default/entry/{name}/",
            "delete": f"{DASHBOARD}default/entry/{name}/delete/",
            "clear": f"{DASHBOARD}default/clear/",
            "reset": f"{DASHBOARD}default/reset-stats/",
            "nodes": f"{DASHBOARD}default/kind/langgraph/?node=summarise_ticket",
        }
        ARTIFACTS.mkdir(exist_ok=True)
        problems = {}
        for label, path in pages.items():
            page.goto(path)
            page.screenshot(path=ARTIFACTS / f"admin-{label}-{width}px.png", full_page=True)
            problems[label] = page.evaluate(LAYOUT_PROBLEMS)
        assert problems == {label: [] for label in pages}
        page.goto(DASHBOARD)
        scope_row = page.locator('.llmcache-scopes[data-alias="default"] .llmcache-scope-row').first
        expect(scope_row).to_contain_text("tenant:a-rather-long-tenant-name-to-fit")
        expect(scope_row.locator(".llmcache-scope-hits")).to_have_text("1")
    finally:
        context.close()
