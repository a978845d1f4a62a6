"""The admin when things break: every page answers with the error shown, and the operator's extras."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration

from llmcache_django import llm_caches
from llmcache_django.admin_views.common import age_text, format_seconds
from llmcache_django.core.cache import LLMCache
from tests import servers

pytestmark = pytest.mark.django_db

ADMIN = "admin:llmcache_django_llmcache"
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def url(page: str, *args: str) -> str:
    return reverse(f"{ADMIN}_{page}", args=args)


@pytest.fixture
def admin() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def alias_on(kind: str, server: servers.Server) -> dict[str, object]:
    if kind == "redis":
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    return {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": server.location}


@pytest.fixture(params=["redis", "memcached"])
def dead_alias(request: pytest.FixtureRequest) -> Iterator[tuple[LLMCache, str, servers.Server]]:
    """An alias with one entry whose server has just been killed; yields it and the entry's name."""
    server = servers.start_redis() if request.param == "redis" else servers.start_memcached()
    settings = override_settings(
        CACHES={"default": LOCMEM, "llm": alias_on(request.param, server)},
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": f"t{uuid.uuid4().hex[:8]}"}},
    )
    settings.enable()
    try:
        cache = llm_caches["default"]
        FakeListChatModel(responses=["Paris."], cache=cache).invoke("capital of France?")
        name = next(cache.entries()).name
        server.stop()
        yield cache, name, server
    finally:
        settings.disable()


def test_every_page_answers_200_with_the_error_when_the_server_is_down(
    admin: Client, dead_alias: tuple[LLMCache, str, servers.Server]
) -> None:
    _, name, server = dead_alias
    pages = [
        url("changelist"),
        url("entries", "default"),
        url("entry", "default", name),
        url("clear", "default"),
        url("clear", "default") + "?model=fake-list-chat-model",
        url("delete_entry", "default", name),
        url("reset_stats", "default"),  # not offered: a server that cannot be read cannot be reset
        url("kind_entries", "default", "langgraph") + "?node=upper",
        url("kind_entries", "default", "embeddings"),
        url("kind_clear", "default", "langgraph") + "?node=upper",
    ]
    for page in pages:
        response = admin.get(page)
        text = response.content.decode()
        assert response.status_code == 200, page
        assert "default" in text and f"127.0.0.1:{server.port}" in text, page
        # The exception and its message, or (a memcached pool quietly skipping a failed node) which node.
        assert re.search(
            r"(ConnectionError|ConnectionRefusedError|TimeoutError|Memcache\w*Error): \S|node \S+ is not answering",
            text,
        ), page


