"""The demo's streaming chat page in a real browser, served as `make demo` serves it: uvicorn
(ASGI) running the example project on its embedded database cache, Debian's Chromium driven
by Playwright. The first ask streams live from the local model; the second is replayed from
the cache; the page says which."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.servers import Server, free_port
from tests.test_admin_browser import CHROMIUM_ARGS

#: Under pytest-xdist, the tests of one demo server (a uvicorn process on its own migrated
#: database) run on one worker, so it is started once, not once per worker; the slow and the
#: dead-cache demos' tests are groups of their own, free to run beside these on another worker.
pytestmark = pytest.mark.xdist_group("demo-browser")
on_the_slow_demo = pytest.mark.xdist_group("demo-browser-slow")
on_the_dead_cache_demo = pytest.mark.xdist_group("demo-browser-dead-cache")
ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Does the cache replay a streamed answer?"
#: The page is streaming and has shown part of the answer already.
STREAMING_PART_WAY = """() => document.getElementById("outcome").dataset.state === "streaming"
    && document.getElementById("answer-text").textContent.length > 0"""


def demo_environ(database: Path, **environ: str) -> dict[str, str]:
    """The environment `make demo` gives the example project, on the SQLite file ``database``."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "example_project.settings", "LLMCACHE_DEMO_LATENCY": "1.0"}
    env.update({"LLMCACHE_DEMO_DB": str(database), "LLMCACHE_DEMO_BACKEND": "database", **environ})
    env.pop("OPENAI_API_KEY", None)
    return env


@pytest.fixture(scope="session")
def migrated_demo_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's database, migrated and with its cache table, made once for the whole run
    (the first xdist worker to need it makes it, under a lock) and copied by each demo server."""
    run_directory = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_directory = run_directory.parent  # this run's, shared by its workers
    template = run_directory / "demo-template.sqlite3"
    with open(run_directory / "demo-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            partial = run_directory / "demo-template.partial.sqlite3"
            partial.unlink(missing_ok=True)
            script = "import django; django.setup(); from django.core.management import call_command; "
            script += "call_command('migrate', interactive=False, verbosity=0); call_command('createcachetable'); "
            script += "call_command('ensure_demo_superuser')"
            subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=demo_environ(partial), check=True)
            partial.rename(template)
    return template


def start_demo(template: Path, directory: Path, **environ: str) -> Server:
    """The example project under uvicorn on a free port, on a copy of the migrated ``template``."""
    database = directory / "db.sqlite3"
    shutil.copyfile(template, database)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "example_project.asgi:application", "--port", str(port)]
    server = Server("uvicorn", port)
    env = demo_environ(database, **environ)
    server.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server._wait_until_listening()
    return server


@pytest.fixture(scope="module")
def demo_url(migrated_demo_database: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo as `make demo` serves it, on its embedded database cache."""
    server = start_demo(migrated_demo_database, tmp_path_factory.mktemp("demo"))
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, launched once for the module's tests (each gets a fresh context)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("The demo browser test needs Chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def browser_page(browser: Browser, url: str) -> Iterator[tuple[BrowserContext, Page]]:
    """A tab on ``url`` in a context of its own (no cookies or storage from another test)."""
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.goto("/")
    yield context, page
    context.close()


@pytest.fixture
def page(browser: Browser, demo_url: str) -> Iterator[Page]:
    """A page of headless Chromium on the demo."""
    with browser_page(browser, demo_url) as (_, page):
        yield page


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


def test_regenerate_streams_a_fresh_answer_that_the_next_ask_replays(page: Page) -> None:
    prompt = f"{PROMPT} (regenerate)"
    outcome, answer = page.locator("#outcome"), page.locator("#answer-text")
    ask(page, "sync", prompt)
    expect(outcome).to_have_text("Cache miss · streamed live from the model")
    page.click("#regenerate")  # the same prompt: a plain ask would be a hit
    expect(outcome).to_have_text("Cache miss · streamed live from the model")
    regenerated = answer.text_content()
    ask(page, "async", prompt)
    expect(outcome).to_have_text("Cache hit · replayed from the cache")
    expect(answer).to_have_text(regenerated or "")


