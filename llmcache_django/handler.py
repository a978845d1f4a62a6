"""``llm_caches``: one LLM cache per ``LLM_CACHES`` alias, built lazily from ``CACHES``."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache

from llmcache_django.alias_clients import REDIS_PROTOCOL_BACKENDS, client_for
from llmcache_django.cache import LLMCache
from llmcache_django.conf import DEFAULT_ALIAS, DEFAULT_NAMESPACE, alias_problems, app_settings
from llmcache_django.keys import MEMCACHED_MAX_KEY, key_prefix
from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT

MEMCACHED_BACKENDS = frozenset({"django.core.cache.backends.memcached.PyMemcacheCache"})
#: LLM_CACHES OPTIONS -> keyword arguments of LLMCache.
CACHE_OPTIONS = {
    "COMPRESS_MIN_BYTES": "compress_min_bytes",
    "MAX_ENTRY_BYTES": "max_entry_bytes",
    "STATS": "stats",
    "SINGLE_FLIGHT": "single_flight",
}
#: LLM_CACHES OPTIONS -> keyword arguments of RedisLLMCache (one server or a cluster).
REDIS_POOL_OPTIONS = {"ASYNC_MAX_CONNECTIONS": "async_max_connections", "ASYNC_POOL_TIMEOUT": "async_pool_timeout"}


class LLMCacheHandler:
    """Like ``django.core.cache.caches``: ``llm_caches[alias]`` is built on first use and
    kept for the process (shared by threads, like the LangChain global cache itself);
    :meth:`reset` drops them when ``LLM_CACHES`` or ``CACHES`` change."""

    def __init__(self) -> None:
        self._caches: dict[str, LLMCache] = {}
        self._lock = threading.Lock()

    def __getitem__(self, alias: str) -> LLMCache:
        try:
            return self._caches[alias]
        except KeyError:
            with self._lock:
                if alias not in self._caches:
                    self._caches[alias] = build_llm_cache(alias)
                return self._caches[alias]

    def __iter__(self) -> Iterator[str]:
        return iter(configured_aliases())

    def __contains__(self, alias: object) -> bool:
        return alias in configured_aliases()

    def all(self) -> list[LLMCache]:
        """Every configured LLM cache, building those not built yet."""
        return [self[alias] for alias in self]

    def built(self) -> dict[str, LLMCache]:
        """The caches built so far in this process, by alias (builds none)."""
        return dict(self._caches)

    def reset(self) -> None:
        """Forget every built cache; the next access builds it from the current settings."""
        with self._lock:
            self._caches = {}


llm_caches = LLMCacheHandler()


class DefaultLLMCache(BaseCache):
    """What ``AppConfig.ready()`` installs as LangChain's global cache: a stand-in that
    forwards to ``llm_caches["default"]``, so settings changes apply and start-up opens
    no connection."""

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return llm_caches[DEFAULT_ALIAS].lookup(prompt, llm_string)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        llm_caches[DEFAULT_ALIAS].update(prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        llm_caches[DEFAULT_ALIAS].clear(**kwargs)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await llm_caches[DEFAULT_ALIAS].alookup(prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await llm_caches[DEFAULT_ALIAS].aupdate(prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        await llm_caches[DEFAULT_ALIAS].aclear(**kwargs)


default_llm_cache = DefaultLLMCache()


def configured_aliases() -> list[str]:
    """The aliases of ``LLM_CACHES``, in settings order."""
    config = app_settings.LLM_CACHES
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"LLM_CACHES must be a dict of alias -> options, not {type(config).__name__}.")
    return list(config)


def build_llm_cache(alias: str) -> LLMCache:
    """Build the LLM cache for ``LLM_CACHES[alias]`` on its ``CACHES`` alias's servers."""
    if alias not in configured_aliases():
        raise ImproperlyConfigured(
            f"LLM cache alias {alias!r} is not in LLM_CACHES (defined: {', '.join(configured_aliases()) or 'none'})."
        )
    config = app_settings.LLM_CACHES[alias]
    problems = alias_problems(alias, config)
    if problems:
        raise ImproperlyConfigured(" ".join(problems))
    cache_alias = config.get("CACHE", DEFAULT_ALIAS)
    cache_settings = app_settings.CACHES[cache_alias]
    options = config.get("OPTIONS", {})
    kwargs: dict[str, Any] = {CACHE_OPTIONS[name]: value for name, value in options.items() if name in CACHE_OPTIONS}
    kwargs["ttl"] = config["TTL"] if "TTL" in config else cache_settings.get("TIMEOUT", 300)
    kwargs["alias"] = alias
    namespace = config.get("NAMESPACE", DEFAULT_NAMESPACE)
    try:
        return _cache_for(cache_alias, cache_settings, namespace, options, kwargs)
    except (ValueError, TypeError) as exc:  # a LOCATION or OPTIONS the client library rejects
        raise ImproperlyConfigured(
            f"LLM_CACHES[{alias!r}] cannot use CACHES[{cache_alias!r}]: {type(exc).__name__}: {exc}. "
            f"Fix that alias's LOCATION or OPTIONS (`manage.py check` names the problem)."
        ) from exc