def test_a_reset_that_fails_on_a_dead_server_changes_no_counter(
    admin: Client, dead_alias: tuple[LLMCache, str, servers.Server]
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from llmcache_django.ops.metrics import LLMCacheCollector

    cache, _, _ = dead_alias
    registry = CollectorRegistry()
    registry.register(LLMCacheCollector())
    FakeListChatModel(responses=["Rome."], cache=cache).invoke("capital of Italy?")  # the outage: errors counted
    assert cache.stats is not None and cache.stats.errors >= 1
    counted, exported = cache.stats.snapshot(), generate_latest(registry)
    response = admin.post(url("reset_stats", "default"), follow=True)
    assert (
        "Could not reset the stats of LLM cache &#x27;default&#x27;; nothing was changed" in response.content.decode()
    )
    assert cache.stats.snapshot() == counted  # the outage's errors are still there
    assert generate_latest(registry) == exported
    assert not LogEntry.objects.exists()


def test_the_log_says_why_an_alias_cannot_be_read(
    admin: Client, dead_alias: tuple[LLMCache, str, servers.Server], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="llmcache_django"):
        admin.get(url("changelist"))
    (line,) = [record.getMessage() for record in caplog.records if "cannot read alias" in record.getMessage()]
    assert re.search(r"cannot read alias 'default': LLM cache 'default' on .*: \w+: \S", line), line


def test_no_confirmation_is_offered_while_the_server_is_down(
    admin: Client, dead_alias: tuple[LLMCache, str, servers.Server]
) -> None:
    for page in (url("reset_stats", "default"), url("clear", "default"), url("kind_clear", "default", "langgraph")):
        text = admin.get(page).content.decode()
        assert "cannot be read right now" in text, page
        assert '<input type="submit"' not in text, page


def test_the_entries_page_keeps_its_search_and_clear_links_when_the_server_is_down(
    admin: Client, dead_alias: tuple[LLMCache, str, servers.Server]
) -> None:
    text = admin.get(url("entries", "default")).content.decode()
    assert "cannot be read right now" in text
    assert 'class="deletelink llmcache-clear"' in text  # the rest of the page is still usable


def test_an_error_message_is_never_empty() -> None:
    from pymemcache.exceptions import MemcacheUnexpectedCloseError

    from llmcache_django.admin_views.common import server_error_text

    cache = llm_caches["default"]
    text = server_error_text(cache, MemcacheUnexpectedCloseError())
    assert text.startswith("LLM cache 'default' on ")
    assert text.endswith("MemcacheUnexpectedCloseError: Raised when the connection with memcached closes unexpectedly.")


# What an operator wants on the dashboard


@pytest.fixture
def cache() -> LLMCache:
    cache = llm_caches["default"]
    cache.clear()
    cache.reset_stats()
    return cache


def chat_prompt(question: str) -> str:
    from langchain_core.load import dumps

    return dumps(
        [
            SystemMessage("You are a helpful assistant."),
            HumanMessage("Earlier"),
            AIMessage("ok"),
            HumanMessage(question),
        ]
    )


def test_the_dashboard_shows_writes_errors_and_each_models_share(admin: Client, cache: LLMCache) -> None:
    FakeListChatModel(responses=["a"], cache=cache).invoke("one")
    cache.update("p", "[('model_name', 'gpt-4o')]", [ChatGeneration(message=AIMessage(content="x" * 3000))])
    text = admin.get(url("changelist")).content.decode()
    assert "2 writes · 0 errors" in text
    models = re.search(r'llmcache-models" data-alias="default">(.*?)</table>', text, re.S)
    assert models is not None
    assert "fake-list-chat-model" in models.group(1) and "gpt-4o" in models.group(1)
    assert "before compression" in text  # the 3 KB answer is stored compressed


def test_the_entries_list_previews_the_last_human_message(admin: Client, cache: LLMCache) -> None:
    cache.update(
        chat_prompt("What is the capital of Peru?"),
        "[('model_name', 'gpt-4o')]",
        [ChatGeneration(message=AIMessage(content="Lima"))],
    )
    text = admin.get(url("entries", "default")).content.decode()
    assert ">What is the capital of Peru?<" in text
    assert "You are a helpful assistant" not in text
    assert "just now" in text


def test_reset_stats_needs_post_and_the_clear_permission_and_is_logged(admin: Client, cache: LLMCache) -> None:
    FakeListChatModel(responses=["a"], cache=cache).invoke("one")
    assert cache.shared_stats()["misses"] == 1
    assert "Yes, reset the stats" in admin.get(url("reset_stats", "default")).content.decode()
    assert cache.shared_stats()["misses"] == 1  # a GET changes nothing
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_llmcache"))
    as_viewer = Client()
    as_viewer.force_login(viewer)
    assert as_viewer.post(url("reset_stats", "default")).status_code == 403
    assert admin.post(url("reset_stats", "default")).status_code == 302
    assert cache.shared_stats()["misses"] == 0
    assert cache.count_entries() == 1  # entries are kept
    log = LogEntry.objects.get()
    assert (log.action_flag, log.object_repr) == (CHANGE, "stats of LLM cache 'default'")


def test_recent_actions_tell_an_entry_a_model_and_an_alias_apart(admin: Client, cache: LLMCache) -> None:
    for index in range(3):
        cache.update(f"p{index}", "[('model_name', 'gpt-4o')]", [ChatGeneration(message=AIMessage(content="x"))])
    cache.update("q", "[('model_name', 'claude-3')]", [ChatGeneration(message=AIMessage(content="y"))])
    name = next(info.name for info in cache.entries() if info.prompt == "p0")
    admin.post(url("delete_entry", "default", name))
    admin.post(url("clear", "default"), {"model": "gpt-4o"})
    admin.post(url("clear", "default"))
    reprs = list(LogEntry.objects.order_by("id").values_list("object_repr", flat=True))
    assert reprs == [
        "entry “p0” of model 'gpt-4o' in LLM cache 'default' (1 entry)",
        "model 'gpt-4o' in LLM cache 'default' (2 entries)",
        "all of LLM cache 'default' (1 entry)",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0004, "< 1 ms"), (0.042, "42 ms"), (4.25, "4.2 s"), (12, "12 s"), (300, "5 min")],
)
def test_durations_read_well_for_fast_models(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_ages_under_a_minute_are_just_now() -> None:
    assert (age_text(5), age_text(600)) == ("just now", "10 min ago")


def test_one_hit_is_singular_on_the_dashboard(admin: Client, cache: LLMCache) -> None:
    model = FakeListChatModel(responses=["a"], cache=cache)
    model.invoke("one")
    model.invoke("one")
    text = admin.get(url("changelist")).content.decode()
    assert 'llmcache-key-hits">1 hit<' in text and "1 hits" not in text


def test_a_pool_with_a_dead_node_shows_which(admin: Client) -> None:
    alive, dead = servers.start_memcached(), servers.start_memcached()
    pool = {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": [alive.location, dead.location],
    }
    try:
        with override_settings(CACHES={"default": LOCMEM, "llm": pool}, LLM_CACHES={"default": {"CACHE": "llm"}}):
            cache = llm_caches["default"]
            model = FakeListChatModel(responses=["a"], cache=cache)
            dead.stop()
            for index in range(20):  # some keys live on the dead node: the client marks it failed
                model.invoke(f"question {index}")
            text = admin.get(url("changelist")).content.decode()
            assert f"node {dead.location} is down" in text
            assert f"memcached node {dead.location}: ConnectionRefusedError" in text
            assert admin.get(url("entries", "default")).status_code == 200
    finally:
        alive.stop()
        dead.stop()


def test_a_model_with_no_entries_offers_nothing_to_clear(admin: Client, cache: LLMCache) -> None:
    FakeListChatModel(responses=["a"], cache=cache).invoke("one")
    entries = admin.get(url("entries", "default") + "?model=nosuchmodel").content.decode()
    assert "Clear model" not in entries
    assert (
        "Clear model fake-list-chat-model"
        in admin.get(url("entries", "default") + "?model=fake-list-chat-model").content.decode()
    )
    confirm = admin.get(url("clear", "default") + "?model=nosuchmodel").content.decode()
    assert "has no entries of model <code>nosuchmodel</code>, so there is nothing to clear" in confirm
    assert '<input type="submit"' not in confirm


def test_every_confirmation_looks_the_same(admin: Client, cache: LLMCache) -> None:
    cache.update("p", "[('model_name', 'gpt-4o')]", [ChatGeneration(message=AIMessage(content="x"))])
    name = next(cache.entries()).name
    pages = [
        url("clear", "default"),
        url("clear", "default") + "?model=gpt-4o",
        url("delete_entry", "default", name),
        url("reset_stats", "default"),
    ]
    for page in pages:
        text = admin.get(page).content.decode()
        assert re.search(r'<body class="[^"]*delete-confirmation', text), page
        assert 'class="button cancel-link">No, take me back</a>' in text, page


def test_the_reset_confirmation_shows_the_counts_it_will_zero(admin: Client, cache: LLMCache) -> None:
    FakeListChatModel(responses=["a"], cache=cache).invoke("one")
    text = admin.get(url("reset_stats", "default")).content.decode()
    assert "Now: 0 hits, 1 miss, 1 write, 0 errors, 0 tokens saved." in text


def test_an_entry_is_named_by_its_model_and_prompt_when_deleted(admin: Client, cache: LLMCache) -> None:
    prompt = "Summarise the quarterly report for the board, in three bullet points please"
    cache.update(prompt, "[('model_name', 'gpt-4o')]", [ChatGeneration(message=AIMessage(content="x"))])
    name = next(cache.entries()).name
    label = "entry “Summarise the quarterly report for the…” of model 'gpt-4o' in LLM cache 'default'"
    assert label.replace("'", "&#x27;") in admin.get(url("delete_entry", "default", name)).content.decode()
    done = admin.post(url("delete_entry", "default", name), follow=True).content.decode()
    assert f"Deleted 1 entry ({label}).".replace("'", "&#x27;") in done
    assert LogEntry.objects.get().object_repr == f"{label} (1 entry)"
    assert name not in done
