"""Drop-in replacements for langchain-community's cache classes (see :mod:`llmcache_django.backends.compat`)."""

from llmcache_django.backends.compat import AsyncRedisCache, MemcachedCache, RedisCache

__all__ = ["AsyncRedisCache", "MemcachedCache", "RedisCache"]
