"""Caches of the non-alias kinds, built from a server address alone (no pytest, no fixtures),
so the test process and worker subprocesses build them the same way."""

from __future__ import annotations

from typing import Any

from llmcache_django.core.cache import LLMCache


def build_direct_cache(kind: str, address: str, namespace: str, **options: Any) -> LLMCache:
    """A cache of the non-alias ``kind`` (see ``tests.conftest.CACHE_KINDS``) on ``address``:
    a Redis URL, a Redis Cluster node's URL or memcached's ``host:port``."""
    if kind.startswith("redis-cluster"):
        return _cluster_cache(kind, address, namespace, **options)
    if kind.endswith("memcached"):
        return _memcached_cache(kind, address, namespace, **options)
    import redis
    import redis.asyncio

    from llmcache_django import RedisLLMCache
    from llmcache_django.compat import AsyncRedisCache, RedisCache

    if kind == "compat-redis":
        return RedisCache(redis.Redis.from_url(address), **options)
    if kind == "compat-async-redis":
        return AsyncRedisCache(redis.asyncio.Redis.from_url(address), **options)
    return RedisLLMCache(redis.Redis.from_url(address), namespace=namespace, **options)


def _cluster_cache(kind: str, url: str, namespace: str, **options: Any) -> LLMCache:
    import redis.asyncio.cluster
    import redis.cluster

    from llmcache_django import RedisLLMCache

    if kind == "redis-cluster-async":
        return RedisLLMCache(
            async_client=redis.asyncio.cluster.RedisCluster.from_url(url), namespace=namespace, **options
        )
    return RedisLLMCache(redis.cluster.RedisCluster.from_url(url), namespace=namespace, **options)


def _memcached_cache(kind: str, location: str, namespace: str, **options: Any) -> LLMCache:
    from pymemcache.client.base import Client, PooledClient

    from llmcache_django import MemcachedLLMCache
    from llmcache_django.compat import MemcachedCache

    host, port = location.rsplit(":", 1)
    if kind == "compat-memcached":
        return MemcachedCache(Client((host, int(port))), **options)
    return MemcachedLLMCache(PooledClient((host, int(port))), namespace=namespace, **options)
