"""One async Redis client per event loop, released when its loop shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from llmcache_django.stores.redis_clients import pools_of

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # redis-py depends on async-timeout before 3.11.3
    from async_timeout import timeout


class Slots:
    """At most ``limit`` calls at once; a call beyond them waits up to ``timeout`` seconds for one.

    A semaphore in front of a plain pool rather than redis-py's blocking pool: the same
    bound, and ~20 % more throughput at 5,000 concurrent lookups (its condition variable is
    taken on every call, even when a connection is free).
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self._timeout = timeout

    async def __aenter__(self) -> None:
        if self._semaphore.locked():
            async with timeout(self._timeout):  # a timer, not a task as wait_for() makes before 3.12
                await self._semaphore.acquire()
        else:
            await self._semaphore.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._semaphore.release()


@dataclass
class LoopClient:
    """The client of one event loop, and the slots bounding its concurrent calls."""

    client: Any
    slots: Slots
    closer: AsyncGenerator[None, None]


class LoopClients:
    """Async clients made by ``factory``, one per running event loop.

    Async connections belong to the loop that opened them, so every loop gets its own client.
    Each is disconnected from inside its loop when the loop shuts down (``asyncio.run``,
    ``asyncio.Runner`` and asgiref's ``async_to_sync`` finalise async generators before closing
    the loop) and forgotten, so neither its connections nor the loop outlive the loop. Clients
    of loops closed some other way are dropped when the next loop arrives.
    """

    def __init__(self, factory: Callable[[], Any], limit: int, timeout: float) -> None:
        self._factory = factory
        self._limit = limit
        self._timeout = timeout
        self._clients: dict[asyncio.AbstractEventLoop, LoopClient] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self) -> LoopClient:
        """The client of the running event loop, made on first use."""
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        return found if found is not None else self._add(loop)

    def _add(self, loop: asyncio.AbstractEventLoop) -> LoopClient:
        with self._lock:
            for closed in [known for known in self._clients if known.is_closed()]:
                del self._clients[closed]
            client = self._factory()
            closer = _released_at_shutdown(client, lambda: self._forget(loop))
            # Started here, the generator is registered with the loop, which closes it at
            # shutdown_asyncgens(): its finally then runs inside the loop, before loop.close().
            with contextlib.suppress(StopIteration):
                closer.asend(None).send(None)
            entry = self._clients[loop] = LoopClient(client, Slots(self._limit, self._timeout), closer)
            return entry

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._clients.pop(loop, None)


async def _released_at_shutdown(client: Any, forget: Callable[[], None]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        forget()
        if hasattr(client, "nodes_manager"):  # a cluster client: closes every node's connections
            with contextlib.suppress(Exception):
                await client.aclose()
        for pool in [] if hasattr(client, "nodes_manager") else pools_of(client):
            # A failed disconnect must not disturb the loop's shutdown; the sockets close anyway.
            with contextlib.suppress(Exception):
                await pool.disconnect()  # type: ignore[misc]
