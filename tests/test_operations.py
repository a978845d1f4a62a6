"""Listing, selective clear and shared stats, on every backend that can list."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from langchain_core.language_models import FakeListChatModel

from llmcache_django.core.cache import LLMCache
from llmcache_django.core.listing import model_of
from llmcache_django.core.operations import ListingUnsupportedError
from tests.conftest import CACHE_KINDS, kind_param
from tests.helpers import chat_generation, text_generations

GPT = "[('_type', 'openai-chat'), ('model_name', 'gpt-4o'), ('temperature', 0.0)]"
CLAUDE = "{\"lc\": 1}---[('_type', 'anthropic-chat'), ('model', 'claude-3'), ('stop', None)]"


def fill(cache: LLMCache) -> None:
    cache.update("What is the capital of France?", GPT, [chat_generation("Paris")])
    cache.update("Summarize the news", GPT, text_generations("Nothing happened"))
    cache.update("Write a haiku", CLAUDE, text_generations("Leaves fall"))


@pytest.mark.parametrize(
    ("llm_string", "model"),
    [
        (GPT, "gpt-4o"),
        (CLAUDE, "claude-3"),
        ("[('_type', 'fake-list-chat-model'), ('responses', ['a']), ('stop', None)]", "fake-list-chat-model"),
        ("not a list at all", "unknown"),
        ("[('model_name', 'x'), ('bad', object())]", "x"),
    ],
)
def test_model_is_read_from_the_llm_string(llm_string: str, model: str) -> None:
    assert model_of(llm_string) == model


def test_entries_list_prompt_model_size_and_times(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    entries = sorted(llm_cache.entries(), key=lambda info: info.prompt)
    assert [(info.prompt, info.model) for info in entries] == [
        ("Summarize the news", "gpt-4o"),
        ("What is the capital of France?", "gpt-4o"),
        ("Write a haiku", "claude-3"),
    ]
    assert all(info.size > 100 and abs(info.created - time.time()) < 60 for info in entries)
    assert [info.llm_string for info in entries] == [GPT, GPT, CLAUDE]  # kept once per model
    assert llm_cache.count_entries() == 3


def test_entries_filter_by_model_search_and_age(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    assert {info.prompt for info in llm_cache.entries(model="claude-3")} == {"Write a haiku"}
    assert {info.prompt for info in llm_cache.entries(search="CAPITAL")} == {"What is the capital of France?"}
    assert list(llm_cache.entries(older_than=3600)) == []
    assert llm_cache.count_entries(older_than=0) == 3


def test_get_entry_returns_the_generations(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    (info,) = llm_cache.entries(model="gpt-4o", search="France")
    found = llm_cache.get_entry(info.name)
    assert found is not None and found[1] == [chat_generation("Paris")]
    assert llm_cache.get_entry("0" * 64) is None


def test_delete_one_entry(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    (info,) = llm_cache.entries(search="haiku")
    assert llm_cache.delete_entry(info.name) is True
    assert llm_cache.lookup("Write a haiku", CLAUDE) is None
    assert llm_cache.count_entries() == 2


def test_delete_one_model_keeps_the_others(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    assert llm_cache.delete_entries(model="gpt-4o", dry_run=True) == 2
    assert llm_cache.count_entries() == 3
    assert llm_cache.delete_entries(model="gpt-4o") == 2
    assert llm_cache.lookup("Write a haiku", CLAUDE) == text_generations("Leaves fall")
    assert llm_cache.lookup("Summarize the news", GPT) is None


def test_delete_older_than_spares_fresh_entries(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    assert llm_cache.delete_entries(older_than=3600) == 0
    assert llm_cache.delete_entries(older_than=0) == 3
    assert llm_cache.count_entries() == 0


def test_whole_namespace_clear_reports_the_count(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    assert llm_cache.delete_entries() == 3
    assert llm_cache.count_entries() == 0


@pytest.mark.parametrize("kind", [kind_param(kind) for kind in CACHE_KINDS])
def test_shared_stats_are_seen_by_another_process(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    model = FakeListChatModel(responses=["a", "b"], cache=cache)
    for _ in range(3):
        model.invoke("hello")  # one miss + write, then two hits
    cache.flush_stats()
    assert cache.stats is not None
    cache.stats.reset()  # forget this process's view: the totals below come from the server
    stats = cache.shared_stats()
    assert (stats["hits"], stats["misses"], stats["writes"], stats["errors"]) == (2, 1, 1, 0)
    assert stats["hit_ratio"] == pytest.approx(2 / 3)
    cache.reset_stats()
    assert cache.shared_stats()["hits"] == 0


def test_shared_stats_survive_a_clear(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("redis")
    cache.reset_stats()
    cache.update("p", GPT, text_generations("x"))
    cache.lookup("p", GPT)
    cache.flush_stats()
    cache.clear()
    assert cache.shared_stats()["hits"] == 1


def test_a_backend_that_cannot_list_says_so(make_llm_cache: Callable[..., LLMCache], tmp_path: object) -> None:
    from django.test import override_settings

    from llmcache_django import llm_caches

    file_cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    with override_settings(CACHES={"default": file_cache}, LLM_CACHES={"default": {}}):
        cache = llm_caches["default"]
        cache.update("p", GPT, text_generations("x"))
        assert cache.can_list is False
        assert cache.count_entries() is None
        with pytest.raises(ListingUnsupportedError, match="cannot list its entries"):
            cache.delete_entries(model="gpt-4o")
        assert cache.delete_entries() is None  # the whole namespace still clears
        assert cache.lookup("p", GPT) is None


def test_memcached_listing_reads_every_node_of_a_hash_client(memcached_server: object) -> None:
    from pymemcache.client.hash import HashClient

    from llmcache_django import MemcachedLLMCache
    from tests import servers

    second = servers.start_memcached()
    try:
        first_location = ("127.0.0.1", memcached_server.port)  # type: ignore[attr-defined]
        client = HashClient([first_location, ("127.0.0.1", second.port)], use_pooling=True)
        cache = MemcachedLLMCache(client, namespace="hash-listing")
        cache.clear()
        for index in range(40):
            cache.update(f"prompt {index}", GPT, text_generations(str(index)))
        assert cache.count_entries() == 40
        assert cache.delete_entries() == 40
        assert cache.count_entries() == 0
    finally:
        second.stop()


def test_a_lost_llm_string_record_is_written_again(
    make_llm_cache: Callable[..., LLMCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmcache_django.core import cache as cache_module
    from llmcache_django.core.codec import llm_hash, llm_record_name

    cache = make_llm_cache("redis")
    cache.update("first", GPT, text_generations("x"))
    cache.store.client.delete(cache.store.prefix + llm_record_name(llm_hash(GPT)))  # type: ignore[attr-defined]  # evicted
    monkeypatch.setattr(cache_module, "LLM_RECORD_REFRESH_SECONDS", 0.0)
    cache.update("second", GPT, text_generations("y"))
    assert {info.llm_string for info in cache.entries()} == {GPT}
