"""Entries on memcached through a pymemcache client."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT, LEASE_DONE, PROBE_NAME, Node, ServerProbe
from llmcache_django.stores.generational import GenerationalStore, T
from llmcache_django.stores.memcached_clients import raw_client_for
from llmcache_django.stores.metadump import dump_keys

#: memcached reads an expiry above 30 days as an absolute Unix time.
RELATIVE_EXPIRY_LIMIT = 30 * 24 * 3600
#: memcached reads exptime as a signed 32-bit number.
MAX_EXPTIME = 2**31 - 1
#: How long the server's clock offset, measured for absolute expiry times, is trusted.
CLOCK_CHECK_SECONDS = 600.0


class AllServersDownError(OSError):
    """Every server of a pymemcache ``HashClient`` is marked down."""


class NodeUnreachableError(OSError):
    """One memcached server of the alias could not be read."""


class MemcachedStore(GenerationalStore):
    """Stores entries with a pymemcache ``Client``, ``PooledClient``, ``HashClient`` or
    ``RetryingClient``.

    The store talks through a raw-bytes twin of the given client (same servers and
    settings, no serde: nothing read is ever unpickled), with ``server_timeout`` where the
    client sets no timeout. Async methods run the client in a worker thread; a client that
    is not thread-safe (a plain ``Client``) is used under a lock so threads and tasks never
    share a socket. TTLs over 30 days are sent as absolute times on the server's clock.
    """

    def __init__(self, client: Any, prefix: str, *, server_timeout: float | None = DEFAULT_SERVER_TIMEOUT) -> None:
        from pymemcache.exceptions import MemcacheUnexpectedCloseError

        super().__init__()
        self.given_client = client
        self.client = raw_client_for(client, server_timeout)
        self.prefix = prefix
        self.outage_errors = (*self.outage_errors, MemcacheUnexpectedCloseError, AllServersDownError)
        self.stale_errors = (*self.stale_errors, MemcacheUnexpectedCloseError)
        self._lock: AbstractContextManager[Any] = nullcontext() if _thread_safe(client) else threading.Lock()
        self._clock_offset = 0.0
        self._clock_checked = -math.inf

    def describe(self) -> str:
        return f"memcached {', '.join(server_names(self.client))} (prefix {self.prefix!r})"

    def key(self, name: str) -> str:
        return self.prefix + name

    def nodes(self, *, measure: bool = True) -> list[Node]:
        """Each server of a ``HashClient`` as the client sees it (one server is never measured)."""
        inner = _unwrap(self.client)
        if not hasattr(inner, "clients"):
            return []
        # A HashClient answers keys of a failed or dead node with a quiet miss.
        down = {_server_name(server) for server in (*inner._failed_clients, *inner._dead_clients)}
        names = [_server_name(node.server) for node in server_clients(inner)]
        return [Node(name, "server", up=name not in down, marked_down=name in down) for name in names]

    def probes(self) -> list[ServerProbe]:
        nodes = server_clients(self.client)
        # Plain clients (no pool) share one socket: the store's own get(), under its lock, is the probe.
        if not all(hasattr(node, "client_pool") for node in nodes):
            return super().probes()
        key = self.key(PROBE_NAME)
        return [(_server_name(node.server), self.retrying(_node_read(node, key))) for node in nodes]

    def _get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        with self._lock, _all_down_is_an_outage():
            return self.client.get_many(list(keys))  # type: ignore[no-any-return]

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        expire = expire_time(ttl, self._server_now() if ttl and ttl > RELATIVE_EXPIRY_LIMIT else 0.0)
        with self._lock, _all_down_is_an_outage():
            stored = self.client.set(key, value, expire=expire, noreply=False)
        if stored is False:
            raise OSError(f"memcached refused to store {len(value)} bytes under {key!r}")

    def _set_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        expire = expire_time(ttl, self._server_now() if ttl and ttl > RELATIVE_EXPIRY_LIMIT else 0.0)
        with self._lock, _all_down_is_an_outage():
            failed = self.client.set_many(dict(values), expire=expire, noreply=False)
        if failed:
            raise OSError(f"memcached refused to store {len(failed)} of {len(values)} values")

    def _nest(self, part: str) -> None:
        super()._nest(part)
        self.prefix += f"{part}:"

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
        nodes = server_clients(self.client)
        # A client's own key_prefix goes in front of ours on the server.
        prefix = _text(getattr(_unwrap(self.client), "key_prefix", b"")) + self.prefix
        for node in nodes:
            try:
                keys = list(dump_keys(node.server))
            except OSError as exc:  # say which node of a pool failed
                raise NodeUnreachableError(
                    f"memcached node {_server_name(node.server)}: {type(exc).__name__}: {exc}"
                ) from exc
            for key in keys:
                if key.startswith(prefix):
                    yield key[len(prefix) :]

    def _server_now(self) -> float:
        """The server's Unix time: memcached reads absolute expiry times on its own clock."""
        if time.monotonic() - self._clock_checked > CLOCK_CHECK_SECONDS:
            with self._lock:
                stats = server_clients(self.client)[0].stats()
            self._clock_offset = float(stats[b"time"]) - time.time()
            self._clock_checked = time.monotonic()
        return time.time() + self._clock_offset

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(function, *args)

    can_lease = True

    def end_lease(self, name: str, done_ttl: float | None) -> None:
        # Sent without asking for a reply (noreply): nothing waits on it, so ending a lease
        # costs the leader no round trip; the entry written before it is already stored.
        key = self.key(name)
        with self._lock, _all_down_is_an_outage():
            if done_ttl is None:
                self.client.delete(key, noreply=True)
            else:
                self.client.set(key, LEASE_DONE, expire=expire_time(done_ttl, 0.0), noreply=True)

    def _add_expiring(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock, _all_down_is_an_outage():
            return bool(self.client.add(key, value, expire=expire_time(ttl, 0.0), noreply=False))


def expire_time(ttl: float | None, server_now: float) -> int:
    """Translate a TTL in seconds into memcached's ``exptime`` (0 means never); TTLs over
    30 days become absolute times, from ``server_now`` (the server's Unix time)."""
    if ttl is None:
        return 0
    seconds = max(1, math.ceil(ttl))
    if seconds > RELATIVE_EXPIRY_LIMIT:
        return min(int(server_now) + seconds, MAX_EXPTIME)
    return seconds


def server_clients(client: Any) -> list[Any]:
    """The per-server clients behind a pymemcache client (one, or each of a HashClient's)."""
    inner = _unwrap(client)
    return list(inner.clients.values()) if hasattr(inner, "clients") else [inner]


def server_names(client: Any) -> list[str]:
    """List the ``host:port`` (or socket path) of every server a pymemcache client talks to."""
    inner = _unwrap(client)
    servers = [node.server for node in server_clients(client)] + list(getattr(inner, "_dead_clients", {}))
    return sorted({_server_name(server) for server in servers})


def _node_read(node: Any, key: str) -> Callable[[], Any]:
    return lambda: node.get(key)


def _server_name(server: Any) -> str:
    return f"{server[0]}:{server[1]}" if isinstance(server, tuple) else str(server)


@contextmanager
def _all_down_is_an_outage() -> Iterator[None]:
    from pymemcache.exceptions import MemcacheError

    try:
        yield
    except MemcacheError as exc:
        if type(exc) is MemcacheError and "down" in str(exc):  # HashClient: every node is marked down
            raise AllServersDownError(str(exc)) from exc
        raise


def _text(prefix: bytes | str) -> str:
    return prefix.decode() if isinstance(prefix, bytes) else prefix


def _unwrap(client: Any) -> Any:
    return getattr(client, "_client", client)  # RetryingClient wraps another client


def _thread_safe(client: Any) -> bool:
    from pymemcache.client.base import PooledClient
    from pymemcache.client.hash import HashClient

    inner = _unwrap(client)
    return isinstance(inner, PooledClient) or (isinstance(inner, HashClient) and inner.use_pooling)
