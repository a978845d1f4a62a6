"""The cache never breaks, hangs or bloats the model call: one regression test per way it did."""

from __future__ import annotations

import asyncio
import base64
import pickle
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from langchain_core.language_models import FakeListChatModel
from pymemcache import serde
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.client.base import PooledClient

from llmcache_django import MemcachedLLMCache, RedisLLMCache, llm_caches
from llmcache_django.compat import MemcachedCache, RedisCache
from llmcache_django.core import stats
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest
from llmcache_django.core.ttl import MAX_TTL
from llmcache_django.stores import memcached as memcached_store
from tests import servers
from tests.conftest import kind_param
from tests.helpers import plant, run_bounded, text_generations
from tests.hostile import Exploit

LLM = "model=test"


def model_on(cache: LLMCache) -> FakeListChatModel:
    return FakeListChatModel(responses=["live"], cache=cache)


# Item 5: one bad key is a miss for that key, not an outage for every key


def test_a_wrong_type_under_one_key_misses_that_key_only(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("redis")
    cache.update("good", LLM, text_generations("kept"))
    cache.store.client.hset(cache.store.prefix + entry_digest("bad", LLM), "field", "value")  # type: ignore[attr-defined]
    assert cache.lookup("bad", LLM) is None  # WRONGTYPE: a miss, logged and counted
    assert cache.lookup("good", LLM) == text_generations("kept")  # no pause for the others
    assert (cache.stats.errors, cache.stats.skipped) == (1, 0)  # type: ignore[union-attr]


@pytest.mark.django_db(transaction=True)
def test_a_corrupt_database_row_misses_that_key_only(make_llm_cache: Callable[..., LLMCache]) -> None:
    from django.db import connection

    cache = make_llm_cache("alias-database")
    cache.update("good", LLM, text_generations("kept"))
    cache.update("bad", LLM, text_generations("x"))
    key = caches["llm"].make_key(f"{cache.namespace}:{entry_digest('bad', LLM)}")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE llmcache_tests_table SET value = %s WHERE cache_key = %s", ["%%% not base64", key])
    assert cache.lookup("bad", LLM) is None
    assert cache.lookup("good", LLM) == text_generations("kept")


@pytest.mark.parametrize("kind", ["redis", "memcached", "alias-locmem"])
def test_a_foreign_value_under_the_stats_keys_is_replaced_not_an_outage(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    store = cache.store
    if kind == "redis":
        store.client.set(store.counters_key, b"not a hash")  # type: ignore[attr-defined]
    else:
        store._set(store.key("stats:hits"), b"not a number", None)  # type: ignore[attr-defined]
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) == text_generations("x")
    stats = cache.shared_stats()
    assert stats["hits"] == 1 and stats["writes"] == 1
    assert cache.lookup("p", LLM) == text_generations("x")  # still no pause


@pytest.mark.parametrize("twin", ["lookup", "alookup"])
@pytest.mark.parametrize("kind", ["redis", "memcached", "alias-locmem"])
def test_both_flush_twins_replace_a_foreign_value_under_the_stats_keys(
    kind: str, twin: str, make_llm_cache: Callable[..., LLMCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "FLUSH_COUNT", 1)  # every lookup flushes this process's counts
    cache = make_llm_cache(kind)
    store = cache.store
    if kind == "redis":
        store.client.set(store.counters_key, b"not a hash")  # type: ignore[attr-defined]
    else:
        store._set(store.key("stats:hits"), b"not a number", None)  # type: ignore[attr-defined]
    cache.update("p", LLM, text_generations("x"))
    found = cache.lookup("p", LLM) if twin == "lookup" else asyncio.run(cache.alookup("p", LLM))
    assert found == text_generations("x")
    assert store.read_counters(["hits", "writes"]) == {"hits": 1, "writes": 1}  # read as stored, not flushed again


@pytest.mark.parametrize("kind", ["memcached", "alias-locmem"])
def test_a_foreign_value_under_the_generation_key_does_not_stop_clear(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.update("p", LLM, text_generations("old"))
    cache.store._set(cache.store.generation_key, b"someone else's", None)  # type: ignore[attr-defined]
    cache.clear()
    assert cache.lookup("p", LLM) is None
    cache.update("p", LLM, text_generations("new"))
    assert cache.lookup("p", LLM) == text_generations("new")


# Item 6: nothing on the read path unpickles


def test_compat_memcached_with_a_pickle_serde_client_never_unpickles(memcached_server: servers.Server) -> None:
    user_client = MemcacheClient(("127.0.0.1", memcached_server.port), serde=serde.pickle_serde)
    cache = MemcachedCache(user_client)
    cache.clear()
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) == text_generations("x")
    user_client.set(cache.store.key(entry_digest("p", LLM)), Exploit(), noreply=False)  # type: ignore[attr-defined]
    assert cache.lookup("p", LLM) is None
    assert Exploit.ran is False


@pytest.mark.django_db(transaction=True)
def test_a_pickle_planted_in_the_database_cache_table_is_never_unpickled(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = make_llm_cache("alias-database")
    cache.update("p", LLM, text_generations("x"))
    caches["llm"].set(f"{cache.namespace}:{entry_digest('p', LLM)}", Exploit())  # Django pickles it
    assert cache.lookup("p", LLM) is None
    assert Exploit.ran is False
    raw = cache.store._get_many([cache.store.key(entry_digest("p", LLM))])  # type: ignore[attr-defined]
    assert next(iter(raw.values())).startswith(pickle.PROTO)  # Django's pickle, seen as bytes only


@pytest.mark.django_db(transaction=True)
def test_database_entries_are_stored_as_base64_of_our_own_bytes(make_llm_cache: Callable[..., LLMCache]) -> None:
    from django.db import connection

    cache = make_llm_cache("alias-database")
    cache.update("p", LLM, text_generations("x"))
    key = caches["llm"].make_key(f"{cache.namespace}:{entry_digest('p', LLM)}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM llmcache_tests_table WHERE cache_key = %s", [key])
        (text,) = cursor.fetchone()
    assert b":LC1j{" in base64.b64decode(text)  # generation tag, then our JSON envelope


# Item 4: every server call is bounded


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    "build",
    [
        lambda port: MemcachedCache(MemcacheClient(("127.0.0.1", port))),  # no timeouts at all
        lambda port: MemcachedLLMCache(PooledClient(("127.0.0.1", port)), server_timeout=0.5),
    ],
    ids=["compat-default-client", "pooled-client"],
)
def test_a_memcached_server_that_never_answers_costs_a_bounded_call(
    build: Callable[[int], LLMCache], silent_server: int
) -> None:
    cache = build(silent_server)
    model = model_on(cache)
    run_bounded(lambda: model.invoke("hello"))
    assert cache.stats.errors == 1  # type: ignore[union-attr]


def test_a_memcached_alias_without_options_gets_the_default_bound(settings: object, silent_server: int) -> None:
    settings.CACHES = {  # type: ignore[attr-defined]
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "llm": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": f"127.0.0.1:{silent_server}",
        },
    }
    settings.LLM_CACHES = {"default": {"CACHE": "llm", "OPTIONS": {"SERVER_TIMEOUT": 0.5}}}  # type: ignore[attr-defined]
    cache = llm_caches["default"]
    assert all(node.timeout == 0.5 for node in memcached_store.server_clients(cache.store.client))  # type: ignore[attr-defined]
    run_bounded(lambda: model_on(cache).invoke("hello"))


def test_a_paused_memcached_never_holds_a_model_call_past_the_bound(memcached_server: servers.Server) -> None:
    """SIGSTOP mid-load: 8 threads and 100 asyncio tasks; every call returns, none fails."""
    paused = servers.start_memcached()
    try:
        cache = MemcachedLLMCache(PooledClient(("127.0.0.1", paused.port)), namespace="paused", server_timeout=0.5)
        cache.update("p", LLM, text_generations("x"))
        assert paused.process is not None
        paused.process.send_signal(signal.SIGSTOP)
        model = FakeListChatModel(responses=["live"], cache=cache)
        longest = _longest_call_under_load(model)
        paused.process.send_signal(signal.SIGCONT)
    finally:
        paused.stop()
    print(f"longest call with a paused memcached: {longest:.2f} s")  # reported, not asserted
    assert longest < 30


def _longest_call_under_load(model: FakeListChatModel) -> float:
    import asyncio

    def one(index: int) -> float:
        started = time.monotonic()
        assert model.invoke(f"question {index % 5}").content == "live"
        return time.monotonic() - started

    async def tasks() -> list[float]:
        async def one_async(index: int) -> float:
            started = time.monotonic()
            assert (await model.ainvoke(f"question {index % 5}")).content == "live"
            return time.monotonic() - started

        return list(await asyncio.gather(*(one_async(index) for index in range(100))))

    with ThreadPoolExecutor(8) as pool:
        threaded = pool.map(one, range(40))
        durations = [*asyncio.run(tasks()), *threaded]
    return max(durations)


# Item 7: a restarted server is used again at once


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_after_a_server_restart_the_next_call_is_served_without_a_pause(kind: str) -> None:
    port = servers.free_port()
    server = _start(kind, port)
    if kind == "redis":
        cache: LLMCache = RedisCache(redis.Redis(port=port, retry=None))
    else:
        cache = MemcachedLLMCache(PooledClient(("127.0.0.1", port)), namespace="restart")
    cache.update("p", LLM, text_generations("before"))
    assert cache.lookup("p", LLM) == text_generations("before")  # the pool now holds a connection
    cache.flush_stats()  # nothing pending: the background flusher has no reason to meet the server down
    server.stop()
    server = _start(kind, port)  # empty: neither keeps data across a restart
    try:
        restarted = time.monotonic()
        assert cache.lookup("p", LLM) is None  # the stale connection is retried, not an outage
        cache.update("p", LLM, text_generations("after"))
        assert cache.lookup("p", LLM) == text_generations("after")
        print(f"{kind}: hits again {time.monotonic() - restarted:.3f} s after the restart")
        assert cache.stats.skipped == 0  # type: ignore[union-attr]
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_after_a_server_restart_a_stats_flush_is_no_outage(kind: str) -> None:
    # The background flusher may be the first to use a pooled connection the restart dropped.
    port = servers.free_port()
    server = _start(kind, port)
    if kind == "redis":
        cache: LLMCache = RedisCache(redis.Redis(port=port, retry=None))
    else:
        cache = MemcachedLLMCache(PooledClient(("127.0.0.1", port)), namespace="restart-flush")
    cache.update("p", LLM, text_generations("before"))
    cache.flush_stats()  # the pool now holds a connection
    server.stop()
    server = _start(kind, port)
    try:
        assert cache.stats is not None
        cache.stats.add("misses")
        cache.flush_stats_quietly()
        assert not cache.store.paused_until  # the stale connection was retried, as a lookup's is
        assert cache.shared_stats()["misses"] == 1  # the counts reached the restarted (empty) server
    finally:
        server.stop()


def _start(kind: str, port: int) -> servers.Server:
    if kind == "redis":
        argv = [servers.require_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        return servers.Server("redis-server", port).start(argv)
    argv = [servers.require_binary("memcached"), "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "root"]
    return servers.Server("memcached", port).start(argv)


# Item 7: TTLs


@pytest.mark.parametrize(
    "kind", [kind_param(kind) for kind in ("redis", "memcached", "alias-database", "alias-pymemcache")]
)
def test_the_longest_ttl_allowed_is_written_and_read(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind, TTL=MAX_TTL) if kind.startswith("alias") else make_llm_cache(kind, ttl=MAX_TTL)
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) == text_generations("x")
    assert cache.stats.errors == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("ttl", [float("inf"), 10**12, -5])
def test_an_unusable_ttl_is_refused_at_construction(ttl: float, redis_server: servers.Server) -> None:
    with pytest.raises(ValueError, match=r"ttl=.*is invalid"):
        RedisLLMCache(redis.Redis.from_url(redis_server.url), ttl=ttl)


def test_a_long_memcached_ttl_uses_the_servers_clock_not_ours(
    memcached_server: servers.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    behind = 60 * 24 * 3600  # this machine's clock is 60 days behind the server's

    class SlowClock:
        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

        @staticmethod
        def time() -> float:
            return time.time() - behind

    monkeypatch.setattr(memcached_store, "time", SlowClock())
    cache = MemcachedLLMCache(PooledClient(("127.0.0.1", memcached_server.port)), namespace="skew", ttl=40 * 86400)
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) == text_generations("x")


# Item 7: the admin answers 404, not 500, for what is not an entry


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["alias-django-redis", "alias-pymemcache"])
@pytest.mark.parametrize("name", ["stats", "generation", "has space", "x" * 300])
def test_admin_entry_pages_for_names_that_are_not_entries_are_404(
    kind: str, name: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    cache.update("p", LLM, text_generations("x"))
    cache.flush_stats()
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    for page in ("entry", "delete_entry"):
        assert client.get(reverse(f"admin:llmcache_django_llmcache_{page}", args=["default", name])).status_code == 404


@pytest.mark.django_db
def test_admin_entries_page_skips_an_entry_whose_fields_have_the_wrong_types(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = make_llm_cache("alias-django-redis")
    cache.update("fine", LLM, text_generations("x"))
    plant(
        cache,
        "planted",
        LLM,
        b'LC1j{"p": 5, "m": ["x"], "h": {}, "c": "yesterday", "g": [{"t": "Generation", "x": 1}]}',
    )
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.get(reverse("admin:llmcache_django_llmcache_entries", args=["default"]))
    assert response.status_code == 200
    assert "fine" in response.content.decode()
