"""``llm_caches``: one LLM cache per ``LLM_CACHES`` alias, built lazily from ``CACHES``."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache

from llmcache_django.conf import DEFAULT_ALIAS, alias_settings, app_settings
from llmcache_django.core.cache import LLMCache

#: LLM_CACHES OPTIONS -> keyword arguments of LLMCache.
CACHE_OPTIONS = {
    "COMPRESS_MIN_BYTES": "compress_min_bytes",
    "MAX_ENTRY_BYTES": "max_entry_bytes",
    "STATS": "stats",
    "SINGLE_FLIGHT": "single_flight",
}


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
    settings = alias_settings(alias)
    options = settings.feature_options
    kwargs: dict[str, Any] = {CACHE_OPTIONS[name]: value for name, value in options.items() if name in CACHE_OPTIONS}
    try:
        return settings.spec.builder()(settings, ttl=settings.ttl, alias=alias, **kwargs)
    except (ValueError, TypeError) as exc:  # a LOCATION or OPTIONS the client library rejects
        raise ImproperlyConfigured(
            f"LLM_CACHES[{alias!r}] cannot use CACHES[{settings.cache_alias!r}]: {type(exc).__name__}: {exc}. "
            f"Fix that alias's LOCATION or OPTIONS (`manage.py check` names the problem)."
        ) from exc
