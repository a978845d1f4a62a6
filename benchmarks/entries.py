"""Find the entry a cache wrote and weigh it, by looking at the server directly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis
from pymemcache.client.base import Client as MemcachedClient

from benchmarks.servers import HOST


@dataclass(frozen=True)
class Entry:
    """One stored cache entry: its key, raw value and footprint on the server."""

    key: bytes
    value: bytes
    stored_bytes: int
    server_bytes: int | None


class Inspector(Protocol):
    """Read-only view of a key space, independent of any cache class."""

    def keys(self) -> set[bytes]: ...

    def entry(self, key: bytes) -> Entry: ...

    def recording(self) -> contextlib.AbstractContextManager[object]: ...


class RedisInspector:
    """Keys and entries of one Redis database."""

    def __init__(self, port: int, db: int) -> None:
        self.client = redis.Redis(host=HOST, port=port, db=db)

    def keys(self) -> set[bytes]:
        return set(self.client.scan_iter(count=1000))

    def recording(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    def entry(self, key: bytes) -> Entry:
        kind = self.client.type(key)
        usage = self.client.memory_usage(key)
        if kind == b"hash":
            fields = cast(dict[bytes, bytes], self.client.hgetall(key))
            value = b"".join(fields.values())
            stored = len(key) + sum(len(f) + len(v) for f, v in fields.items())
            return Entry(key, value, stored, usage)
        value = cast(bytes | None, self.client.get(key)) or b""
        return Entry(key, value, len(key) + len(value), usage)


class MemcachedInspector:
    """Keys the watched clients stored while recording, and their entries.

    memcached cannot list keys reliably (`lru_crawler metadump` lags behind recent
    writes), so the keys are caught on their way out of the client instead.
    """

    def __init__(self, port: int, watched: list[Any]) -> None:
        self.client = MemcachedClient((HOST, port))
        self.watched = watched
        self.stored: set[bytes] = set()

    def keys(self) -> set[bytes]:
        return set(self.stored)

    def entry(self, key: bytes) -> Entry:
        value = self.client.get(key) or b""
        return Entry(key, value, len(key) + len(value), None)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record every key the watched clients store (set, add, cas...) until exit."""
        for client in self.watched:
            client._store_cmd = self._recorder(client._store_cmd)
        try:
            yield
        finally:
            for client in self.watched:
                del client._store_cmd

    def _recorder(self, store_cmd: Any) -> Any:
        def record(name: bytes, values: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
            self.stored.update(k if isinstance(k, bytes) else k.encode() for k in values)
            return store_cmd(name, values, *args, **kwargs)

        return record


def largest_new_entry(inspector: Inspector, before: set[bytes]) -> Entry:
    """The largest key created since `before` (a namespace may add small bookkeeping keys)."""
    created = inspector.keys() - before
    if not created:
        raise RuntimeError("the cache wrote no new key; is the prompt already stored?")
    entries = [inspector.entry(key) for key in created]
    return max(entries, key=lambda entry: len(entry.value))


class MemcachedPoolInspector(MemcachedInspector):
    """:class:`MemcachedInspector` for several servers: each key is read from whichever holds it."""

    def __init__(self, ports: list[int], watched: list[Any]) -> None:
        super().__init__(ports[0], watched)
        self.nodes = [MemcachedClient((HOST, port)) for port in ports]

    def entry(self, key: bytes) -> Entry:
        value = next((found for node in self.nodes if (found := node.get(key)) is not None), b"")
        return Entry(key, value, len(key) + len(value), None)
