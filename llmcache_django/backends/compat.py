"""Drop-in replacements for ``langchain_community.cache``'s Redis and Memcached caches.

Same constructor arguments and client type checks as langchain-community 0.4.2, none of
its defects: ``clear()`` removes only our namespace (no FLUSHDB / ``flush_all``), keys are
unambiguous, entries are replaced whole, values are JSON (never ``loads``/pickle), memcached
gets TTLs, failures never reach the model call, and ``AsyncRedisCache`` serves sync calls.
Migrating is one import line::

    from llmcache_django.backends.compat import AsyncRedisCache  # was: langchain_community.cache
"""

from __future__ import annotations

from typing import Any

from llmcache_django.backends.classes import MemcachedLLMCache, RedisLLMCache


class RedisCache(RedisLLMCache):
    """Cache on Redis with a sync ``redis.Redis`` (or ``RedisCluster``) client (async calls work too)."""

    def __init__(self, redis_: Any, *, ttl: int | None = None) -> None:
        try:
            from redis import Redis
            from redis.cluster import RedisCluster
        except ImportError as exc:
            raise ImportError(
                "Could not import `redis` python package. Please install it with `pip install llmcache-django[redis]`."
            ) from exc
        if not isinstance(redis_, Redis | RedisCluster):
            raise ValueError("Please pass a valid `redis.Redis` client.")
        super().__init__(redis_, ttl=ttl)
        self.redis = redis_


class AsyncRedisCache(RedisLLMCache):
    """Cache on Redis with an async ``redis.asyncio.Redis`` client; sync calls work too,
    through a sync client with the same connection settings."""

    def __init__(self, redis_: Any, *, ttl: int | None = None) -> None:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.cluster import RedisCluster
        except ImportError as exc:
            raise ImportError(
                "Could not import `redis.asyncio` python package. Please install it with "
                "`pip install llmcache-django[redis]`."
            ) from exc
        if not isinstance(redis_, Redis | RedisCluster):
            raise ValueError("Please pass a valid `redis.asyncio.Redis` client.")
        super().__init__(async_client=redis_, ttl=ttl)
        self.redis = redis_


class MemcachedCache(MemcachedLLMCache):
    """Cache on memcached with any pymemcache client; ``ttl`` (seconds, optional) is our
    addition: upstream entries never expire."""

    def __init__(self, client_: Any, *, ttl: int | None = None) -> None:
        try:
            from pymemcache.client import Client, HashClient, PooledClient, RetryingClient
        except ImportError as exc:
            raise ImportError(
                "Could not import pymemcache python package. Please install it with "
                "`pip install llmcache-django[memcached]`."
            ) from exc
        if not isinstance(client_, (Client, PooledClient, HashClient, RetryingClient)):
            raise ValueError("Please pass a valid pymemcached client")
        super().__init__(client_, ttl=ttl)
        self.client = client_


__all__ = ["AsyncRedisCache", "MemcachedCache", "RedisCache"]
