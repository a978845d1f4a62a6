"""The dashboard's scopes section through Django's test client: entries per scope (from the
listing) and the top scopes by hits, on real servers."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse
from langchain_core.language_models import FakeListChatModel

from llmcache_django import llm_cache_control, llm_caches
from llmcache_django.core import codec
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest, scope_tag
from tests.conftest import kind_param
from tests.helpers import text_generations

pytestmark = pytest.mark.django_db
DASHBOARD = "admin:llmcache_django_llmcache_changelist"


def ask(cache: LLMCache, scope: str | None, prompt: str, times: int = 1) -> None:
    """``prompt`` asked ``times`` times in ``scope`` through a LangChain model (a miss, then hits)."""
    model = FakeListChatModel(responses=[f"{prompt} for {scope}"], cache=cache)
    with llm_cache_control(scope=scope):
        for _ in range(times):
            assert model.invoke(prompt).content == f"{prompt} for {scope}"


def scope_rows(superuser_client: Client, alias: str = "default") -> list[tuple[str, str, str]]:
    """``(scope, entries, hits)`` of each row of the alias's scopes section, as shown."""
    page = superuser_client.get(reverse(DASHBOARD)).content.decode()
    section = re.search(
        rf'<div class="module llmcache-scroll llmcache-scopes" data-alias="{alias}">(.*?)</div>', page, re.S
    )
    if section is None:
        return []
    rows = re.findall(
        r'<tr class="llmcache-scope-row[^"]*"><th scope="row">(.*?)</th><td[^>]*>(.*?)</td><td[^>]*>(.*?)</td>',
        section.group(1),
    )
    return [(re.sub(r"<[^>]+>", "", label), entries, hits) for label, entries, hits in rows]


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize(
    "kind", [kind_param(kind) for kind in ("alias-django-redis", "alias-database", "alias-locmem")]
)
def test_the_dashboard_shows_entries_per_scope_and_the_top_scopes_by_hits(
    kind: str, make_llm_cache: Callable[..., LLMCache], superuser_client: Client
) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    assert scope_rows(superuser_client) == []  # nothing scoped yet: no section
    ask(cache, "user:1", "weather?", times=3)  # a miss, then 2 hits
    ask(cache, "user:1", "news?", times=2)  # a miss, then 1 hit
    ask(cache, "user:2", "weather?", times=2)
    ask(cache, "user:3", "weather?")  # no hit: listed by its entries
    ask(cache, None, "weather?", times=4)  # unscoped hits are not a scope's
    assert scope_rows(superuser_client) == [
        ("user:1", "2", "3"),
        ("user:2", "1", "1"),
        ("user:3", "1", "—"),
        ("unscoped", "1", "—"),
    ]
    page = superuser_client.get(reverse(DASHBOARD)).content.decode()
    entries = superuser_client.get(re.findall(r'href="([^"]*scope=user%3A1)"', page)[0]).content.decode()
    assert "news?" in entries and "weather?" in entries  # the scope's link filters the entries page


def test_a_store_that_cannot_list_shows_the_top_scopes_by_hits_and_says_so(
    superuser_client: Client, tmp_path: Path
) -> None:
    file_cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    with override_settings(CACHES={"default": file_cache}, LLM_CACHES={"default": {"TTL": None}}):
        cache = llm_caches["default"]
        assert not cache.can_list
        ask(cache, "tenant:acme", "weather?", times=3)
        assert scope_rows(superuser_client) == [("tenant:acme", "cannot list", "2")]


def test_an_entry_that_does_not_name_its_scope_is_shown_by_its_scope_tag(superuser_client: Client) -> None:
    cache = llm_caches["default"]
    cache.clear()
    cache.reset_stats()
    name = entry_digest("weather?", "model=a", "user:9")  # written before entries named their scope
    cache.store.set(name, codec.encode(codec.new_entry("weather?", "a", "h", text_generations("sunny"), None)), None)
    assert scope_rows(superuser_client) == [(f"scope #{scope_tag('user:9')}", "1", "—"), ("unscoped", "0", "—")]


def test_entries_per_scope_say_when_only_the_first_entries_were_counted(
    superuser_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module itself: the package exports the view of the same name.
    dashboard = importlib.import_module("llmcache_django.admin_views.dashboard")
    cache = llm_caches["default"]
    cache.clear()
    cache.reset_stats()
    for prompt in ("one?", "two?", "three?"):
        ask(cache, "user:1", prompt)
    monkeypatch.setattr(dashboard, "SCAN_LIMIT", 2)
    page = superuser_client.get(reverse(DASHBOARD)).content.decode()
    assert "(entries counted in the first 2)" in page
