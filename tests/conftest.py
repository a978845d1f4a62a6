"""Shared fixtures: real servers for the session, and an empty LLM cache of every kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings

from llmcache_django.core.cache import LLMCache
from tests import servers
from tests.builders import build_direct_cache

VALKEY = "django_valkey.cache.ValkeyCache"
#: Each kind of cache the contract and standard suites run against.
CACHE_KINDS = [
    "redis",  # RedisLLMCache on a sync redis.Redis
    "compat-redis",  # compat.RedisCache
    "compat-async-redis",  # compat.AsyncRedisCache (sync calls too)
    "memcached",  # MemcachedLLMCache on a PooledClient
    "compat-memcached",  # compat.MemcachedCache on a plain Client
    "alias-django-redis",  # LLM_CACHES on a django_redis.cache.RedisCache alias
    "alias-django-builtin-redis",  # ... on django.core.cache.backends.redis.RedisCache
    "alias-pymemcache",  # ... on django.core.cache.backends.memcached.PyMemcacheCache
    "alias-sentinel",  # ... on a django_redis SentinelClient alias (primary, replica, sentinel)
    "alias-valkey",  # ... on django_valkey.cache.ValkeyCache (valkey-py, against redis-server)
    "alias-async-valkey",  # ... on django_valkey.async_cache.cache.AsyncValkeyCache
    "alias-pymemcache-pool",  # ... on a PyMemcacheCache alias with three LOCATIONs
    "alias-database",  # ... on the database cache
    "alias-locmem",  # ... on LocMemCache
    "redis-cluster",  # RedisLLMCache on a redis.cluster.RedisCluster (3 primaries + replicas)
    "redis-cluster-async",  # RedisLLMCache on a redis.asyncio.cluster.RedisCluster (sync calls too)
    "alias-redis-cluster",  # LLM_CACHES with OPTIONS CLUSTER on a RedisCache alias listing startup nodes
]
#: The kinds whose store tags entries with a generation counter (all but the Redis ones).
GENERATIONAL_KINDS = [
    "memcached",
    "compat-memcached",
    "alias-pymemcache",
    "alias-pymemcache-pool",
    "alias-database",
    "alias-locmem",
]


#: How long a browser test's ``expect(...)`` waits for the page to show something (Playwright's
#: default is 5 s): a deadline, not a speed claim. On a loaded machine the demo's slow model
#: (a 4 s answer) finished streaming after Playwright's 5 s.
BROWSER_EXPECT_SECONDS = 30


def pytest_configure(config: pytest.Config) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=BROWSER_EXPECT_SECONDS * 1000)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    server = servers.start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[servers.Server]:
    server = servers.start_memcached()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.Server, servers.Server]]:
    """A primary with one replica, watched by one sentinel as :data:`servers.SENTINEL_SERVICE`."""
    primary, replica, watcher = servers.start_sentinel_group(tmp_path_factory.mktemp("sentinel"))
    yield primary, watcher
    for server in (watcher, replica, primary):
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    from tests.cluster_servers import start_cluster

    cluster = start_cluster()
    yield cluster
    cluster.stop()


def cache_settings(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The CACHES entry an ``alias-*`` kind stores its entries in."""
    if kind == "alias-django-redis":
        url = request.getfixturevalue("redis_server").url
        return {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": "site", "VERSION": 2}
    if kind == "alias-django-builtin-redis":
        url = request.getfixturevalue("redis_server").url
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    if kind == "alias-sentinel":
        return servers.sentinel_cache_settings(request.getfixturevalue("sentinel")[1], db=3)
    if kind in ("alias-valkey", "alias-async-valkey"):
        backend = "django_valkey.async_cache.cache.AsyncValkeyCache" if kind == "alias-async-valkey" else VALKEY
        url = request.getfixturevalue("redis_server").url.replace("redis://", "valkey://")
        return {"BACKEND": backend, "LOCATION": url, "KEY_PREFIX": "vk"}
    if kind == "alias-redis-cluster":
        urls = request.getfixturevalue("redis_cluster").urls
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": urls, "KEY_PREFIX": "site"}
    if kind == "alias-pymemcache":
        location = request.getfixturevalue("memcached_server").location
        return {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": location,
            "KEY_PREFIX": "site",
        }
    if kind == "alias-pymemcache-pool":
        pool = request.getfixturevalue("memcached_pool_servers")
        return {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": [server.location for server in pool],
            "KEY_PREFIX": "site",
        }
    if kind == "alias-database":  # needs @pytest.mark.django_db(transaction=True)
        from django.conf import settings

        return settings.CACHES["db"]  # one table for the run, never culled (see tests/settings.py)
    return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"llm-{uuid.uuid4().hex}"}


