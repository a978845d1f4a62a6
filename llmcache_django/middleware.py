"""The middleware that sets each request's cache scope and directives (see :mod:`llmcache_django.integrations.middleware`)."""

from llmcache_django.integrations.middleware import LLMCacheMiddleware

__all__ = ["LLMCacheMiddleware"]
