"""How an ``LLM_CACHES`` alias becomes an LLM cache, one function per kind of backend.

Each :class:`~llmcache_django.backends.registry.BackendSpec` names its function here; the handler calls
it with the alias's parsed settings and the options every cache takes (TTL, alias, feature
options), and the function adds what its kind of server needs.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from llmcache_django.conf import AliasSettings
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import MAX_ENTRY_NAME, MEMCACHED_MAX_KEY, key_prefix
from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT

#: LLM_CACHES OPTIONS -> keyword arguments of RedisLLMCache (one server or a cluster).
REDIS_POOL_OPTIONS = {"ASYNC_MAX_CONNECTIONS": "async_max_connections", "ASYNC_POOL_TIMEOUT": "async_pool_timeout"}


def redis_cache(settings: AliasSettings, **kwargs: Any) -> LLMCache:
    """A :class:`~llmcache_django.RedisLLMCache` on the alias's own client (or its cluster's nodes)."""
    from llmcache_django.backends.classes import RedisLLMCache
    from llmcache_django.stores.redis_clients import is_async

    options = settings.feature_options
    kwargs.update(_server_timeout(settings))
    kwargs.update({keyword: options[name] for name, keyword in REDIS_POOL_OPTIONS.items() if name in options})
    prefix = _prefix(settings)
    if options.get("CLUSTER"):
        from llmcache_django.backends.cluster_settings import cluster_client

        client = cluster_client(settings.cache, kwargs.get("server_timeout", DEFAULT_SERVER_TIMEOUT))
        return RedisLLMCache(async_client=client, namespace=settings.namespace, key_prefix=prefix, **kwargs)
    client = settings.spec.client_of(settings.cache_alias)
    kwargs["async_client" if is_async(client) else "client"] = client
    return RedisLLMCache(namespace=settings.namespace, key_prefix=prefix, **kwargs)


def memcached_cache(settings: AliasSettings, **kwargs: Any) -> LLMCache:
    """A :class:`~llmcache_django.MemcachedLLMCache` on the alias's servers, through our own client."""
    from pymemcache.client.hash import HashClient

    from llmcache_django.backends.classes import MemcachedLLMCache
    from llmcache_django.stores.memcached_pool import POOL_DEFAULTS

    prefix = _prefix(settings)
    if len(prefix) + MAX_ENTRY_NAME > MEMCACHED_MAX_KEY or any(char.isspace() or ord(char) < 33 for char in prefix):
        raise ImproperlyConfigured(
            f"CACHES[{settings.cache_alias!r}] KEY_PREFIX/VERSION with NAMESPACE {settings.namespace!r} give the "
            f"key prefix {prefix!r}, which cannot be part of a memcached key (at most {MEMCACHED_MAX_KEY - MAX_ENTRY_NAME} "
            f"characters, no spaces or control characters); shorten or clean KEY_PREFIX."
        )
    django_cache = caches[settings.cache_alias]
    # Our own client on the alias's servers and options, but raw bytes in and out: Django's
    # client unpickles what it reads, and nothing on our read path may unpickle.
    # A dead node is skipped after two retries and tried again after 10 s (the alias's OPTIONS win).
    client_options = {**POOL_DEFAULTS, **django_cache._options, "serde": None, "use_pooling": True}  # type: ignore[attr-defined]
    client_options.pop("serializer", None)
    client_options.pop("deserializer", None)
    client = HashClient(django_cache.client_servers, **client_options)  # type: ignore[attr-defined]
    kwargs.update(_server_timeout(settings))
    return MemcachedLLMCache(client, namespace=settings.namespace, key_prefix=prefix, **kwargs)


def django_cache(settings: AliasSettings, **kwargs: Any) -> LLMCache:
    """A :class:`~llmcache_django.DjangoLLMCache` through the alias (its table, for the database cache)."""
    from llmcache_django.backends.classes import DjangoLLMCache

    return DjangoLLMCache(settings.cache_alias, namespace=settings.namespace, **kwargs)


def _server_timeout(settings: AliasSettings) -> dict[str, Any]:
    options = settings.feature_options
    return {"server_timeout": options["SERVER_TIMEOUT"]} if "SERVER_TIMEOUT" in options else {}


def _prefix(settings: AliasSettings) -> str:
    cache = settings.cache
    return key_prefix(
        settings.namespace,
        prefix=cache.get("KEY_PREFIX", ""),
        version=cache.get("VERSION", 1),
        key_func=cache.get("KEY_FUNCTION"),
    )
