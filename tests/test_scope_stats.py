"""Hits per scope: tallied per process, flushed into a bounded shared ranking on every store kind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command

from llmcache_django import llm_cache_control
from llmcache_django.core import codec, scope_hits, stats
from llmcache_django.core.cache import LLMCache
from tests.conftest import kind_param
from tests.helpers import text_generations

LLM = "model=test temperature=0"
KINDS = [kind_param(kind) for kind in ("redis", "memcached", "alias-database", "alias-locmem")]


def ask(cache: LLMCache, prompt: str, scope: str | None, times: int) -> None:
    """A miss and a write, then ``times`` hits of ``prompt`` in ``scope``."""
    with llm_cache_control(scope=scope):
        assert cache.lookup(prompt, LLM) is None
        cache.update(prompt, LLM, text_generations(f"{prompt} in {scope}"))
        for _ in range(times):
            assert cache.lookup(prompt, LLM) == text_generations(f"{prompt} in {scope}")


@pytest.mark.parametrize("kind", KINDS)
def test_the_top_scopes_by_hits_are_shared_and_unscoped_calls_are_not_a_scope(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    ask(cache, "weather?", "user:1", 3)
    ask(cache, "weather?", "user:2", 1)
    ask(cache, "weather?", None, 5)
    cache.flush_stats()
    ask(cache, "news?", "user:2", 3)  # a second flush adds to the first
    with llm_cache_control("refresh", scope="user:3"):  # not a hit
        assert cache.lookup("weather?", LLM) is None
    assert cache.top_scopes() == [("user:2", 4), ("user:1", 3)]
    assert cache.top_scopes(1) == [("user:2", 4)]
    assert cache.shared_stats()["hits"] == 12
    cache.reset_stats()
    assert cache.top_scopes() == []


@pytest.fixture(params=KINDS)
def cache(request: pytest.FixtureRequest, make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    """An empty cache of each kind in turn, its shared counters at zero."""
    cache = make_llm_cache(request.param)
    cache.reset_stats()
    return cache


async def test_an_async_flush_shares_the_hits_per_scope(cache: LLMCache) -> None:
    with llm_cache_control(scope="tenant:acme"):
        await cache.aupdate("weather?", LLM, text_generations("sunny"))
        assert await cache.alookup("weather?", LLM) == text_generations("sunny")
    await cache.aflush_stats()
    assert await asyncio.to_thread(scope_hits.top, cache.store, 10) == [("tenant:acme", 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_the_shared_ranking_keeps_only_the_scopes_with_the_most_hits(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    many = {f"user:{number}": number for number in range(1, scope_hits.KEEP + 101)}
    assert scope_hits.add(cache.store, many) == {}
    assert scope_hits.add(cache.store, {"user:1": 10_000}) == {}  # a new top scope from a later flush
    ranked = scope_hits.top(cache.store, 10 * scope_hits.KEEP)
    assert len(ranked) == scope_hits.KEEP
    assert ranked[0] == ("user:1", 10_000)  # its first hit was trimmed with the other fewest
    assert ranked[1] == (f"user:{scope_hits.KEEP + 100}", scope_hits.KEEP + 100)
    assert ("user:2", 2) not in ranked


def test_a_process_tallies_a_bounded_number_of_scopes_between_flushes() -> None:
    counts = stats.Stats()
    for number in range(stats.SCOPES_PER_FLUSH + 50):
        counts.hit(10, text_generations("answer"), None, scope=f"user:{number}")
    counts.hit(10, text_generations("answer"), None, scope="user:0")
    counts.hit(10, text_generations("answer"), None, counter="coalesced", scope="user:0")  # not a hit
    counts.hit(10, text_generations("answer"), None)  # unscoped
    tally = counts.take_scope_hits()
    assert len(tally) == stats.SCOPES_PER_FLUSH and tally["user:0"] == 2
    assert counts.hits == stats.SCOPES_PER_FLUSH + 52  # every hit still counts in hits
    assert counts.take_scope_hits() == {}


@pytest.mark.parametrize("kind", [kind_param(kind) for kind in ("memcached", "alias-database")])
def test_a_flush_that_finds_the_ranking_being_rewritten_keeps_its_hits_for_the_next(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    assert cache.store.add_lease(scope_hits.LOCK_NAME, b"another process", 30)
    ask(cache, "weather?", "user:1", 2)
    cache.flush_stats()
    assert scope_hits.top(cache.store, 10) == []  # not lost: still pending here
    cache.store.end_lease(scope_hits.LOCK_NAME, None)
    assert cache.top_scopes() == [("user:1", 2)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_foreign_value_under_the_ranking_is_replaced_not_an_error(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    if cache.store.ranks_scopes:
        cache.store.client.set(cache.store.scope_hits_key, b"not a sorted set")  # type: ignore[attr-defined]
    else:
        cache.store.set_record(scope_hits.RANKING_NAME, b'["not", "a", "ranking"]')
    assert scope_hits.top(cache.store, 10) == []
    ask(cache, "weather?", "user:1", 1)
    assert cache.top_scopes() == [("user:1", 1)]
    assert cache.shared_stats()["errors"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_listed_entry_names_the_scope_it_was_written_in(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    ask(cache, "weather?", "user:1", 0)
    ask(cache, "weather?", None, 0)
    if not cache.can_list:
        return  # memcached cannot list (the dashboard says so)
    found = sorted((info.scope or "", info.scope_tag is None) for info in cache.entries())
    assert found == [("", True), ("user:1", False)]


@pytest.mark.parametrize("kind", [kind_param(kind) for kind in ("alias-django-redis", "alias-database")])
def test_llm_cache_stats_prints_the_top_scopes_by_hits(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    ask(cache, "weather?", "user:1", 1)
    ask(cache, "weather?", "user:2", 2)
    out = StringIO()
    call_command("llm_cache_stats", stdout=out)
    assert out.getvalue().splitlines()[1:] == ["  top scopes by hits: user:2 (2), user:1 (1)"]
    out = StringIO()
    call_command("llm_cache_stats", "--json", "--reset", stdout=out)
    assert json.loads(out.getvalue())["default"]["top_scopes"] == [
        {"scope": "user:2", "hits": 2},
        {"scope": "user:1", "hits": 1},
    ]
    assert cache.top_scopes() == []  # --reset forgets the ranking too


def test_an_entry_keeps_its_scope_and_a_planted_scope_that_is_not_text_is_corrupt() -> None:
    entry = codec.new_entry("weather?", "m", "h", text_generations("sunny"), None, scope="user:1")
    assert codec.decode(codec.encode(entry)).scope == "user:1"
    assert codec.decode(codec.encode(codec.new_entry("weather?", "m", "h", text_generations("x"), None))).scope is None
    planted = codec.encode(entry).replace(b'"s":"user:1"', b'"s":42')
    with pytest.raises(codec.CodecError):
        codec.decode(planted)


@pytest.mark.parametrize("kind", ["redis-cluster", "redis-cluster-async"])
def test_a_redis_cluster_ranks_the_scopes_of_sync_and_async_flushes(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    ask(cache, "weather?", "user:1", 1)
    cache.flush_stats()

    async def ask_async() -> None:
        with llm_cache_control(scope="user:2"):
            await cache.aupdate("weather?", LLM, text_generations("sunny"))
            for _ in range(2):
                assert await cache.alookup("weather?", LLM) == text_generations("sunny")
        await cache.aflush_stats()

    asyncio.run(ask_async())
    assert cache.top_scopes() == [("user:2", 2), ("user:1", 1)]


def test_erasing_a_scope_takes_it_out_of_the_ranking(cache: LLMCache) -> None:
    ask(cache, "weather?", "user:1", 2)
    ask(cache, "weather?", "user:2", 1)
    cache.flush_stats()
    ask(cache, "news?", "user:1", 1)  # a hit not yet shared: forgotten too
    cache.clear_scope("user:1")
    assert cache.top_scopes() == [("user:2", 1)]


async def test_erasing_a_scope_async_takes_it_out_of_the_ranking(cache: LLMCache) -> None:
    await asyncio.to_thread(ask, cache, "weather?", "user:1", 1)
    await asyncio.to_thread(ask, cache, "weather?", "user:2", 1)
    await cache.aclear_scope("user:2")
    assert await asyncio.to_thread(cache.top_scopes) == [("user:1", 1)]