def direct_cache(kind: str, request: pytest.FixtureRequest, **options: Any) -> LLMCache:
    """Build a cache of a non-alias kind on the session servers."""
    return build_direct_cache(kind, direct_address(kind, request), f"t{uuid.uuid4().hex[:12]}", **options)


def direct_address(kind: str, request: pytest.FixtureRequest) -> str:
    """The server a non-alias ``kind`` talks to: a Redis URL, a cluster node's URL or memcached's host:port."""
    if kind.startswith("redis-cluster"):
        return str(request.getfixturevalue("redis_cluster").urls[0])
    if kind.endswith("memcached"):
        return str(request.getfixturevalue("memcached_server").location)
    return str(request.getfixturevalue("redis_server").url)


@pytest.fixture
def make_llm_cache(request: pytest.FixtureRequest) -> Iterator[Callable[..., LLMCache]]:
    """Factory: ``make_llm_cache(kind, **LLM_CACHES options)`` -> an empty cache of that kind."""
    overrides: list[override_settings] = []

    def make(kind: str, **options: Any) -> LLMCache:
        if not kind.startswith("alias-"):
            cache = direct_cache(kind, request, **{k.lower(): v for k, v in options.items()})
        else:
            if kind == "alias-redis-cluster":
                options = {**options, "OPTIONS": {"CLUSTER": True, **options.get("OPTIONS", {})}}
            override = override_settings(
                CACHES={
                    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
                    "llm": cache_settings(kind, request),
                },
                LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": f"t{uuid.uuid4().hex[:12]}", **options}},
            )
            override.enable()
            overrides.append(override)
            from llmcache_django import llm_caches

            cache = llm_caches["default"]
        cache.clear()
        return cache

    yield make
    for override in reversed(overrides):
        override.disable()


def kind_param(kind: str) -> Any:
    """``kind`` as a pytest param, with the database access it needs."""
    if kind == "alias-database":
        return pytest.param(kind, marks=pytest.mark.django_db(transaction=True))
    return kind


@pytest.fixture(params=[kind_param(kind) for kind in CACHE_KINDS])
def cache_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def llm_cache(cache_kind: str, make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    """An empty cache of each kind in turn."""
    return make_llm_cache(cache_kind)


@pytest.fixture(scope="session")
def memcached_pool_servers() -> Iterator[list[servers.Server]]:
    """Three memcached servers for the session's pool alias (tests that kill one start their own)."""
    pool = [servers.start_memcached() for _ in range(3)]
    yield pool
    for server in pool:
        server.stop()


@pytest.fixture
def global_cache(llm_cache: LLMCache) -> Iterator[LLMCache]:
    """``llm_cache`` as LangChain's global cache: through ``LLM_CACHES`` for alias kinds (the
    installed stand-in forwards to it), by ``set_llm_cache`` for the others."""
    from langchain_core.globals import get_llm_cache, set_llm_cache

    from llmcache_django.backends.handler import default_llm_cache

    previous = get_llm_cache()
    if llm_cache.alias != "default":
        set_llm_cache(llm_cache)
    else:
        assert previous is default_llm_cache  # installed by AppConfig.ready()
    yield llm_cache
    set_llm_cache(previous)
