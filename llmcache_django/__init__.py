"""LangChain LLM caching as a first-class part of a Django project.

Public API::

    from llmcache_django import llm_caches          # llm_caches["default"] -> BaseCache
    from llmcache_django import RedisLLMCache, MemcachedLLMCache, DjangoLLMCache
    from llmcache_django.compat import RedisCache, AsyncRedisCache, MemcachedCache
    from llmcache_django import cached              # cached(model): streams cached too
    from llmcache_django import cached_embeddings   # cached_embeddings(embeddings): vectors cached
    from llmcache_django import CacheByteStore      # a LangChain ByteStore on an alias
    from llmcache_django import llm_cache_control   # per-call directives and scopes
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "CacheByteStore",
    "DjangoLLMCache",
    "LLMCache",
    "MemcachedLLMCache",
    "RedisLLMCache",
    "cached",
    "cached_embeddings",
    "llm_cache_control",
    "llm_caches",
]

if TYPE_CHECKING:
    from llmcache_django.backends.classes import DjangoLLMCache, MemcachedLLMCache, RedisLLMCache
    from llmcache_django.backends.handler import llm_caches
    from llmcache_django.core.cache import LLMCache
    from llmcache_django.core.control import llm_cache_control
    from llmcache_django.integrations.byte_store import CacheByteStore
    from llmcache_django.integrations.embeddings import cached_embeddings
    from llmcache_django.integrations.streaming import cached


def __getattr__(name: str) -> Any:
    # Imported on first use, so "llmcache_django" in INSTALLED_APPS imports nothing heavy
    # before Django's app registry is ready.
    if name in {"DjangoLLMCache", "MemcachedLLMCache", "RedisLLMCache"}:
        from llmcache_django.backends import classes

        return getattr(classes, name)
    if name == "LLMCache":
        from llmcache_django.core.cache import LLMCache

        return LLMCache
    if name == "llm_caches":
        from llmcache_django.backends.handler import llm_caches

        return llm_caches
    if name == "llm_cache_control":
        from llmcache_django.core.control import llm_cache_control

        return llm_cache_control
    if name == "cached":
        from llmcache_django.integrations.streaming import cached

        return cached
    if name == "cached_embeddings":
        from llmcache_django.integrations.embeddings import cached_embeddings

        return cached_embeddings
    if name == "CacheByteStore":
        from llmcache_django.integrations.byte_store import CacheByteStore

        return CacheByteStore
    raise AttributeError(f"module 'llmcache_django' has no attribute {name!r}")
