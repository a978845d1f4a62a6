"""Entries in any Django cache alias, through Django's cache API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import BaseCache as DjangoCache
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections, router

from llmcache_django.stores.generational import GenerationalStore, T


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

    def _add(self, key: str, value: bytes) -> bool:
        return bool(self.cache.add(key, int(value), timeout=None))

    def _incr(self, key: str, amount: int = 1) -> int | None:
        try:
            return self.cache.incr(key, amount)
        except ValueError:  # Django's way of saying the key is missing
            return None

    @property
    def can_list(self) -> bool:  # type: ignore[override]
        return isinstance(self.cache, (DatabaseCache, LocMemCache))

    def _list_names(self) -> Iterator[str]:
        """Names under our namespace, read from the database table or locmem's dict."""
        prefix = self.cache.make_key(f"{self.namespace}:")
        if isinstance(self.cache, LocMemCache):
            with self.cache._lock:  # type: ignore[attr-defined]
                keys = list(self.cache._cache)  # type: ignore[attr-defined]
        elif isinstance(self.cache, DatabaseCache):
            keys = _database_keys(self.cache, prefix)
        else:
            raise NotImplementedError(f"{self.describe()} cannot list its entries")
        return (key[len(prefix) :] for key in keys if key.startswith(prefix))

    def _delete(self, key: str) -> bool:
        return bool(self.cache.delete(key))

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        # As Django's own cache does: safe for the database backend's connections.
        return await sync_to_async(function, thread_sensitive=True)(*args)


def _database_keys(cache: DatabaseCache, prefix: str) -> list[str]:
    database = router.db_for_read(cache.cache_model_class)
    connection = connections[database]
    table = connection.ops.quote_name(cache._table)  # type: ignore[attr-defined]
    # "!" as the LIKE escape character: portable, unlike a backslash (MySQL).
    pattern = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cache_key FROM {table} WHERE cache_key LIKE %s ESCAPE '!'", [pattern])
        return [row[0] for row in cursor.fetchall()]
