"""The public names of ../shared/DESIGN.md and the README stay importable where they were."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = [
    (
        "llmcache_django",
        [
            "llm_caches",
            "RedisLLMCache",
            "MemcachedLLMCache",
            "DjangoLLMCache",
            "cached",
            "LLMCache",
            "llm_cache_control",
        ],
    ),
    ("llmcache_django.middleware", ["LLMCacheMiddleware"]),
    ("llmcache_django.compat", ["RedisCache", "AsyncRedisCache", "MemcachedCache"]),
    ("llmcache_django.signals", ["llm_cache_hit", "llm_cache_miss", "llm_cache_cleared"]),
    ("llmcache_django.metrics", ["metrics_view", "LLMCacheCollector", "install"]),
    ("llmcache_django.health", ["probe", "Status", "Health"]),
    ("llmcache_django.health_check", ["llm_cache_checks", "LLMCacheCheck"]),
]


@pytest.mark.parametrize(("module", "names"), PUBLIC, ids=[module for module, _ in PUBLIC])
def test_public_names_import_from_their_documented_module(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    assert all(getattr(loaded, name) is not None for name in names)


def test_the_public_modules_are_the_layered_ones_not_copies() -> None:
    from llmcache_django import compat, health, signals
    from llmcache_django.backends import compat as backends_compat
    from llmcache_django.core import signals as core_signals
    from llmcache_django.ops import health as ops_health

    assert compat.RedisCache is backends_compat.RedisCache
    assert signals.llm_cache_hit is core_signals.llm_cache_hit  # a receiver connected either way hears it
    assert health.probe is ops_health.probe
