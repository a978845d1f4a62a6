"""An oversize value under an entry's key on Redis is refused without being read whole."""

from __future__ import annotations

import asyncio
import logging
import math
import tracemalloc
from collections.abc import Callable

import pytest

from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest
from tests.helpers import plant, text_generations

LLM = "model=test"
#: Far over the 1 MiB entry limit; 128 MiB shows the same (benchmarks/oversize_rss.py).
PLANTED_BYTES = 32 * 1024 * 1024
REDIS_KINDS = [
    "redis",
    "compat-async-redis",
    "alias-django-redis",
    "alias-sentinel",
    "alias-valkey",
    "alias-async-valkey",
    "redis-cluster",
    "redis-cluster-async",
]


def _peak_of(call: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", REDIS_KINDS)
def test_an_oversize_value_is_a_logged_miss_read_no_further_than_the_limit(
    kind: str, mode: str, make_llm_cache: Callable[..., LLMCache], caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_llm_cache(kind)
    cache.update("kept", LLM, text_generations("kept"))
    plant(cache, "planted", LLM, b"LC1j" + b" " * PLANTED_BYTES)
    lookup = (
        (lambda: asyncio.run(cache.alookup("planted", LLM)))
        if mode == "async"
        else (lambda: cache.lookup("planted", LLM))
    )
    try:
        with caplog.at_level(logging.WARNING, logger="llmcache_django"):
            result, peak = _peak_of(lookup)
    finally:
        cache.store.delete(entry_digest("planted", LLM))
    assert result is None
    assert cache.stats.errors == 1  # type: ignore[union-attr]
    assert "over the" in caplog.text and "limit" in caplog.text
    assert peak < 4 * cache.max_entry_bytes, f"{peak / 2**20:.1f} MiB allocated for one lookup"
    assert cache.lookup("kept", LLM) == text_generations("kept")  # the others still hit


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
def test_an_entry_as_large_as_a_raised_limit_still_hits(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind, max_entry_bytes=4 * 1024 * 1024, compress_min_bytes=math.inf)  # stored as is
    big = text_generations("x" * (3 * 1024 * 1024))
    cache.update("big", LLM, big)
    assert cache.lookup("big", LLM) == big
    assert asyncio.run(cache.alookup("big", LLM)) == big
    assert cache.stats.errors == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["redis", "alias-valkey", "redis-cluster"])
def test_listing_skips_an_oversize_value_without_reading_it_whole(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.update("kept", LLM, text_generations("kept"))
    plant(cache, "planted", LLM, b"LC1j" + b" " * PLANTED_BYTES)
    try:
        listed, peak = _peak_of(lambda: [info.prompt for info in cache.entries()])
    finally:
        cache.store.delete(entry_digest("planted", LLM))
    assert listed == ["kept"]
    assert peak < 4 * cache.max_entry_bytes, f"{peak / 2**20:.1f} MiB allocated to list two entries"


def test_a_server_that_runs_no_lua_is_read_with_two_commands() -> None:
    # Managed services may disable scripting (here: EVAL and EVALSHA renamed away).
    import redis

    from llmcache_django import RedisLLMCache
    from tests import servers

    server = servers.start_redis("--rename-command", "EVALSHA", "", "--rename-command", "EVAL", "")
    try:
        cache = RedisLLMCache(redis.Redis(port=server.port), namespace="nolua")
        cache.update("p", LLM, text_generations("x"))
        assert cache.lookup("p", LLM) == text_generations("x")
        assert cache.lookup("absent", LLM) is None
        assert asyncio.run(cache.alookup("p", LLM)) == text_generations("x")
        assert cache.stats is not None and cache.stats.errors == 0
        assert cache.store._scripts is False  # type: ignore[attr-defined]  # the first read found out
        plant(cache, "big", LLM, b"x" * (cache.max_entry_bytes + 10))
        assert cache.lookup("big", LLM) is None  # still bounded
        assert cache.stats.errors == 1
    finally:
        server.kill()


def test_a_wrong_type_under_a_key_does_not_turn_scripts_off(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("redis")
    cache.store.client.hset(cache.store.prefix + entry_digest("bad", LLM), "field", "value")  # type: ignore[attr-defined]
    assert cache.lookup("bad", LLM) is None
    assert cache.store._scripts is True  # type: ignore[attr-defined]
