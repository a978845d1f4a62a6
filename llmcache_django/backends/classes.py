"""The public cache classes: one per kind of server, all :class:`LLMCache` underneath."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.cache import BaseCache as DjangoCache
from django.core.cache import caches

from llmcache_django.conf import DEFAULT_NAMESPACE
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import key_prefix as make_key_prefix
from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster


class RedisLLMCache(LLMCache):
    """LLM cache on Redis, from a sync ``redis.Redis``, an async ``redis.asyncio.Redis``, or both.

    Redis Cluster clients (``redis.cluster.RedisCluster``, ``redis.asyncio.cluster.RedisCluster``)
    work the same way: the other kind is derived with the same startup nodes and settings.

    ``key_prefix`` defaults to ``"<namespace>:"``. The missing client, and one async client
    per event loop, are made with every connection setting of the given one (Sentinel
    included); a setting that cannot be carried raises :class:`ClientSettingError` here.
    ``server_timeout`` (seconds) bounds every cache call: one try, at most that long to connect
    and to answer (a given client with no, longer timeouts or retries is used through a copy
    without them; ``None`` uses it as given). Extra keyword arguments go to :class:`LLMCache`.
    """

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster | None = None,
        *,
        async_client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        key_prefix: str | None = None,
        ttl: float | None = None,
        async_max_connections: int = 50,
        async_pool_timeout: float = 20.0,
        server_timeout: float | None = DEFAULT_SERVER_TIMEOUT,
        **options: Any,
    ) -> None:
        from llmcache_django.stores.redis import RedisStore
        from llmcache_django.stores.redis_cluster import RedisClusterStore, is_cluster

        store_class = RedisClusterStore if is_cluster(client) or is_cluster(async_client) else RedisStore
        store = store_class(
            key_prefix if key_prefix is not None else make_key_prefix(namespace),
            client=client,  # type: ignore[arg-type]
            async_client=async_client,  # type: ignore[arg-type]
            async_max_connections=async_max_connections,
            async_pool_timeout=async_pool_timeout,
            server_timeout=server_timeout,
            # The store reads no more than the cache accepts (a larger value is not read whole).
        )
        super().__init__(store, ttl=ttl, namespace=namespace, **options)


class MemcachedLLMCache(LLMCache):
    """LLM cache on memcached through a pymemcache client (``Client``, ``PooledClient``,
    ``HashClient`` or ``RetryingClient``), with TTLs (over 30 days too).

    The cache talks through a copy of ``client`` with the same servers and settings but no
    serde (it stores its own bytes, and never unpickles); timeouts the client leaves unset
    become ``server_timeout`` seconds.
    """

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        key_prefix: str | None = None,
        ttl: float | None = None,
        server_timeout: float | None = DEFAULT_SERVER_TIMEOUT,
        **options: Any,
    ) -> None:
        from llmcache_django.stores.memcached import MemcachedStore
        from llmcache_django.stores.memcached_pool import MemcachedPoolStore, is_pool

        store = (MemcachedPoolStore if is_pool(client) else MemcachedStore)(
            client, key_prefix if key_prefix is not None else make_key_prefix(namespace), server_timeout=server_timeout
        )
        super().__init__(store, ttl=ttl, namespace=namespace, **options)


class DjangoLLMCache(LLMCache):
    """LLM cache in any Django cache (database, locmem, file, ...).

    ``cache`` is a ``CACHES`` alias or a Django cache object. On the database cache the
    table is read and written directly with our own bytes (Django's cache API would unpickle
    what it reads); other backends go through Django's cache API.
    """

    def __init__(
        self,
        cache: str | DjangoCache = "default",
        *,
        namespace: str = DEFAULT_NAMESPACE,
        ttl: float | None = None,
        **options: Any,
    ) -> None:
        from django.core.cache.backends.db import DatabaseCache

        from llmcache_django.backends.registry import spec_of_cache
        from llmcache_django.stores.database import DatabaseStore
        from llmcache_django.stores.django import DjangoStore

        alias = cache if isinstance(cache, str) else ""
        backend = caches[cache] if isinstance(cache, str) else cache
        options.setdefault("alias", alias)
        # The database cache's table is read directly, so nothing on the read path unpickles.
        store = (
            DatabaseStore(backend, namespace, alias)
            if isinstance(backend, DatabaseCache)
            else DjangoStore(backend, namespace, alias, can_lease=spec_of_cache(backend).can_lease)
        )
        super().__init__(store, ttl=ttl, namespace=namespace, **options)
