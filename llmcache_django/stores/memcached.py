"""Entries on memcached through a pymemcache client."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from llmcache_django.stores.generational import GenerationalStore, T
from llmcache_django.stores.metadump import dump_keys

#: memcached reads an expiry above 30 days as an absolute Unix time.
RELATIVE_EXPIRY_LIMIT = 30 * 24 * 3600
#: Default item limit (1 MiB) less room for the key and item header.
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 1024


class MemcachedStore(GenerationalStore):
    """Stores entries with a pymemcache ``Client``, ``PooledClient``, ``HashClient`` or
    ``RetryingClient``.

    Async methods run the client in a worker thread; a client that is not thread-safe
    (a plain ``Client``) is used under a lock so threads and tasks never share a socket.
    """

    max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES

    def __init__(self, client: Any, prefix: str, max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES) -> None:
        super().__init__()
        self.client = client
        self.prefix = prefix
        self.max_value_bytes = max_value_bytes
        self._lock: AbstractContextManager[Any] = nullcontext() if _thread_safe(client) else threading.Lock()

    def describe(self) -> str:
        return f"memcached {', '.join(server_names(self.client))} (prefix {self.prefix!r})"

    def key(self, name: str) -> str:
        return self.prefix + name

    def _get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            return self.client.get_many(list(keys))  # type: ignore[no-any-return]

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._lock:
            stored = self.client.set(key, value, expire=expire_time(ttl), noreply=False)
        if stored is False:
            raise OSError(f"memcached refused to store {len(value)} bytes under {key!r}")

    def _add(self, key: str, value: bytes) -> bool:
        with self._lock:
            return bool(self.client.add(key, value, expire=0, noreply=False))

    def _incr(self, key: str, amount: int = 1) -> int | None:
        with self._lock:
            return self.client.incr(key, amount, noreply=False)  # type: ignore[no-any-return]

    def _delete(self, key: str) -> bool:
        with self._lock:
            return bool(self.client.delete(key, noreply=False))

    can_list = True

    def _list_names(self) -> Iterator[str]:
        """Names under our prefix on every server, from ``lru_crawler metadump all``."""
        for node in server_clients(self.client):
            for key in dump_keys(node.server):
                if key.startswith(self.prefix):
                    yield key[len(self.prefix) :]

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(function, *args)


def expire_time(ttl: float | None) -> int:
    """Translate a TTL in seconds into memcached's ``exptime`` (0 means never)."""
    if ttl is None:
        return 0
    seconds = max(1, math.ceil(ttl))
    if seconds > RELATIVE_EXPIRY_LIMIT:
        return int(time.time()) + seconds
    return seconds


def server_clients(client: Any) -> list[Any]:
    """The per-server clients behind a pymemcache client (one, or each of a HashClient's)."""
    inner = _unwrap(client)
    return list(inner.clients.values()) if hasattr(inner, "clients") else [inner]


def server_names(client: Any) -> list[str]:
    """List the ``host:port`` (or socket path) of every server a pymemcache client talks to."""
    servers = (node.server for node in server_clients(client))
    return sorted(f"{server[0]}:{server[1]}" if isinstance(server, tuple) else str(server) for server in servers)


def _unwrap(client: Any) -> Any:
    return getattr(client, "_client", client)  # RetryingClient wraps another client


def _thread_safe(client: Any) -> bool:
    from pymemcache.client.base import PooledClient
    from pymemcache.client.hash import HashClient

    inner = _unwrap(client)
    return isinstance(inner, PooledClient) or (isinstance(inner, HashClient) and inner.use_pooling)
