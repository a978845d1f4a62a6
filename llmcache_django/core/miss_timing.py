"""How long the model call after a miss took: timed per call, in a context variable.

LangChain looks an entry up, calls the model and updates the entry in one thread or one
asyncio task, so the start of a miss is kept in the caller's context: two calls that miss
the same entry at once (single-flight off) each time their own model call, where a
per-cache ``name -> start`` map let the second miss overwrite the first one's start and
left the last writer with no duration at all.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

#: The most misses one context remembers (a batch looks all its prompts up before calling
#: the model); past it the oldest is forgotten (its call most likely failed).
MAX_PENDING = 256

# An immutable-by-convention dict, replaced on each change: a context copied from this one
# (a thread pool's, a new task's) must not share it.
_started: ContextVar[dict[str, float] | None] = ContextVar("llmcache_django_miss_started", default=None)


def miss_started(name: str) -> None:
    """Note that this call missed entry ``name`` now (its model call follows)."""
    started = _started.get()
    if not started:
        _started.set({name: time.monotonic()})
        return
    fresh = {**started, name: time.monotonic()}
    if len(fresh) > MAX_PENDING:
        del fresh[next(iter(fresh))]
    _started.set(fresh)


def miss_duration(name: str) -> float | None:
    """Seconds since this call missed entry ``name`` (``None`` if it did not), forgetting the miss."""
    started = _started.get()
    if not started or name not in started:
        return None
    rest = dict(started)
    start = rest.pop(name)
    _started.set(rest or None)
    return time.monotonic() - start
