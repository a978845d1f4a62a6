"""RedisLLMCache on a real Redis Cluster: client derivation and cluster-wide operations."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
from django.test import override_settings
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from llmcache_django import RedisLLMCache, llm_caches
from llmcache_django.compat import AsyncRedisCache, RedisCache
from llmcache_django.ops.checks import check_llm_caches
from llmcache_django.stores.redis_cluster import RedisClusterStore, derive_cluster_client
from tests.helpers import text_generations

LLM = "model=test temperature=0"


def namespace() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


def keys_per_primary(cluster: Any, pattern: str) -> list[int]:
    counts = []
    for port in cluster.ports:
        node = redis.Redis(port=port)
        if node.info("replication")["role"] == "master":
            counts.append(sum(1 for _ in node.scan_iter(match=pattern)))
        node.close()
    return counts


def test_entries_spread_over_every_primary_and_clear_removes_them_all(redis_cluster: Any) -> None:
    cache = RedisLLMCache(redis.cluster.RedisCluster.from_url(redis_cluster.urls[0]), namespace=namespace())
    for number in range(60):
        cache.update(f"prompt {number}", LLM, text_generations(f"answer {number}"))
    pattern = cache.store.pattern  # type: ignore[attr-defined]
    assert all(count > 0 for count in keys_per_primary(redis_cluster, pattern))
    assert len(list(cache.entries())) == 60
    assert cache.clear_namespace() == 60
    assert cache.lookup("prompt 1", LLM) is None
    assert len(list(cache.entries())) == 0


def test_selective_clear_of_one_model_keeps_the_other_across_the_cluster(redis_cluster: Any) -> None:
    cache = RedisLLMCache(redis.cluster.RedisCluster.from_url(redis_cluster.urls[1]), namespace=namespace())
    for number in range(20):
        cache.update(f"p{number}", "[('model_name', 'keep')]", text_generations("k"))
        cache.update(f"p{number}", "[('model_name', 'drop')]", text_generations("d"))
    assert cache.model_summary().keys() == {"keep", "drop"}
    assert cache.delete_entries(model="drop") == 20
    assert cache.model_summary().keys() == {"keep"}
    assert cache.lookup("p3", "[('model_name', 'keep')]") == text_generations("k")


def test_an_async_cluster_client_serves_sync_calls_through_a_derived_sync_client(redis_cluster: Any) -> None:
    client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster.urls[2], socket_timeout=1.5)
    cache = RedisLLMCache(async_client=client, namespace=namespace())
    asyncio.run(cache.aupdate("p", LLM, text_generations("async")))
    assert cache.lookup("p", LLM) == text_generations("async")
    assert isinstance(cache.store.client, redis.cluster.RedisCluster)  # type: ignore[attr-defined]
    assert cache.store.client.nodes_manager.connection_kwargs["socket_timeout"] == 1.5  # type: ignore[attr-defined]


def test_a_custom_retry_is_carried_to_the_derived_cluster_clients(redis_cluster: Any) -> None:
    # With SERVER_TIMEOUT the cache makes one-try clients on purpose; without it, the user's retry applies.
    retry = Retry(ConstantBackoff(0.05), 7, supported_errors=(redis.exceptions.TimeoutError,))
    source = redis.cluster.RedisCluster.from_url(redis_cluster.urls[0], retry=retry)
    cache = RedisLLMCache(source, namespace=namespace(), server_timeout=None)

    async def async_retry() -> Any:
        return cache.store.async_client.retry  # type: ignore[attr-defined]

    derived = asyncio.run(async_retry())
    assert isinstance(derived, redis.asyncio.retry.Retry)
    assert (derived.get_retries(), type(derived._backoff), derived._backoff._backoff) == (7, ConstantBackoff, 0.05)
    assert redis.exceptions.TimeoutError in derived._supported_errors
    back = derive_cluster_client(source, asynchronous=False, server_timeout=2.0)
    assert back.retry.get_retries() == 7 and back.retry is not retry  # each client its own backoff state
    assert derive_cluster_client(source, asynchronous=True, server_timeout=2.0, retries=False).retry.get_retries() == 0


def test_a_derived_async_cluster_client_keeps_startup_nodes_password_and_timeouts(redis_cluster: Any) -> None:
    source = redis.cluster.RedisCluster.from_url(redis_cluster.urls[0], socket_timeout=0.7, client_name="llm")
    derived = derive_cluster_client(source, asynchronous=True, server_timeout=2.0, max_connections=7)
    assert isinstance(derived, redis.asyncio.cluster.RedisCluster)
    assert set(derived.nodes_manager.startup_nodes) == set(source.nodes_manager.startup_nodes)
    settings = derived.connection_kwargs
    assert (settings["socket_timeout"], settings["socket_connect_timeout"]) == (0.7, 2.0)
    assert (settings["client_name"], settings["max_connections"]) == ("llm", 7)
    back = derive_cluster_client(derived, asynchronous=False, server_timeout=None)
    assert back.nodes_manager.connection_kwargs["client_name"] == "llm"


def test_the_cluster_store_is_picked_by_client_type(redis_cluster: Any) -> None:
    cache = RedisLLMCache(redis.cluster.RedisCluster.from_url(redis_cluster.urls[0]))
    assert isinstance(cache.store, RedisClusterStore)
    assert "redis cluster 127.0.0.1:" in cache.store.describe()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_compat_classes_accept_cluster_clients(redis_cluster: Any, asynchronous: bool) -> None:
    url = redis_cluster.urls[0]
    if asynchronous:
        cache: RedisLLMCache = AsyncRedisCache(redis.asyncio.cluster.RedisCluster.from_url(url))
    else:
        cache = RedisCache(redis.cluster.RedisCluster.from_url(url))
    cache.clear()
    cache.update("p", LLM, text_generations("compat"))
    assert asyncio.run(cache.alookup("p", LLM)) == text_generations("compat")
    cache.clear()


def test_shared_stats_on_the_cluster_add_up_from_sync_and_async_calls(redis_cluster: Any) -> None:
    cache = RedisLLMCache(redis.cluster.RedisCluster.from_url(redis_cluster.urls[0]), namespace=namespace())
    store = cache.store
    store.add_counters({"hits": 2, "misses": 1})
    asyncio.run(store.aadd_counters({"hits": 3}))
    assert store.read_counters(["hits", "misses"]) == {"hits": 5, "misses": 1}
    store.reset_counters(["hits", "misses"])
    assert store.read_counters(["hits"]) == {"hits": 0}


def cluster_alias_settings(location: Any, backend: str = "django.core.cache.backends.redis.RedisCache") -> Any:
    return override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "llm": {"BACKEND": backend, "LOCATION": location},
        },
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": namespace(), "OPTIONS": {"CLUSTER": True}}},
    )


def test_a_cluster_alias_builds_a_cluster_cache_from_its_startup_nodes(redis_cluster: Any) -> None:
    with cluster_alias_settings(",".join(redis_cluster.urls[:2])):
        assert check_llm_caches() == []
        cache = llm_caches["default"]
        assert isinstance(cache.store, RedisClusterStore)
        cache.update("p", LLM, text_generations("from settings"))
        assert asyncio.run(cache.alookup("p", LLM)) == text_generations("from settings")


def test_cluster_on_a_non_redis_alias_is_an_error() -> None:
    with cluster_alias_settings("x", backend="django.core.cache.backends.locmem.LocMemCache"):
        assert [message.id for message in check_llm_caches()] == ["llmcache_django.E030"]


@pytest.mark.parametrize("location", ["unix:///tmp/redis.sock", "redis://127.0.0.1:7000/3", "", "http//nope"])
def test_a_cluster_location_that_cannot_be_a_startup_node_is_an_error(location: str) -> None:
    with cluster_alias_settings(location):
        assert [message.id for message in check_llm_caches()] == ["llmcache_django.E031"]


def test_a_health_probe_pings_every_node_of_the_cluster(redis_cluster: Any) -> None:
    from llmcache_django.ops.health import Status, probe

    with cluster_alias_settings(redis_cluster.urls):
        health = probe("default")
    assert health.status in {Status.REACHABLE, Status.DEGRADED}  # degraded only if slow
    assert sorted(server.server for server in health.servers) == sorted(
        f"127.0.0.1:{port}" for port in redis_cluster.ports
    )
    assert all(server.error is None for server in health.servers)