def sign_in(page: Page, username: str) -> str:
    """Sign in on the demo's page as one of its users (password = username); their scope."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", username)
    page.click("button[type=submit]")
    expect(page.locator("#who")).to_contain_text(f"Signed in as {username}")
    return page.locator("#who code").text_content() or ""


def test_two_signed_in_users_get_their_own_answers_to_the_same_prompt(browser: Browser, demo_url: str) -> None:
    prompt = f"{PROMPT} (one per user)"
    with browser_page(browser, demo_url) as (_, demo), browser_page(browser, demo_url) as (_, guest):
        demo_scope = sign_in(demo, "demo")
        ask(demo, "sync", prompt)
        expect(demo.locator("#outcome")).to_have_text("Cache miss · streamed live from the model")
        expect(demo.locator("#scope")).to_have_text(f"scope {demo_scope}")
        ask(demo, "async", prompt)
        expect(demo.locator("#outcome")).to_have_text("Cache hit · replayed from the cache")
        expect(demo.locator("#scope")).to_have_text(f"scope {demo_scope}")

        guest_scope = sign_in(guest, "guest")
        assert guest_scope.startswith("user:") and guest_scope != demo_scope
        ask(guest, "async", prompt)  # the prompt demo just had answered: not their entry
        expect(guest.locator("#outcome")).to_have_text("Cache miss · streamed live from the model")
        expect(guest.locator("#scope")).to_have_text(f"scope {guest_scope}")
        ask(guest, "sync", prompt)
        expect(guest.locator("#outcome")).to_have_text("Cache hit · replayed from the cache")


# When it goes wrong: the page says so, and is ready for the next question


def expect_ready_for_another_ask(page: Page) -> None:
    for view in ("sync", "async"):
        expect(page.locator(f"button[data-view={view}]")).to_be_enabled()


@pytest.mark.parametrize("view", ["sync", "async"])
def test_a_blank_prompt_shows_the_servers_refusal_instead_of_streaming_for_ever(page: Page, view: str) -> None:
    ask(page, view, "   ")  # passes the browser's `required` check; the form strips it to nothing
    expect(page.locator("#outcome")).to_have_text("Error · no answer")
    expect(page.locator("#stream-error")).to_have_text(
        "The server answered 400 Bad Request: prompt — This field is required."
    )
    expect_ready_for_another_ask(page)


def test_a_refused_csrf_token_is_shown_as_the_servers_answer(page: Page) -> None:
    page.locator("input[name=csrfmiddlewaretoken]").evaluate("input => input.value = 'stale'")
    ask(page, "sync")
    expect(page.locator("#stream-error")).to_have_text(re.compile(r"^The server answered 403 Forbidden"))
    expect_ready_for_another_ask(page)


def test_a_server_error_in_front_of_the_demo_is_shown(page: Page) -> None:
    # What a proxy in front of the site answers when the worker behind it is gone.
    page.route(
        "**/stream/", lambda route: route.fulfill(status=502, body="<h1>Bad Gateway</h1>", content_type="text/html")
    )
    ask(page, "sync")
    expect(page.locator("#stream-error")).to_have_text(re.compile(r"^The server answered 502\b.*\.$"))
    expect_ready_for_another_ask(page)


def test_a_dropped_connection_is_shown_and_the_next_ask_works(page: Page) -> None:
    page.route("**/stream/", lambda route: route.abort("connectionreset"))
    ask(page, "async")
    expect(page.locator("#stream-error")).to_contain_text("The server could not be reached")
    expect_ready_for_another_ask(page)
    page.unroute("**/stream/")
    ask(page, "async", "And after the connection came back?")
    expect(page.locator("#outcome")).to_have_text(re.compile("^Cache (miss|hit) · "))


# One stream at a time in a tab; one model call for a question two tabs ask at once


@pytest.fixture(scope="module")
def slow_demo_url(migrated_demo_database: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo with a slow model (4 s an answer): time to act while an answer streams."""
    server = start_demo(migrated_demo_database, tmp_path_factory.mktemp("slow-demo"), LLMCACHE_DEMO_LATENCY="4.0")
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@on_the_slow_demo
def test_the_buttons_are_disabled_while_an_answer_streams(browser: Browser, slow_demo_url: str) -> None:
    with browser_page(browser, slow_demo_url) as (_, page):
        ask(page, "sync", "Can two answers interleave?")
        page.wait_for_function(STREAMING_PART_WAY)
        for view in ("sync", "async"):
            expect(page.locator(f"button[data-view={view}]")).to_be_disabled()
        for badge in ("#timing", "#tokens"):  # no empty grey pills while the answer streams
            expect(page.locator(badge)).to_be_hidden()
        expect(page.locator("#outcome")).to_have_text("Cache miss · streamed live from the model")
        expect_ready_for_another_ask(page)
        live = page.locator("#answer-text").text_content()
        ask(page, "async", "Can two answers interleave?")
        expect(page.locator("#outcome")).to_have_text("Cache hit · replayed from the cache")
        expect(page.locator("#answer-text")).to_have_text(live or "")  # one answer, not two woven together


