"""Entries on several memcached servers (a pymemcache ``HashClient``) that may lose one.

Each server keeps its own copy of the namespace's generation, under a key chosen to land on
that server, and an entry is tagged with the generation of the server it lives on: a lookup
still reads the counter and the entry in one round trip to one server, and losing a server
loses its entries only. ``clear()`` writes one new generation (a time-based number larger
than any before) to every server it reaches and says which it could not. A server that
missed a clear comes back with an older generation than the others; every process compares
what it reads with the newest generation it has seen on any server (re-read from all live
servers at most every :data:`GENERATION_CHECK_SECONDS`), so that server's old entries read
as misses, and the first process to notice brings its counter forward.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from llmcache_django.stores.base import Node, PartialClearError, is_entry_name
from llmcache_django.stores.generational import _as_bytes
from llmcache_django.stores.memcached import (
    AllServersDownError,
    MemcachedStore,
    _server_name,
    _text,
    _unwrap,
    server_clients,
)
from llmcache_django.stores.metadump import dump_keys

#: How often (seconds) a process re-reads every server's generation to learn of a clear.
GENERATION_CHECK_SECONDS = 1.0
#: pymemcache ``HashClient`` dead-node handling for the clients built from a ``CACHES`` alias
#: (its ``OPTIONS`` override them): after a failure a server's keys miss at once for
#: ``retry_timeout`` s, two retries, then it is dead (its keys go to the other servers) and is
#: tried again after ``dead_timeout`` s (pymemcache checks every ``dead_timeout`` s, so 10-20 s).
#: Two retries, not one: a restarted server's first answer is often a dropped pooled
#: connection. ``ignore_exc=False``: the first failure is counted and logged.
POOL_DEFAULTS = {"retry_attempts": 2, "retry_timeout": 1, "dead_timeout": 10, "ignore_exc": False}


#: What becomes of the entries on a server a clear could not reach.
UNREACHED_NOTE = (
    "the entries there were not deleted. They are not served when the server is back "
    "(its generation is older than the clear), and go as they expire or are evicted"
)


class MemcachedPoolStore(MemcachedStore):
    """A :class:`MemcachedStore` over a ``HashClient`` of several servers.

    One server failing is a miss (or a skipped write) for the keys it holds and a counted
    error, never an outage of the whole pool: the client marks it failed, then dead, and
    sends its keys to the other servers until it is back.
    """

    def __init__(self, client: Any, prefix: str, **kwargs: Any) -> None:
        super().__init__(client, prefix, **kwargs)
        self.hash_client = _unwrap(self.client)
        self._generation_keys = _generation_keys(self.hash_client, self.generation_key)
        self._newest = 0
        self._newest_checked = -float("inf")
        #: Servers the last listing could not read, with the reason (shown by the admin).
        self.unlisted_nodes: dict[str, str] = {}

    def _nest(self, part: str) -> None:
        super()._nest(part)
        self._generation_keys = _generation_keys(self.hash_client, self.generation_key)
        self._newest = 0
        self._newest_checked = -float("inf")
        self.unlisted_nodes = {}

    def is_outage(self, exc: BaseException) -> bool:
        if isinstance(exc, AllServersDownError):
            return True
        return isinstance(exc, self.outage_errors) and len(self.unreachable_nodes()) >= len(self._generation_keys)

    def generation_key_of(self, key: str) -> str:
        node = self.hash_client.hasher.get_node(key)
        return self._generation_keys.get(node, self.generation_key)

    def _checked_generation(self, generation_key: str, stored: bytes | str | None) -> bytes | None:
        checked = super()._checked_generation(generation_key, stored)
        if checked is None:
            return None
        generation = int(checked)
        newest = self._newest_generation(generation)
        if generation >= newest:
            return _as_bytes(generation)
        # This server missed a clear while it was away: its entries are from before it.
        with contextlib.suppress(Exception):  # if it fails, the next process to read it tries again
            self._set(generation_key, str(newest).encode(), None)
        return str(newest).encode()

    def _first_generation(self) -> bytes:
        # A server that lost its counter (restarted, evicted) joins the others' generation:
        # its entries are gone anyway, and the rest keep theirs.
        return str(self._newest_generation(0) or time.time_ns()).encode()

    def _newest_generation(self, seen: int) -> int:
        if time.monotonic() - self._newest_checked > GENERATION_CHECK_SECONDS:
            self._newest_checked = time.monotonic()
            self._newest = max(self._newest, *self._live_generations())
        self._newest = max(self._newest, seen)
        return self._newest

    def _live_generations(self) -> list[int]:
        """Every reachable server's generation, through the client (which skips the dead)."""
        found = [0]
        for generation_key in self._generation_keys.values():
            try:
                with self._lock:
                    found.append(_as_number(self.client.get(generation_key)) or 0)
            except Exception:  # a failing server: the client now marks it, and we learn nothing
                continue
        return found

    def clear(self) -> int | None:
        generation = str(max(time.time_ns(), self._newest_generation(0) + 1)).encode()
        unreachable: dict[str, str] = {}
        for node in server_clients(self.client):
            name = _server_name(node.server)
            try:
                self._on_node(node, "set", self._generation_keys[name], generation, expire=0, noreply=False)
            except Exception as exc:
                unreachable[name] = _error_text(exc)
        self._generations.clear()
        self._newest = max(self._newest, int(generation))
        removed = 0
        for name in [name for name in self._list_names() if is_entry_name(name)]:
            removed += self._delete(self.key(name))
        for name, reason in self.unlisted_nodes.items():
            unreachable.setdefault(name, reason)
        if unreachable:
            cleared = [name for name in self.node_names() if name not in unreachable]
            raise PartialClearError(removed, cleared, unreachable, note=UNREACHED_NOTE)
        return removed

    def node_names(self) -> list[str]:
        """Every server of the pool, up or down."""
        return [_server_name(node.server) for node in server_clients(self.client)]

    def _list_names(self) -> Iterator[str]:
        """Entry names on every server that answers; the others go to :attr:`unlisted_nodes`."""
        self.unlisted_nodes = {}
        prefix = _text(getattr(self.hash_client, "key_prefix", b"")) + self.prefix
        for node in server_clients(self.client):
            try:
                keys = list(dump_keys(node.server, timeout=self._dump_timeout()))
            except OSError as exc:
                self.unlisted_nodes[_server_name(node.server)] = _error_text(exc)
                continue
            for key in keys:
                if key.startswith(prefix):
                    yield key[len(prefix) :]

    def nodes(self, *, measure: bool = True) -> list[Node]:
        """Each server: up or down, our entries, all its items and bytes (``measure``: asked)."""
        seen = super().nodes()
        if not measure:
            return seen
        by_name = {_server_name(node.server): node for node in server_clients(self.client)}
        return [self._measured(by_name[node.name], node.marked_down) for node in seen]

    def _measured(self, node: Any, marked_down: bool) -> Node:
        name = _server_name(node.server)
        prefix = _text(getattr(self.hash_client, "key_prefix", b"")) + self.prefix
        try:
            stats = self._on_node(node, "stats")
            keys = dump_keys(node.server, timeout=self._dump_timeout())
            entries = sum(1 for key in keys if key.startswith(prefix) and is_entry_name(key[len(prefix) :]))
        except Exception as exc:
            error = f"memcached node {name}: {_error_text(exc)}"
            return Node(name, "server", up=False, error=error, marked_down=marked_down)
        items, used = int(stats[b"curr_items"]), int(stats[b"bytes"])
        return Node(name, "server", entries=entries, keys=items, bytes_used=used, marked_down=marked_down)

    def _on_node(self, node: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        """``node.<command>(...)`` on one server's own client, bypassing the pool's routing."""
        for attempt in (1, 2):
            try:
                with self._lock:
                    return getattr(node, command)(*args, **kwargs)
            except Exception as exc:  # a pooled connection the server dropped: once more on a fresh one
                if attempt == 2 or not self.is_stale_connection(exc):
                    raise
        raise AssertionError("unreachable")

    def _dump_timeout(self) -> float:
        return float(getattr(self.hash_client, "default_kwargs", {}).get("timeout") or 10.0)


def is_pool(client: Any) -> bool:
    """Whether ``client`` is a pymemcache ``HashClient`` over more than one server."""
    from pymemcache.client.hash import HashClient

    inner = _unwrap(client)
    return isinstance(inner, HashClient) and len(inner.clients) > 1


def _generation_keys(hash_client: Any, base: str) -> dict[str, str]:
    """``server -> generation key`` where each key lands on its server (over every server,
    so it stays there while others are down)."""
    hasher = type(hash_client.hasher)()
    nodes = [_server_name(node.server) for node in hash_client.clients.values()]
    for node in nodes:
        hasher.add_node(node)
    keys: dict[str, str] = {}
    suffix = 0
    while len(keys) < len(nodes):
        key = f"{base}:{suffix}"
        keys.setdefault(hasher.get_node(key), key)
        suffix += 1
    return keys


def _as_number(stored: bytes | str | int | None) -> int | None:
    if stored is None:
        return None
    try:
        return int(stored)
    except (TypeError, ValueError):
        return None  # not a counter of ours: the server's entries read as misses until a clear


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
