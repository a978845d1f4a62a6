"""Who leads a single-flight flight: the call that missed, known by what it is, not by its stack frames.

A miss is led by its *caller*: the ``cached()`` stream it was looked up for (a
:class:`StreamLead`), else its asyncio task, else its thread. A caller that leads a flight
never waits for another (a batch that looks all its prompts up before calling the model
cannot deadlock); a stream's flights are the stream's, so a pool thread that read a chunk of
it still waits for other prompts' answers. Between two chunks a stream is *parked*: its
waiters wait as long as it is read on, and go on without it once it has been parked for
:data:`PARKED_SECONDS` (its reader may be one of them — one thread interleaving two streams,
or pool threads all waiting while the stream's next read is queued behind them).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

#: How long a stream may stay parked before the callers waiting for its answer go on without it.
PARKED_SECONDS = 0.5


class StreamLead:
    """A ``cached()`` stream that may lead the flight of its miss, and since when it is parked."""

    __slots__ = ("parked_since",)

    def __init__(self) -> None:
        #: When the stream handed its last chunk to its reader (``None``: it is being read).
        self.parked_since: float | None = None

    def park(self) -> None:
        """The stream hands a chunk to its reader and waits to be read on."""
        self.parked_since = time.monotonic()

    def resume(self) -> None:
        """The stream is read on again."""
        self.parked_since = None

    def held_up(self) -> bool:
        """Whether the stream has been parked for :data:`PARKED_SECONDS` or more."""
        since = self.parked_since
        return since is not None and time.monotonic() - since >= PARKED_SECONDS

    @contextmanager
    def looking_up(self) -> Iterator[None]:
        """Within this block, a miss is led by this stream rather than by its thread or task."""
        token = _stream.set(self)
        try:
            yield
        finally:
            _stream.reset(token)


_stream: ContextVar[StreamLead | None] = ContextVar("llmcache_django_stream_lead", default=None)


def here(*, asynchronous: bool) -> Hashable:
    """The running task when ``asynchronous`` (and there is one), else the thread."""
    task = asyncio.current_task() if asynchronous else None
    return task if task is not None else threading.get_ident()


class Owner:
    """The caller of a lookup that missed: what leads a flight, and where it ran."""

    __slots__ = ("caller", "place", "stream", "task")

    def __init__(self, place: Hashable, task: asyncio.Task[Any] | None, stream: StreamLead | None) -> None:
        self.place = place
        self.task = task
        self.stream = stream
        #: What a flight's leader is counted under: its stream, else its task or thread.
        self.caller: Hashable = stream if stream is not None else place

    @classmethod
    def current(cls, *, asynchronous: bool) -> Owner:
        """The caller of the lookup running now."""
        place = here(asynchronous=asynchronous)
        task = place if isinstance(place, asyncio.Task) else None
        return cls(place, task, _stream.get())

    def alive(self) -> bool:
        """Whether the owning call may still update: ``False`` once its task is done."""
        return self.task is None or not self.task.done()

    def held_up(self) -> bool:
        """Whether this owner is a stream nobody has read on for a while (see :class:`StreamLead`)."""
        return self.stream is not None and self.stream.held_up()
