"""Where the demo keeps its LLM cache: Django's database cache, Redis or Memcached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

BACKENDS = ("database", "redis", "memcached")
DEFAULT_URLS = {
    "database": "llm_cache_table",
    "redis": "redis://127.0.0.1:6379/0",
    "memcached": "127.0.0.1:11211",
}
CACHE_BACKENDS = {
    "database": "django.core.cache.backends.db.DatabaseCache",
    "redis": "django_redis.cache.RedisCache",
    "memcached": "django.core.cache.backends.memcached.PyMemcacheCache",
}
TTL_SECONDS = 24 * 60 * 60

SettingsDict = dict[str, dict[str, Any]]


def backend_from_environ(environ: Mapping[str, str]) -> tuple[str, str]:
    """Read `LLMCACHE_DEMO_BACKEND` and its `..._URL` variable: (backend, location)."""
    backend = environ.get("LLMCACHE_DEMO_BACKEND", "").strip().lower() or "database"
    if backend not in BACKENDS:
        raise ImproperlyConfigured(f"LLMCACHE_DEMO_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}.")
    url = environ.get(f"LLMCACHE_DEMO_{backend.upper()}_URL", "").strip()
    return backend, url or DEFAULT_URLS[backend]


def llm_cache_settings(backend: str, url: str | None = None) -> tuple[SettingsDict, SettingsDict]:
    """Build `CACHES` and `LLM_CACHES` that store LLM answers on `backend` at `url`."""
    if backend not in BACKENDS:
        raise ImproperlyConfigured(f"Unknown demo backend {backend!r}: use one of {BACKENDS}.")
    caches: SettingsDict = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "llm": _llm_alias(backend, url or DEFAULT_URLS[backend]),
    }
    llm_caches: SettingsDict = {
        # SINGLE_FLIGHT: two tabs asking the same question at once make one model call.
        # SCOPE "user": each signed-in user has their own entries (LLMCacheMiddleware sets the
        # scope per request); anonymous asks share the unscoped cache.
        "default": {
            "CACHE": "llm",
            "TTL": TTL_SECONDS,
            "NAMESPACE": "llmcache-demo",
            "OPTIONS": {"SINGLE_FLIGHT": True, "SCOPE": "user"},
        },
    }
    return caches, llm_caches


def _llm_alias(backend: str, url: str) -> dict[str, Any]:
    alias: dict[str, Any] = {"BACKEND": CACHE_BACKENDS[backend], "LOCATION": _location(backend, url)}
    if backend == "database":
        alias["OPTIONS"] = {"MAX_ENTRIES": 10_000}
    return alias


def _location(backend: str, url: str) -> str:
    # Memcached wants host:port; accept memcached://host:port as people often write it.
    if backend == "memcached":
        return url.removeprefix("memcached://").rstrip("/")
    return url
