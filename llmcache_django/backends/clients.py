"""The raw client behind a Redis-protocol ``CACHES`` alias: django-redis, Django's own
``RedisCache``, or django-valkey (sync or async backend). Each backend's spec in
:mod:`llmcache_django.backends.registry` names its function here."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches


def django_redis_client(cache_alias: str) -> Any:
    """django-redis's client for writes (its primary)."""
    from django_redis import get_redis_connection

    return get_redis_connection(cache_alias, write=True)


def builtin_redis_client(cache_alias: str) -> Any:
    """Django's own ``RedisCache``'s client for writes."""
    return caches[cache_alias]._cache.get_client(write=True)  # type: ignore[attr-defined]


def valkey_client(cache_alias: str) -> Any:
    """django-valkey's sync client for writes."""
    from django_valkey import get_valkey_connection

    return get_valkey_connection(cache_alias, write=True)


def async_valkey_client(cache_alias: str) -> Any:
    """django-valkey's async backend's client: an asyncio valkey-py client."""
    return _async_valkey_client(caches[cache_alias])


def _async_valkey_client(django_cache: Any) -> Any:
    # The backend's own get_client() is a coroutine; its connection factory builds the same
    # client (same pool settings) without awaiting anything, and opens no connection. A pool
    # of our own: the factory's pool cache is shared with the sync backend's, by URL only.
    client = django_cache.client
    factory = client.connection_factory
    pool = factory.get_connection_pool(factory.make_connection_params(client._server[0]))
    return factory.base_client_cls(connection_pool=pool, **factory.base_client_cls_kwargs)
