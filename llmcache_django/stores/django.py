"""Entries in any Django cache alias but the database cache, through Django's cache API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import BaseCache as DjangoCache
from django.core.cache.backends.locmem import LocMemCache

from llmcache_django.stores.base import ServerProbe
from llmcache_django.stores.database import closing_probe
from llmcache_django.stores.generational import GenerationalStore, T


class ForeignValueError(ValueError):
    """A key of ours holds a value this app did not write."""


class DjangoStore(GenerationalStore):
    """Stores entries through ``django.core.cache.caches[alias]`` (locmem, file, third-party).

    The alias's ``KEY_PREFIX``, ``VERSION`` and ``KEY_FUNCTION`` apply, since Django makes
    the keys. Async methods run the sync ones the way Django's own cache does
    (``sync_to_async(thread_sensitive=True)``).
    """

    def __init__(self, cache: DjangoCache, namespace: str, alias: str = "", *, can_lease: bool = False) -> None:
        super().__init__()
        self.cache = cache
        self.namespace = namespace
        self.alias = alias
        #: Whether the backend's ``add`` is atomic (its registry spec says: locmem for one
        #: process, the memcached ones across processes), so single-flight may lease on it.
        self.can_lease = can_lease

    def probes(self) -> list[ServerProbe]:
        return closing_probe(self)

    def describe(self) -> str:
        return f"Django cache {self.alias!r} ({type(self.cache).__module__}.{type(self.cache).__name__})"

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def _nest(self, part: str) -> None:
        super()._nest(part)
        self.namespace = f"{self.namespace}:{part}"

    def _get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return self.cache.get_many(list(keys))

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.cache.set(key, value, timeout=ttl)

    def _set_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        self.cache.set_many(dict(values), timeout=ttl)

    def _add(self, key: str, value: bytes) -> bool:
        return bool(self.cache.add(key, int(value), timeout=None))

    def _incr(self, key: str, amount: int = 1) -> int | None:
        try:
            return self.cache.incr(key, amount)
        except ValueError:  # Django's way of saying the key is missing
            return None
        except TypeError as exc:  # a value that is not a number
            raise ForeignValueError(f"{key!r} does not hold a counter") from exc

    @property
    def can_list(self) -> bool:  # type: ignore[override]
        return isinstance(self.cache, LocMemCache)

    def _list_names(self) -> Iterator[str]:
        """Names under our namespace, read from locmem's dict."""
        prefix = self.cache.make_key(f"{self.namespace}:")
        if not isinstance(self.cache, LocMemCache):
            raise NotImplementedError(f"{self.describe()} cannot list its entries")
        with self.cache._lock:  # type: ignore[attr-defined]
            keys = list(self.cache._cache)  # type: ignore[attr-defined]
        return (key[len(prefix) :] for key in keys if key.startswith(prefix))

    def _delete(self, key: str) -> bool:
        return bool(self.cache.delete(key))

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        # As Django's own cache does: safe for the database backend's connections.
        return await sync_to_async(function, thread_sensitive=True)(*args)

    def _add_expiring(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(self.cache.add(key, value, timeout=ttl))
