"""Counts a process has not shared yet reach the shared counters, whatever ends the process.

A cron job, a management command or a Celery task often makes a few calls and exits well
within the once-a-second flush; a web worker may sit idle after its last request; uvicorn
re-raises SIGTERM after its graceful shutdown with the default handler back in place, so
``atexit`` never runs. Every cache with stats is registered here (weakly) and its pending
counts are added to the shared counters:

- every :data:`~llmcache_django.core.stats.FLUSH_SECONDS` by a daemon thread
  (:mod:`llmcache_django.core.flusher`), so an idle process's last counts arrive;
- on SIGTERM (:mod:`llmcache_django.core.sigterm`), at ASGI lifespan shutdown
  (:mod:`llmcache_django.asgi`), and at interpreter exit (``atexit``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Protocol

from llmcache_django.core.stats import Stats

logger = logging.getLogger("llmcache_django")


class Flushable(Protocol):
    """What is flushed here: an LLM cache, or the entries of another kind beside one."""

    @property
    def alias(self) -> str: ...

    stats: Stats | None

    def flush_stats(self) -> None:
        """Add the pending counts to the shared counters now (raises on failure)."""

    def flush_stats_quietly(self) -> None:
        """:meth:`flush_stats`, failing open (logged and counted, the counts stay pending)."""


_caches: weakref.WeakSet[Flushable] = weakref.WeakSet()
_lock = threading.Lock()
_registered = False
#: How long the exit flush waits for the flusher thread's flush in progress to end.
FLUSHER_JOIN_SECONDS = 5.0


def flush_at_exit(cache: Flushable) -> None:
    """Flush ``cache``'s pending counts when the process ends (it is held weakly)."""
    global _registered
    with _lock:
        _caches.add(cache)
        if not _registered:
            atexit.register(_at_exit)
            _registered = True
    from llmcache_django.core import sigterm

    sigterm.install()  # a no-op off the main thread; apps.ready() installs it too


def registered() -> list[Flushable]:
    """The live caches whose counts are flushed here."""
    return list(_caches)


def flush_all() -> None:
    """Flush every registered cache's pending counts; a failure is logged, never raised."""
    for cache in list(_caches):
        if cache.stats is None or not cache.stats.has_pending:
            continue
        try:
            cache.flush_stats()
        except Exception as exc:  # the server may be gone by now; exiting must not fail
            logger.info("LLM cache %r: counts not saved at exit: %s: %s", cache.alias, type(exc).__name__, exc)


def finish_process() -> None:
    """The process is ending: flush every cache's counts and give up its single-flight leases."""
    from llmcache_django.core.single_flight import release_all_leases

    flush_all()
    release_all_leases()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for cache in list(_caches):
        if cache.stats is not None:
            cache.stats.forget_pending_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    from llmcache_django.core import flusher

    flusher.stop(FLUSHER_JOIN_SECONDS)  # counts it took must be added before the process goes
    flush_all()
