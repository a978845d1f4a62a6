"""What only a real Redis or memcached server can show: clear scope, TTLs, limits, outages."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.asyncio
from pymemcache.client.base import Client, PooledClient

from llmcache_django import MemcachedLLMCache, RedisLLMCache
from llmcache_django.compat import AsyncRedisCache, MemcachedCache, RedisCache
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.codec import llm_hash
from llmcache_django.core.keys import entry_digest
from llmcache_django.signals import llm_cache_hit, llm_cache_miss
from tests import servers
from tests.helpers import chat_generation, text_generations

LLM = "model=test"
REDIS_KINDS = ["redis", "compat-redis", "compat-async-redis", "alias-django-redis", "alias-django-builtin-redis"]
MEMCACHED_KINDS = ["memcached", "compat-memcached", "alias-pymemcache"]


@pytest.fixture
def raw_redis(redis_server: servers.Server) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


@pytest.fixture
def raw_memcached(memcached_server: servers.Server) -> Client:
    return Client(("127.0.0.1", memcached_server.port))


@pytest.mark.parametrize("kind", REDIS_KINDS)
def test_redis_clear_keeps_unrelated_keys_in_the_same_database(
    kind: str, make_llm_cache: Callable[..., LLMCache], raw_redis: redis.Redis
) -> None:
    raw_redis.set("django.contrib.sessions.cache:abc", b"session")
    raw_redis.set(":1:views.decorators.cache:page", b"page")
    other = RedisLLMCache(raw_redis, namespace="another-namespace")
    other.update("p", LLM, text_generations("kept"))
    cache = make_llm_cache(kind)
    cache.update("p", LLM, text_generations("gone"))
    cache.clear()
    assert cache.lookup("p", LLM) is None
    assert raw_redis.get("django.contrib.sessions.cache:abc") == b"session"
    assert raw_redis.get(":1:views.decorators.cache:page") == b"page"
    assert other.lookup("p", LLM) == text_generations("kept")


@pytest.mark.parametrize("kind", REDIS_KINDS)
def test_redis_clear_reclaims_the_memory_of_every_entry(
    kind: str, make_llm_cache: Callable[..., LLMCache], raw_redis: redis.Redis
) -> None:
    cache = make_llm_cache(kind)
    for index in range(1200):  # more than one SCAN page and one UNLINK batch
        cache.update(f"prompt {index}", LLM, text_generations("x"))
    pattern = cache.store.pattern  # type: ignore[attr-defined]
    prefix = cache.store.prefix.encode()  # type: ignore[attr-defined]
    llm_record = prefix + f"llm:{llm_hash(LLM)}".encode()
    assert len(list(raw_redis.scan_iter(match=pattern))) >= 1200 + 1
    cache.clear()
    # Only the small records of llm_strings (for the admin) and the stats are kept. Other kinds of
    # entry (LangGraph's, embeddings', byte-store values) keep their own sub-namespaces: the
    # compat classes share the default namespace with every other test of this worker.
    others = tuple(prefix + part + b":" for part in (b"langgraph", b"embeddings", b"bytes"))
    kept = {key for key in raw_redis.scan_iter(match=pattern) if not key.startswith(others)}
    assert llm_record in kept
    assert all(key.startswith((prefix + b"llm:", prefix + b"stats")) for key in kept)


def test_redis_keys_carry_the_alias_key_prefix_and_version(
    make_llm_cache: Callable[..., LLMCache], raw_redis: redis.Redis
) -> None:
    cache = make_llm_cache("alias-django-redis")  # CACHES KEY_PREFIX "site", VERSION 2
    cache.update("p", LLM, text_generations("x"))
    key = f"site:2:{cache.namespace}:{entry_digest('p', LLM)}"  # type: ignore[attr-defined]
    assert raw_redis.exists(key) == 1


@pytest.mark.parametrize("kind", REDIS_KINDS)
def test_redis_entries_expire_after_the_ttl(
    kind: str, make_llm_cache: Callable[..., LLMCache], raw_redis: redis.Redis
) -> None:
    cache = make_llm_cache(kind, TTL=120) if kind.startswith("alias") else make_llm_cache(kind, ttl=120)
    cache.update("p", LLM, text_generations("x"))
    key = cache.store.prefix + entry_digest("p", LLM)  # type: ignore[attr-defined]
    assert 119_000 < raw_redis.pttl(key) <= 120_000


def test_redis_ttl_none_never_expires(make_llm_cache: Callable[..., LLMCache], raw_redis: redis.Redis) -> None:
    cache = make_llm_cache("alias-django-redis", TTL=None)
    cache.update("p", LLM, text_generations("x"))
    assert raw_redis.pttl(cache.store.prefix + entry_digest("p", LLM)) == -1  # type: ignore[attr-defined]


def test_redis_ttl_defaults_to_the_cache_alias_timeout(make_llm_cache: Callable[..., LLMCache]) -> None:
    assert make_llm_cache("alias-django-redis").ttl == 300  # Django's default TIMEOUT


def test_async_redis_cache_serves_sync_calls(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("compat-async-redis")
    cache.update("p", LLM, [chat_generation()])
    assert cache.lookup("p", LLM) == [chat_generation()]


@pytest.fixture
def no_signal_receivers() -> Iterator[None]:
    """Measure the cache alone: receivers other tests connected (the demo's) are set aside."""
    saved = {signal: signal.receivers for signal in (llm_cache_hit, llm_cache_miss)}
    for signal in saved:
        signal.receivers = []
        signal.sender_receivers_cache.clear()
    yield
    for signal, receivers in saved.items():
        signal.receivers = receivers
        signal.sender_receivers_cache.clear()


@pytest.mark.parametrize("kind", ["compat-redis", "compat-async-redis", "alias-django-redis"])
@pytest.mark.usefixtures("no_signal_receivers")
async def test_five_thousand_concurrent_async_lookups_all_hit(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    # What is tested is the connection limit (no "Too many connections"), not how fast a loaded
    # machine connects: there, opening the pool's 49 other connections at once took over the
    # default 2 s server timeout and those lookups missed. An alias can say so.
    cache = make_llm_cache(kind, **({"OPTIONS": {"SERVER_TIMEOUT": 30}} if kind.startswith("alias-") else {}))
    await cache.aupdate("p", LLM, [chat_generation()])
    results = await asyncio.gather(*(cache.alookup("p", LLM) for _ in range(5000)))
    assert sum(result == [chat_generation()] for result in results) == 5000
    assert cache.stats.errors == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", MEMCACHED_KINDS)
def test_memcached_clear_keeps_unrelated_keys_on_the_server(
    kind: str, make_llm_cache: Callable[..., LLMCache], raw_memcached: Client
) -> None:
    raw_memcached.set("sessions:abc", b"session", noreply=False)
    other = MemcachedLLMCache(raw_memcached, namespace="another-namespace")
    other.update("p", LLM, text_generations("kept"))
    cache = make_llm_cache(kind)
    cache.update("p", LLM, text_generations("gone"))
    cache.clear()
    assert cache.lookup("p", LLM) is None
    assert raw_memcached.get("sessions:abc") == b"session"
    assert other.lookup("p", LLM) == text_generations("kept")


def test_memcached_clear_is_seen_at_once_by_another_process(memcached_server: servers.Server) -> None:
    location = ("127.0.0.1", memcached_server.port)
    here = MemcachedLLMCache(PooledClient(location), namespace="shared-ns")
    elsewhere = MemcachedLLMCache(PooledClient(location), namespace="shared-ns")  # its own client and state
    here.update("p", LLM, text_generations("x"))
    assert elsewhere.lookup("p", LLM) == text_generations("x")
    here.clear()
    assert elsewhere.lookup("p", LLM) is None
    elsewhere.update("p", LLM, text_generations("new"))
    assert here.lookup("p", LLM) == text_generations("new")


def test_memcached_entries_expire_after_the_ttl(memcached_server: servers.Server) -> None:
    cache = MemcachedCache(Client(("127.0.0.1", memcached_server.port)), ttl=1)
    cache.clear()
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) == text_generations("x")
    time.sleep(2.1)  # memcached expiry has one-second resolution
    assert cache.lookup("p", LLM) is None


def test_memcached_ttl_over_thirty_days_is_not_read_as_a_past_date(memcached_server: servers.Server) -> None:
    cache = MemcachedLLMCache(Client(("127.0.0.1", memcached_server.port)), namespace="long-ttl", ttl=40 * 86400)
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) == text_generations("x")


