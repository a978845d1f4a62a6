"""Counts a process has not shared yet are added to the shared counters when it exits.

A cron job, a management command or a Celery task often makes a few calls and exits well
within the once-a-second flush; without this its counts would never reach the admin.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcache_django.core.cache import LLMCache

logger = logging.getLogger("llmcache_django")
_caches: weakref.WeakSet[LLMCache] = weakref.WeakSet()
_lock = threading.Lock()
_registered = False


def flush_at_exit(cache: LLMCache) -> None:
    """Flush ``cache``'s pending counts when the interpreter exits (it is held weakly)."""
    global _registered
    with _lock:
        _caches.add(cache)
        if not _registered:
            atexit.register(flush_all)
            _registered = True


def flush_all() -> None:
    """Flush every registered cache's pending counts; a failure is logged, never raised."""
    for cache in list(_caches):
        if cache.stats is None or not cache.stats.has_pending:
            continue
        try:
            cache.flush_stats()
        except Exception as exc:  # the server may be gone by now; exiting must not fail
            logger.info("LLM cache %r: counts not saved at exit: %s: %s", cache.alias, type(exc).__name__, exc)
