"""What LangGraph node caching and embeddings caching share: entries of another kind beside
an LLM cache's, on the same servers, under the same fail-open policy."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from llmcache_django.conf import DEFAULT_ALIAS
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.exit_flush import flush_at_exit
from llmcache_django.core.failopen import ErrorReporter
from llmcache_django.core.stats import COUNTERS, Stats, summarize
from llmcache_django.stores.base import ServerPausedError, Store

T = TypeVar("T")


def llm_cache_for(alias: str | None, cache: LLMCache | None) -> LLMCache:
    """``cache`` if given, else ``llm_caches[alias]`` (``"default"`` when neither is given)."""
    if cache is not None:
        if alias is not None:
            raise TypeError("give alias= or cache=, not both")
        return cache
    from llmcache_django.backends.handler import llm_caches

    return llm_caches[alias or DEFAULT_ALIAS]


class SideCacheBinding:
    """The :class:`SideCache` of one ``kind`` that an object built with ``alias=`` or ``cache=`` uses.

    Built with ``cache=``, always that cache's. Built with an alias (or neither), it follows
    ``llm_caches[alias]``: once the handler has been reset (``LLM_CACHES`` or ``CACHES``
    changed, e.g. ``override_settings``), the next call gets a side cache on the alias's new
    LLM cache. A call costs a dict lookup and an identity check.
    """

    def __init__(self, kind: str, alias: str | None, cache: LLMCache | None) -> None:
        llm_cache = llm_cache_for(alias, cache)
        self.kind = kind
        #: The ``LLM_CACHES`` alias followed, or ``None`` for a given cache.
        self.alias = None if cache is not None else alias or DEFAULT_ALIAS
        self._side = SideCache(kind, llm_cache)

    def __call__(self) -> SideCache:
        """The side cache on the alias's current LLM cache (or on the given cache)."""
        side = self._side
        if self.alias is not None:
            from llmcache_django.backends.handler import llm_caches

            llm_cache = llm_caches[self.alias]
            if llm_cache is not side.llm_cache:
                side = self._side = SideCache(self.kind, llm_cache)
        return side