def test_memcached_oversize_entry_is_skipped_with_a_warning(
    make_llm_cache: Callable[..., LLMCache], caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_llm_cache("alias-pymemcache")
    incompressible = os.urandom(1_200_000).hex()  # 2.4 MB of text that zstd cannot shrink below 1 MB
    with caplog.at_level(logging.WARNING, logger="llmcache_django"):
        cache.update("p", LLM, text_generations(incompressible))
    assert cache.lookup("p", LLM) is None
    assert "over the" in caplog.text
    assert cache.stats.errors == 1  # type: ignore[union-attr]


def test_memcached_server_refusing_an_item_is_a_skipped_write(caplog: pytest.LogCaptureFixture) -> None:
    small = servers.start_memcached(item_size="512k")
    try:
        client = PooledClient(("127.0.0.1", small.port))
        cache = MemcachedLLMCache(client, namespace="small", max_entry_bytes=None)
        with caplog.at_level(logging.WARNING, logger="llmcache_django"):
            cache.update("p", LLM, text_generations(os.urandom(600_000).hex()))
        assert cache.lookup("p", LLM) is None
        assert cache.stats.errors >= 1  # type: ignore[union-attr]
    finally:
        small.stop()


def dead_caches() -> list[tuple[str, Callable[[], LLMCache]]]:
    port = servers.free_port()  # nothing listens here
    quick = {"socket_connect_timeout": 0.2, "retry": None}
    return [
        ("redis", lambda: RedisCache(redis.Redis(port=port, **quick))),
        ("async-redis", lambda: AsyncRedisCache(redis.asyncio.Redis(port=port, **quick))),
        ("memcached", lambda: MemcachedCache(Client(("127.0.0.1", port), connect_timeout=0.2))),
    ]


@pytest.mark.parametrize(("name", "build"), dead_caches(), ids=[name for name, _ in dead_caches()])
def test_a_dead_server_never_breaks_the_model_call(
    name: str, build: Callable[[], LLMCache], caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_core.language_models import FakeListChatModel

    cache = build()
    model = FakeListChatModel(responses=["one", "two", "three"], cache=cache)
    with caplog.at_level(logging.WARNING, logger="llmcache_django"):
        answers = [model.invoke("hello").content for _ in range(3)]
    assert answers == ["one", "two", "three"]  # every call reached the model
    # The first lookup fails; the cache then leaves the dead server alone for a while.
    assert (cache.stats.errors, cache.stats.skipped) == (1, 5)  # type: ignore[union-attr]
    assert caplog.text.count("carrying on without the cache") == 1  # once per burst


@pytest.mark.parametrize(("name", "build"), dead_caches(), ids=[name for name, _ in dead_caches()])
async def test_a_dead_server_never_breaks_the_async_model_call(name: str, build: Callable[[], LLMCache]) -> None:
    from langchain_core.language_models import FakeListChatModel

    cache = build()
    model = FakeListChatModel(responses=["one", "two"], cache=cache)
    assert [(await model.ainvoke("hello")).content for _ in range(2)] == ["one", "two"]
    assert (cache.stats.errors, cache.stats.skipped) == (1, 3)  # type: ignore[union-attr]


def test_clear_on_a_dead_server_raises_so_the_operator_knows() -> None:
    cache = RedisCache(redis.Redis(port=servers.free_port(), socket_connect_timeout=0.2, retry=None))
    with pytest.raises(redis.ConnectionError):
        cache.clear()


def test_a_recovered_server_is_used_again_after_the_outage_backoff() -> None:
    port = servers.free_port()
    cache = RedisCache(redis.Redis(port=port, socket_connect_timeout=0.2, retry=None))
    cache.outage_backoff = 0.5
    assert cache.lookup("p", LLM) is None  # the server is down: a miss, and a pause
    server = servers.Server("redis-server", port).start(
        [servers.require_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    )
    try:
        RedisCache(redis.Redis(port=port)).update("p", LLM, text_generations("x"))
        assert cache.lookup("p", LLM) is None  # still pausing: the server is not even asked
        time.sleep(0.6)
        assert cache.lookup("p", LLM) == text_generations("x")
    finally:
        server.stop()


def test_a_missing_server_binary_fails_naming_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(servers.MissingBinaryError, match=r"apt-get install -y memcached"):
        servers.start_memcached()


def test_a_client_that_decodes_responses_still_round_trips(redis_server: servers.Server) -> None:
    cache = RedisCache(redis.Redis.from_url(redis_server.url, decode_responses=True))
    cache.clear()
    big = text_generations("A long answer. " * 5000)  # would be compressed on a bytes client
    cache.update("p", LLM, big)
    cache.update("chat", LLM, [chat_generation()])
    assert cache.lookup("p", LLM) == big
    assert cache.lookup("chat", LLM) == [chat_generation()]
    assert {info.llm_string for info in cache.entries()} == {LLM}
