"""Prometheus metrics for the LLM caches (see :mod:`llmcache_django.ops.metrics`; needs ``[prometheus]``)."""

from llmcache_django.ops.metrics import LLMCacheCollector, install, metrics_view

__all__ = ["LLMCacheCollector", "install", "metrics_view"]
