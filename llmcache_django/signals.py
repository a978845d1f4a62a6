"""Signals the LLM caches send (see :mod:`llmcache_django.core.signals`)."""

from llmcache_django.core.signals import llm_cache_cleared, llm_cache_hit, llm_cache_miss

__all__ = ["llm_cache_cleared", "llm_cache_hit", "llm_cache_miss"]
