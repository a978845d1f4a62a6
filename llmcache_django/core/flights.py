"""A flight: one miss being answered in this process, the callers waiting on it, and the value it ended with."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from llmcache_django.core.flight_owners import Owner

#: How often a caller waiting for a stream's answer checks that the stream is still read on.
STREAM_CHECK_SECONDS = 0.01


class Flight:
    """One miss being answered in this process: its waiters, and the value it ended with."""

    def __init__(self, name: str, owner: Owner, deadline: float, on_abandon: Callable[[Flight], None]) -> None:
        self.name = name
        self.owner = owner
        self.deadline = deadline
        #: Whether another process leads (this one polls the server for the entry).
        self.remote = False
        #: The server lease this process holds for the flight, if any.
        self.token: bytes | None = None
        self.value: bytes | None = None
        #: How many callers wait on the flight in this process (a test waits for them).
        self.waiters = 0
        #: Set (under the :class:`SingleFlight`'s lock) once the flight has been taken off the books.
        self.closed = False
        self.ended = threading.Event()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()
        self._on_abandon = on_abandon

    def abandon(self) -> None:
        """End the flight without a value (its leader is gone), if it still runs."""
        self._on_abandon(self)

    def end(self, value: bytes | None) -> bool:
        """End the flight with ``value`` (``None``: waiters call the model); whether it was running."""
        with self._lock:
            if self.ended.is_set():
                return False
            self.value = value
            self.ended.set()
            futures, self._futures = self._futures, []
        for loop, future in futures:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there any more
                loop.call_soon_threadsafe(_resolve, future)
        return True

    def remaining(self) -> float:
        """Seconds left before waiters stop waiting."""
        return max(0.0, self.deadline - time.monotonic())

    def wait(self) -> bytes | None:
        """Block until the flight ends, the bound passes or its leading stream is held up; its value, or ``None``."""
        with self._lock:
            self.waiters += 1
        try:
            while not self.ended.wait(self._slice()):
                if self.remaining() <= 0 or self.owner.held_up():
                    break
        finally:
            with self._lock:
                self.waiters -= 1
        return self.value

    def _slice(self) -> float:
        """How long to wait before looking again: a stream's leader is checked on every so often."""
        return min(STREAM_CHECK_SECONDS, self.remaining()) if self.owner.stream is not None else self.remaining()

    async def await_end(self) -> bytes | None:
        """Async :meth:`wait`, woken from any thread or event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.ended.is_set():
                return self.value
            self._futures.append((loop, future))
            self.waiters += 1
        try:
            while not future.done() and self.remaining() > 0 and not self.owner.held_up():
                await asyncio.wait([future], timeout=self._slice())
        finally:
            with self._lock:
                self.waiters -= 1
        return self.value


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