class SideCache:
    """Entries of one ``kind`` (``"langgraph"``, ``"embeddings"``) beside an LLM cache's.

    They live in the sub-namespace ``kind`` of the LLM cache's store (so neither kind's
    ``clear()`` touches the other's entries), keep their own shared counters there, and fail
    open as the LLM cache does: a server error is logged once per burst, counted, and a miss
    or a skipped write; after an outage the server is left alone for the LLM cache's backoff.
    """

    def __init__(self, kind: str, llm_cache: LLMCache) -> None:
        self.kind = kind
        self.llm_cache = llm_cache
        self.store: Store = llm_cache.store.sub_store(kind)
        #: Seconds an entry lives when the caller gives no TTL: the alias's TTL.
        self.ttl = llm_cache.ttl
        self.stats: Stats | None = Stats() if llm_cache.stats is not None else None
        if self.stats is not None:
            flush_at_exit(self)
        self.errors = ErrorReporter(self.alias)

    @property
    def caches_nothing(self) -> bool:
        """Whether the alias's TTL is 0: "do not cache", as Django's ``TIMEOUT`` 0 means."""
        return self.ttl is not None and self.ttl <= 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.store.describe()}>"

    def attempt(self, operation: str, function: Callable[..., T], *args: Any) -> T | None:
        """``function(*args)``, or ``None`` when the server is left alone or the call fails
        (logged and counted); a pooled connection the server dropped is retried once."""
        if self._server_down():
            return None
        try:
            try:
                return function(*args)
            except Exception as exc:
                if not self.store.is_stale_connection(exc):
                    raise
            return function(*args)
        except Exception as exc:
            self.failed(operation, exc)
            return None

    async def aattempt(self, operation: str, function: Callable[..., Awaitable[T]], *args: Any) -> T | None:
        """Async :meth:`attempt`."""
        if self._server_down():
            return None
        try:
            try:
                return await function(*args)
            except Exception as exc:
                if not self.store.is_stale_connection(exc):
                    raise
            return await function(*args)
        except Exception as exc:
            self.failed(operation, exc)
            return None

    def write(self, function: Callable[..., object], *args: Any) -> bool:
        """:meth:`attempt` a write; whether it went through."""
        return self.attempt("update", _done, function, *args) is True

    async def awrite(self, function: Callable[..., Awaitable[object]], *args: Any) -> bool:
        """Async :meth:`write`."""
        return await self.aattempt("update", _adone, function, *args) is True

    def count(self, counter: str, amount: int = 1) -> None:
        """Add ``amount`` to this process's counter (flushed to the shared ones when due)."""
        if self.stats is not None and amount:
            self.stats.add(counter, amount)

    @property
    def alias(self) -> str:
        """The ``LLM_CACHES`` alias (or the LLM cache's class) these entries belong to."""
        return f"{self.llm_cache.alias or type(self.llm_cache).__name__} ({self.kind})"

    def flush_stats(self) -> None:
        """Add this process's pending counts to the shared counters now (raises on failure)."""
        if self.stats is not None:
            pending = self.stats.take_pending()
            if pending:
                self.store.add_counters(pending)

    def flush_stats_quietly(self) -> None:
        """:meth:`flush_stats`, failing open (the flusher thread's flush): an error is logged
        and counted; while the server is left alone the counts stay pending."""
        if self.stats is not None and not self._paused():
            pending = self.stats.take_pending()
            if pending:
                self.attempt("saving stats", self.store.add_counters, pending)

    def flush_due_stats(self) -> None:
        """:meth:`flush_stats` when due, fail-open (on the lookup path)."""
        if self.stats is not None and self.stats.flush_due():
            self.flush_stats_quietly()

    async def aflush_due_stats(self) -> None:
        """Async :meth:`flush_due_stats`."""
        if self.stats is not None and self.stats.flush_due() and not self._paused():
            pending = self.stats.take_pending()
            if pending:
                await self.aattempt("saving stats", self.store.aadd_counters, pending)

    def failed(self, operation: str, exc: BaseException) -> None:
        """Log and count a failed call; an unreachable server pauses this kind and the LLM cache."""
        if isinstance(exc, ServerPausedError):
            self.count("skipped")
            return
        if self.store.is_outage(exc):
            until = time.monotonic() + self.llm_cache.outage_backoff
            self.store.paused_until = self.llm_cache.store.paused_until = until
        self.count("errors")
        self.errors.report(operation, exc)

    def clear(self, *, dry_run: bool = False) -> int | None:
        """Remove every entry of this kind (``dry_run``: count them), and nothing else; how many
        (``None`` where unknown). Raises when the server cannot be reached."""
        if dry_run:
            return sum(1 for _entry in self.store.iter_values()) if self.store.can_list else None
        count = self.store.clear()
        self.store.paused_until = 0.0
        return count

    def delete_where(self, selected: Callable[[bytes], bool], *, dry_run: bool = False) -> int:
        """Remove the entries whose stored value is ``selected`` (``dry_run``: count them)."""
        if not self.store.can_list:
            raise NotImplementedError(
                f"{self.store.describe()} cannot list its entries, so {self.kind} entries cannot be "
                f"cleared selectively; clear them all instead"
            )
        doomed = [name for name, value in self.store.iter_values() if selected(value)]
        if dry_run:
            return len(doomed)
        return sum(bool(self.store.delete(name)) for name in doomed)

    def shared_stats(self) -> dict[str, Any]:
        """This kind's counters across every process (this one's pending counts added first)."""
        self.flush_stats()
        return summarize(self.store.read_counters(list(COUNTERS)))

    def _paused(self) -> bool:
        until = max(self.store.paused_until, self.llm_cache.store.paused_until)
        return bool(until) and time.monotonic() < until

    def _server_down(self) -> bool:
        if self._paused():
            self.count("skipped")
            return True
        return False


def _done(function: Callable[..., object], *args: Any) -> bool:
    function(*args)
    return True


async def _adone(function: Callable[..., Awaitable[object]], *args: Any) -> bool:
    await function(*args)
    return True