@on_the_slow_demo
def test_two_tabs_asking_at_once_make_one_model_call(browser: Browser, slow_demo_url: str) -> None:
    prompt = "What does single-flight save when two tabs ask at once?"
    with browser_page(browser, slow_demo_url) as (_, first), browser_page(browser, slow_demo_url) as (_, second):
        ask(first, "sync", prompt)
        first.wait_for_function(STREAMING_PART_WAY)  # the model call is under way
        ask(second, "async", prompt)
        expect(first.locator("#outcome")).to_have_text("Cache miss · streamed live from the model")
        expect(second.locator("#outcome")).to_have_text("Cache hit · replayed from the cache")
        expect(second.locator("#answer-text")).to_have_text(first.locator("#answer-text").text_content() or "")
        assert int(second.locator("[data-stat=coalesced]").text_content() or 0) == 1  # it waited for the first's call


# A cache whose server is down


@pytest.fixture(scope="module")
def dead_cache_demo_url(migrated_demo_database: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo on a Redis that is not running."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = start_demo(
        migrated_demo_database,
        tmp_path_factory.mktemp("dead-demo"),
        LLMCACHE_DEMO_BACKEND="redis",
        LLMCACHE_DEMO_REDIS_URL=dead,
    )
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@on_the_dead_cache_demo
@pytest.mark.parametrize("view", ["sync", "async"])
def test_with_the_server_down_the_page_says_the_cache_was_unavailable(
    browser: Browser, dead_cache_demo_url: str, view: str
) -> None:
    with browser_page(browser, dead_cache_demo_url) as (_, page):
        ask(page, view, f"Is the cache there? ({view})")
        expect(page.locator("#outcome")).to_have_text("Cache unavailable · streamed live from the model, not stored")
        expect(page.locator("#stream-hint")).to_contain_text("was not stored")
        expect(page.locator("#stream-hint")).not_to_contain_text("this time the answer comes from the cache")


@on_the_dead_cache_demo
def test_with_the_server_down_a_posted_form_says_so_too(browser: Browser, dead_cache_demo_url: str) -> None:
    with browser_page(browser, dead_cache_demo_url) as (_, page):
        page.evaluate(
            "document.getElementById('ask').addEventListener('submit', e => e.stopImmediatePropagation(), true)"
        )
        ask(page, "sync", "Without JavaScript streaming?")
        expect(page.locator("#posted-result .badge").first).to_have_text(
            "Cache unavailable · the model answered, nothing was stored"
        )


def test_the_tab_gets_an_icon_not_a_404(page: Page) -> None:
    response = page.request.get("/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert page.evaluate("""async () => {
        const image = new Image();
        image.src = "/favicon.ico";
        await image.decode();
        return image.naturalWidth > 0;
    }""")
