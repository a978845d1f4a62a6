"""Who leads a single-flight flight: the call that missed, known by what it is, not by its stack frames.

A miss is led by its *caller*: the ``cached()`` stream it was looked up for (a
:class:`StreamLead`), else its asyncio task, else its thread. A caller that leads a flight
never waits for another (a batch that looks all its prompts up before calling the model
cannot deadlock). A stream leads only while it is read: between two chunks it is *parked*
where it was last read, and only a lookup made there — which may be the one that has to
read it on — does not wait for it; a pool thread that read a chunk of it still waits for
other prompts' answers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any


class StreamLead:
    """A ``cached()`` stream that may lead the flight of its miss, and where it is parked."""

    __slots__ = ("parked_at",)

    def __init__(self) -> None:
        #: The thread (or task) the stream was last read on while it waits for the next read.
        self.parked_at: Hashable | None = None

    def park(self, *, asynchronous: bool = False) -> None:
        """The stream hands a chunk to its reader and waits to be read on."""
        self.parked_at = here(asynchronous=asynchronous)

    def resume(self) -> None:
        """The stream is read on again."""
        self.parked_at = None

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

    def parked_at(self, place: Hashable) -> bool:
        """Whether this owner is a stream parked at ``place`` (waiting there for it could deadlock)."""
        return self.stream is not None and self.stream.parked_at == place