def _cache_for(
    cache_alias: str,
    cache_settings: Mapping[str, Any],
    namespace: str,
    options: Mapping[str, Any],
    kwargs: dict[str, Any],
) -> LLMCache:
    backend = cache_settings.get("BACKEND", "")
    if backend in REDIS_PROTOCOL_BACKENDS | MEMCACHED_BACKENDS and "SERVER_TIMEOUT" in options:
        kwargs["server_timeout"] = options["SERVER_TIMEOUT"]
    if backend in REDIS_PROTOCOL_BACKENDS:
        kwargs.update({keyword: options[name] for name, keyword in REDIS_POOL_OPTIONS.items() if name in options})
    if backend in REDIS_PROTOCOL_BACKENDS and options.get("CLUSTER"):
        return _cluster_cache(cache_settings, namespace, kwargs)
    if backend in REDIS_PROTOCOL_BACKENDS:
        return _redis_cache(cache_alias, cache_settings, namespace, kwargs)
    if backend in MEMCACHED_BACKENDS:
        return _memcached_cache(cache_alias, cache_settings, namespace, kwargs)
    from llmcache_django.backends import DjangoLLMCache

    return DjangoLLMCache(cache_alias, namespace=namespace, **kwargs)


def _prefix(cache_settings: Mapping[str, Any], namespace: str) -> str:
    return key_prefix(
        namespace,
        prefix=cache_settings.get("KEY_PREFIX", ""),
        version=cache_settings.get("VERSION", 1),
        key_func=cache_settings.get("KEY_FUNCTION"),
    )


def _redis_cache(
    cache_alias: str, cache_settings: Mapping[str, Any], namespace: str, kwargs: dict[str, Any]
) -> LLMCache:
    from llmcache_django.backends import RedisLLMCache
    from llmcache_django.stores.redis_clients import is_async

    client = client_for(cache_alias, cache_settings["BACKEND"])
    kwargs["async_client" if is_async(client) else "client"] = client
    return RedisLLMCache(namespace=namespace, key_prefix=_prefix(cache_settings, namespace), **kwargs)


def _memcached_cache(
    cache_alias: str, cache_settings: Mapping[str, Any], namespace: str, kwargs: dict[str, Any]
) -> LLMCache:
    from pymemcache.client.hash import HashClient

    from llmcache_django.backends import MemcachedLLMCache
    from llmcache_django.stores.memcached_pool import POOL_DEFAULTS

    prefix = _prefix(cache_settings, namespace)
    if len(prefix) + 64 > MEMCACHED_MAX_KEY or any(char.isspace() or ord(char) < 33 for char in prefix):
        raise ImproperlyConfigured(
            f"CACHES[{cache_alias!r}] KEY_PREFIX/VERSION with NAMESPACE {namespace!r} give the key prefix "
            f"{prefix!r}, which cannot be part of a memcached key (at most {MEMCACHED_MAX_KEY - 64} "
            f"characters, no spaces or control characters); shorten or clean KEY_PREFIX."
        )
    django_cache = caches[cache_alias]
    # Our own client on the alias's servers and options, but raw bytes in and out: Django's
    # client unpickles what it reads, and nothing on our read path may unpickle.
    # A dead node is skipped after two retries and tried again after 10 s (the alias's OPTIONS win).
    client_options = {**POOL_DEFAULTS, **django_cache._options, "serde": None, "use_pooling": True}  # type: ignore[attr-defined]
    client_options.pop("serializer", None)
    client_options.pop("deserializer", None)
    client = HashClient(django_cache.client_servers, **client_options)  # type: ignore[attr-defined]
    return MemcachedLLMCache(client, namespace=namespace, key_prefix=prefix, **kwargs)


def _cluster_cache(cache_settings: Mapping[str, Any], namespace: str, kwargs: dict[str, Any]) -> LLMCache:
    from llmcache_django.backends import RedisLLMCache
    from llmcache_django.cluster_settings import cluster_client

    client = cluster_client(cache_settings, kwargs.get("server_timeout", DEFAULT_SERVER_TIMEOUT))
    prefix = _prefix(cache_settings, namespace)
    return RedisLLMCache(async_client=client, namespace=namespace, key_prefix=prefix, **kwargs)
