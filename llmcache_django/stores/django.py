"""Entries in any Django cache alias, through Django's cache API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import BaseCache as DjangoCache

from llmcache_django.stores.generational import GenerationalStore


class DjangoStore(GenerationalStore):
    """Stores entries through ``django.core.cache.caches[alias]`` (database, locmem, file, ...).

    The alias's ``KEY_PREFIX``, ``VERSION`` and ``KEY_FUNCTION`` apply, since Django makes
    the keys. Async methods run the sync ones the way Django's own cache does
    (``sync_to_async(thread_sensitive=True)``), which is safe for the database backend.
    """

    def __init__(self, cache: DjangoCache, namespace: str, alias: str = "") -> None:
        super().__init__()
        self.cache = cache
        self.namespace = namespace
        self.alias = alias

    def describe(self) -> str:
        return f"Django cache {self.alias!r} ({type(self.cache).__module__}.{type(self.cache).__name__})"

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def _get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return self.cache.get_many(list(keys))

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.cache.set(key, value, timeout=ttl)

    def _add(self, key: str, value: bytes) -> None:
        self.cache.add(key, int(value), timeout=None)

    def _incr(self, key: str) -> int | None:
        try:
            return self.cache.incr(key)
        except ValueError:  # Django's way of saying the key is missing
            return None

    def _delete(self, key: str) -> bool:
        return bool(self.cache.delete(key))

    async def aget(self, name: str) -> bytes | None:
        return await sync_to_async(self.get, thread_sensitive=True)(name)

    async def aset(self, name: str, value: bytes, ttl: float | None) -> None:
        await sync_to_async(self.set, thread_sensitive=True)(name, value, ttl)

    async def adelete(self, name: str) -> bool:
        return await sync_to_async(self.delete, thread_sensitive=True)(name)

    async def aclear(self) -> int | None:
        return await sync_to_async(self.clear, thread_sensitive=True)()
