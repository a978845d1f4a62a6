"""LangGraph node caching on any ``LLM_CACHES`` alias (see :mod:`llmcache_django.integrations.langgraph`;
needs the ``[langgraph]`` extra)."""

from llmcache_django.integrations.langgraph import LangGraphCache

__all__ = ["LangGraphCache"]
