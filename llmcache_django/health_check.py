"""django-health-check plugin for the LLM caches (see :mod:`llmcache_django.ops.health_check`; needs ``[health]``)."""

from llmcache_django.ops.health_check import LLMCacheCheck, llm_cache_checks

__all__ = ["LLMCacheCheck", "llm_cache_checks"]
