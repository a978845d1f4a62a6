"""The raw client behind a Redis-protocol ``CACHES`` alias: django-redis, Django's own
``RedisCache``, or django-valkey (sync or async backend)."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches

DJANGO_REDIS = "django_redis.cache.RedisCache"
BUILTIN_REDIS = "django.core.cache.backends.redis.RedisCache"
VALKEY = "django_valkey.cache.ValkeyCache"
ASYNC_VALKEY = "django_valkey.async_cache.cache.AsyncValkeyCache"
#: Backends whose alias becomes a :class:`~llmcache_django.RedisLLMCache` on the alias's servers.
REDIS_PROTOCOL_BACKENDS = frozenset({DJANGO_REDIS, BUILTIN_REDIS, VALKEY, ASYNC_VALKEY})


def client_for(cache_alias: str, backend: str) -> Any:
    """The alias's own client for writes (its primary): a redis-py or valkey-py client, sync
    for every backend but django-valkey's async one, which gives an asyncio client."""
    if backend == DJANGO_REDIS:
        from django_redis import get_redis_connection

        return get_redis_connection(cache_alias, write=True)
    if backend == VALKEY:
        from django_valkey import get_valkey_connection

        return get_valkey_connection(cache_alias, write=True)
    if backend == ASYNC_VALKEY:
        return _async_valkey_client(caches[cache_alias])
    return caches[cache_alias]._cache.get_client(write=True)  # type: ignore[attr-defined]


def _async_valkey_client(django_cache: Any) -> Any:
    # The backend's own get_client() is a coroutine; its connection factory builds the same
    # client (same pool settings) without awaiting anything, and opens no connection. A pool
    # of our own: the factory's pool cache is shared with the sync backend's, by URL only.
    client = django_cache.client
    factory = client.connection_factory
    pool = factory.get_connection_pool(factory.make_connection_params(client._server[0]))
    return factory.base_client_cls(connection_pool=pool, **factory.base_client_cls_kwargs)
