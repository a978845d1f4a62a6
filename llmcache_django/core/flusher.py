"""A daemon thread per process that shares pending counts once they are due.

Lookups flush their cache's counts when a flush is due, but a process that stops looking
up (an idle web worker, a worker between jobs) would keep its last counts to itself until
its next lookup. The thread is started by the first lookup of a process (never at import;
again in a child after ``fork``, where threads do not survive) and flushes only the caches
whose counts are due, through the same fail-open path as a lookup.
"""

from __future__ import annotations

import logging
import os
import threading

from llmcache_django.core import stats

logger = logging.getLogger("llmcache_django")
#: How often the thread looks for due counts (they are due :data:`~llmcache_django.core.stats.FLUSH_SECONDS`
#: after the last flush): an idle process's counts arrive at most this much later.
TICK_SECONDS = 1.0
_thread: threading.Thread | None = None
_stop = threading.Event()
_lock = threading.Lock()


def ensure_running() -> None:
    """Start this process's flusher thread if it is not running (cheap when it is)."""
    if _thread is None:
        _start()


def stop(timeout: float) -> None:
    """Stop the flusher thread, waiting up to ``timeout`` seconds for a flush in progress."""
    thread = _thread
    _stop.set()
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


def _start() -> None:
    global _thread
    with _lock:
        if _thread is not None or _stop.is_set():
            return
        _thread = threading.Thread(target=_run, args=(_stop,), name="llmcache-stats-flusher", daemon=True)
        _thread.start()


def _run(stopped: threading.Event) -> None:
    from llmcache_django.core.exit_flush import registered

    while not stopped.wait(TICK_SECONDS):
        due = [cache for cache in registered() if cache.stats is not None and _due(cache.stats)]
        for cache in due:
            try:
                cache.flush_stats_quietly()
            except Exception:  # a bug in one cache must not end the thread for every other one
                logger.exception("LLM cache %r: counts not shared by the flusher thread", cache.alias)
        if due:
            _close_database_connections()


def _due(counts: stats.Stats) -> bool:
    return counts.has_pending and counts.flush_due()


def _close_database_connections() -> None:
    # A database cache opened a connection in this thread: close it as the end of a request would.
    try:
        from django.conf import settings
        from django.db import close_old_connections

        if settings.configured:
            close_old_connections()
    except Exception as exc:  # the database gone: nothing to close
        logger.debug("LLM cache stats flusher: %s: %s", type(exc).__name__, exc)


def _forget_thread() -> None:
    # In a child after fork: the parent's thread does not exist here, and its lock may be held.
    global _thread, _stop, _lock
    _thread, _stop, _lock = None, threading.Event(), threading.Lock()


os.register_at_fork(after_in_child=_forget_thread)
