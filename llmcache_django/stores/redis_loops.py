"""One async Redis client per event loop, released when its loop shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from llmcache_django.stores.redis_clients import pools_of


@dataclass
class LoopClient:
    """The client of one event loop, and the slots bounding its concurrent calls (if needed)."""

    client: Any
    slots: asyncio.Semaphore | contextlib.nullcontext[None]
    closer: AsyncGenerator[None, None]


class LoopClients:
    """Async clients made by ``factory``, one per running event loop.

    Async connections belong to the loop that opened them, so every loop gets its own client.
    Each is disconnected from inside its loop when the loop shuts down (``asyncio.run``,
    ``asyncio.Runner`` and asgiref's ``async_to_sync`` finalise async generators before closing
    the loop) and forgotten, so neither its connections nor the loop outlive the loop. Clients
    of loops closed some other way are dropped when the next loop arrives.
    """

    def __init__(self, factory: Callable[[], Any], slots: Callable[[Any], int | None]) -> None:
        self._factory = factory
        self._slots = slots
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
            limit = self._slots(client)
            closer = _released_at_shutdown(client, lambda: self._forget(loop))
            # Started here, the generator is registered with the loop, which closes it at
            # shutdown_asyncgens(): its finally then runs inside the loop, before loop.close().
            with contextlib.suppress(StopIteration):
                closer.asend(None).send(None)
            slots = asyncio.Semaphore(limit) if limit is not None else contextlib.nullcontext()
            entry = self._clients[loop] = LoopClient(client, slots, closer)
            return entry

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._clients.pop(loop, None)


async def _released_at_shutdown(client: Any, forget: Callable[[], None]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        forget()
        for pool in pools_of(client):
            # A failed disconnect must not disturb the loop's shutdown; the sockets close anyway.
            with contextlib.suppress(Exception):
                await pool.disconnect()  # type: ignore[misc]
