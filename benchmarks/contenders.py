"""The three contenders on each backend: ours, langchain-community's, and the bare client."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
from langchain_community import cache as upstream
from langchain_core.caches import BaseCache
from pymemcache.client.base import Client as MemcachedClient

from benchmarks.entries import Entry, Inspector, MemcachedInspector, RedisInspector
from benchmarks.fixtures import LLM_STRING, Payload, missing_prompt
from benchmarks.servers import HOST
from llmcache_django.backends import compat

Call = Callable[[], Any]
MISSING_KEY = b"llmcache:0000000000000000000000000000000000000000000000000000000000000000"


class CacheContender:
    """A LangChain BaseCache, called the way a model calls it."""

    def __init__(self, cache: BaseCache, is_async: bool) -> None:
        self.cache = cache
        self.is_async = is_async

    def hit(self, payload: Payload) -> Call:
        lookup = self.cache.alookup if self.is_async else self.cache.lookup
        return functools.partial(lookup, payload.prompt, LLM_STRING)

    def miss(self) -> Call:
        lookup = self.cache.alookup if self.is_async else self.cache.lookup
        return functools.partial(lookup, missing_prompt(), LLM_STRING)

    def update(self, payload: Payload) -> Call:
        update = self.cache.aupdate if self.is_async else self.cache.update
        return functools.partial(update, payload.prompt, LLM_STRING, payload.generations)


class RawContender:
    """The floor: the bare client GETting and SETting exactly the bytes our cache stores."""

    def __init__(self, client: Any, **set_options: Any) -> None:
        self.client = client
        self.set_options = set_options
        self.entries: dict[str, Entry] = {}

    def learn(self, payload: Payload, entry: Entry) -> None:
        self.entries[payload.prompt] = entry

    def hit(self, payload: Payload) -> Call:
        return functools.partial(self.client.get, self.entries[payload.prompt].key)

    def miss(self) -> Call:
        return functools.partial(self.client.get, MISSING_KEY)

    def update(self, payload: Payload) -> Call:
        entry = self.entries[payload.prompt]
        return functools.partial(self.client.set, entry.key, entry.value, **self.set_options)


@dataclass
class Backend:
    """One server type and client flavour with its contenders and key-space inspectors."""

    name: str
    is_async: bool
    ours: CacheContender
    upstream: CacheContender
    raw: RawContender
    ours_keys: Inspector
    upstream_keys: Inspector
    clients: dict[str, Any] = field(default_factory=dict)

    def contenders(self) -> dict[str, CacheContender | RawContender]:
        return {"ours": self.ours, "upstream": self.upstream, "raw": self.raw}

    def writers(self) -> list[tuple[CacheContender, Inspector]]:
        """Ours first, then upstream, each with the inspector of its key space."""
        return [(self.ours, self.ours_keys), (self.upstream, self.upstream_keys)]


def redis_sync(port: int, ours_db: int, upstream_db: int) -> Backend:
    """compat.RedisCache vs langchain_community RedisCache vs redis-py, each on its own DB."""
    return _redis_backend("Redis sync", redis.Redis, compat.RedisCache, upstream.RedisCache, port, ours_db, upstream_db)


def redis_async(port: int, ours_db: int, upstream_db: int) -> Backend:
    """compat.AsyncRedisCache vs AsyncRedisCache vs redis.asyncio; default clients."""
    return _redis_backend(
        "Redis async", aioredis.Redis, compat.AsyncRedisCache, upstream.AsyncRedisCache, port, ours_db, upstream_db
    )


def _redis_backend(
    label: str,
    client_class: Callable[..., Any],
    ours_class: Callable[[Any], BaseCache],
    upstream_class: Callable[[Any], BaseCache],
    port: int,
    ours_db: int,
    upstream_db: int,
) -> Backend:
    is_async = client_class is aioredis.Redis
    ours_client = client_class(host=HOST, port=port, db=ours_db)
    upstream_client = client_class(host=HOST, port=port, db=upstream_db)
    raw_client = client_class(host=HOST, port=port, db=ours_db)
    return Backend(
        label,
        is_async,
        CacheContender(ours_class(ours_client), is_async=is_async),
        CacheContender(upstream_class(upstream_client), is_async=is_async),
        RawContender(raw_client),
        RedisInspector(port, ours_db),
        RedisInspector(port, upstream_db),
        {"ours": ours_client, "upstream": upstream_client, "raw": raw_client},
    )


def memcached(port: int) -> Backend:
    """compat.MemcachedCache vs MemcachedCache vs pymemcache; one server, disjoint keys."""
    clients = [MemcachedClient((HOST, port)) for _ in range(3)]
    ours = compat.MemcachedCache(clients[0])
    # Our cache writes through its own raw-bytes copy of the client: watch that one.
    inspector = MemcachedInspector(port, watched=[ours.store.client, clients[1]])  # type: ignore[attr-defined]
    return Backend(
        "Memcached",
        False,
        CacheContender(ours, is_async=False),
        CacheContender(upstream.MemcachedCache(clients[1]), is_async=False),
        # Wait for memcached's reply, as our cache does: a confirmed write is the floor.
        RawContender(clients[2], noreply=False),
        inspector,
        inspector,
        dict(zip(("ours", "upstream", "raw"), clients, strict=True)),
    )


def memcached_pool(ports: list[int]) -> Backend:
    """The same on three servers: each cache on a pymemcache HashClient over all of them."""
    from pymemcache.client.hash import HashClient

    from benchmarks.entries import MemcachedPoolInspector

    servers = [(HOST, port) for port in ports]
    ours_cache = compat.MemcachedCache(HashClient(servers))
    upstream_client, raw = HashClient(servers), HashClient(servers)
    # Watch the per-server clients our cache and upstream's actually write through.
    watched = [*ours_cache.store.client.clients.values(), *upstream_client.clients.values()]  # type: ignore[attr-defined]
    inspector = MemcachedPoolInspector(ports, watched=watched)
    return Backend(
        "Memcached 3 nodes",
        False,
        CacheContender(ours_cache, is_async=False),
        CacheContender(upstream.MemcachedCache(upstream_client), is_async=False),
        RawContender(raw, noreply=False),
        inspector,
        inspector,
        {"ours": ours_cache.store.client, "upstream": upstream_client, "raw": raw},  # type: ignore[attr-defined]
    )
