"""The operator side of an LLM cache: list, inspect, delete selectively, shared stats."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async
from langchain_core.outputs import Generation

from llmcache_django.core import scope_hits, series
from llmcache_django.core.codec import CodecError, llm_record_name
from llmcache_django.core.control import scope_problem
from llmcache_django.core.keys import scope_tag
from llmcache_django.core.listing import EntryInfo, entry_info
from llmcache_django.core.stats import COUNTERS, Stats, summarize
from llmcache_django.stores.base import PartialClearError, ServerPausedError, is_entry_name

T = TypeVar("T")

if TYPE_CHECKING:
    from llmcache_django.stores.base import Store

logger = logging.getLogger("llmcache_django")


class ListingUnsupportedError(RuntimeError):
    """The backend cannot enumerate entries, so a filter or a listing cannot be applied."""


class PartialDeleteError(PartialClearError):
    """A selective delete failed part way; ``removed`` of ``total`` entries went first."""

    def __init__(self, removed: int, total: int, cause: BaseException, where: str) -> None:
        self.total = total
        super().__init__(removed, [], {where: f"{type(cause).__name__}: {cause}"})

    def describe(self) -> str:
        return (
            f"deleted {self.removed} of {self.total} entries, then failed: {'; '.join(self.failed.values())}; "
            f"the rest are still cached"
        )


class StatsNotResetError(RuntimeError):
    """A server of the alias is not answering, so the shared counters may not have been reset."""


class CacheOperations:
    """Mixed into :class:`~llmcache_django.core.cache.LLMCache`; nothing here is on the lookup path."""

    store: Store
    stats: Stats | None
    alias: str
    max_decoded_bytes: int

    def clear_namespace(self) -> int | None:  # provided by LLMCache
        raise NotImplementedError

    def _call(self, function: Callable[..., T], *args: Any) -> T:  # provided by LLMCache
        raise NotImplementedError

    async def _acall(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:  # provided by LLMCache
        raise NotImplementedError

    @property
    def can_list(self) -> bool:
        """Whether this backend can enumerate its entries (for the admin and filters)."""
        return self.store.can_list

    @property
    def backend_name(self) -> str:
        """A short human name of the backend kind."""
        kind = type(self.store).__name__.removesuffix("Store")
        cache = getattr(self.store, "cache", None)
        return f"Django cache ({type(cache).__name__})" if cache is not None else kind

    def clear_scope(self, scope: str) -> int | None:
        """Remove every entry written in ``scope`` (see ``llm_cache_control(scope=...)``) and
        nothing else; how many, where the backend can count. Raises if the server cannot be
        reached, so an erasure that did not happen says so."""
        count = self.store.clear_scope(_tag(scope))
        self._forget_scope_hits(scope)
        self._scope_cleared(scope, count)
        return count

    async def aclear_scope(self, scope: str) -> int | None:
        """Async :meth:`clear_scope`."""
        count = await self.store.aclear_scope(_tag(scope))
        await sync_to_async(self._forget_scope_hits, thread_sensitive=True)(scope)
        self._scope_cleared(scope, count)
        return count

    def _forget_scope_hits(self, scope: str) -> None:
        """An erased scope is not named in the hits ranking any more (nor in this process's tally)."""
        if self.stats is not None:
            self.stats.forget_scope(scope)
        scope_hits.forget(self.store, scope)

    def _scope_cleared(self, scope: str, count: int | None) -> None:
        logger.info(
            "LLM cache %r cleared scope %r (%s entries)", self.alias, scope, "unknown" if count is None else count
        )

    def entries(
        self,
        *,
        model: str | None = None,
        older_than: float | None = None,
        search: str | None = None,
        scope: str | None = None,
    ) -> Iterator[EntryInfo]:
        """Stream the entries of the namespace, optionally only one ``model``'s, those older
        than ``older_than`` seconds, those whose prompt contains ``search`` (any case), or
        those of one ``scope``."""
        self._require_listing()
        cutoff = time.time() - older_than if older_than is not None else None
        needle = search.casefold() if search else None
        in_scope = f"{_tag(scope)}." if scope is not None else None
        llm_strings = self._llm_string_finder()
        for name, value in self.store.iter_values():
            if in_scope is not None and not name.startswith(in_scope):
                continue
            try:
                info, _ = entry_info(name, value, llm_strings, max_bytes=self.max_decoded_bytes)
            except CodecError:
                continue  # a foreign value is never ours to show or delete
            if model is not None and info.model != model:
                continue
            if cutoff is not None and info.created > cutoff:
                continue
            if needle is not None and needle not in info.prompt.casefold():
                continue
            yield info

    def model_summary(self) -> dict[str, tuple[int, int]]:
        """``model -> (entries, stored bytes)`` for every model with entries, largest first."""
        summary: dict[str, tuple[int, int]] = {}
        for info in self.entries():
            count, size = summary.get(info.model, (0, 0))
            summary[info.model] = (count + 1, size + info.size)
        return dict(sorted(summary.items(), key=lambda item: (-item[1][0], item[0])))

    def count_entries(
        self, *, model: str | None = None, older_than: float | None = None, scope: str | None = None
    ) -> int | None:
        """How many entries match, or ``None`` where the backend cannot list them."""
        if not self.can_list:
            return None
        return sum(1 for _ in self.entries(model=model, older_than=older_than, scope=scope))

    def get_entry(self, name: str) -> tuple[EntryInfo, list[Generation]] | None:
        """The entry with digest ``name`` and its generations, or ``None``."""
        if not is_entry_name(name):
            return None  # bookkeeping keys (stats, generation) and anything else are not entries
        value = self.store.get(name)
        if value is None:
            return None
        try:
            info, entry = entry_info(name, value, self._llm_string_finder(), max_bytes=self.max_decoded_bytes)
        except CodecError:
            return None
        return info, entry.generations

    def delete_entry(self, name: str) -> bool:
        """Delete one entry by digest; whether it existed."""
        return is_entry_name(name) and self.store.delete(name)

    def delete_entries(
        self,
        *,
        model: str | None = None,
        older_than: float | None = None,
        scope: str | None = None,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> int | None:
        """Delete the matching entries (all of the namespace, or of ``scope``, without other
        filters); how many.

        Returns ``None`` for a whole-namespace or whole-scope clear on a backend that cannot count.
        ``progress(done, total)`` is called as a filtered delete goes; if a delete fails
        part way, :class:`PartialDeleteError` says how many went before it.
        """
        if model is None and older_than is None and scope is not None:
            return self.count_entries(scope=scope) if dry_run else self.clear_scope(scope)
        if model is None and older_than is None:
            return self.count_entries() if dry_run else self.clear_namespace()
        names = [info.name for info in self.entries(model=model, older_than=older_than, scope=scope)]
        if dry_run:
            return len(names)
        for done, name in enumerate(names):
            try:
                self.store.delete(name)
            except Exception as exc:
                raise PartialDeleteError(done, len(names), exc, self.store.describe()) from exc
            if progress is not None:
                progress(done + 1, len(names))
        return len(names)

    def shared_stats(self) -> dict[str, Any]:
        """Counters across every process using this namespace (this one's flushed first)."""
        self.flush_stats()
        try:
            return summarize(self.store.read_counters(list(COUNTERS)))
        except Exception as exc:
            if self.store.is_outage(exc):
                raise
            self.store.reset_counters(list(COUNTERS))  # not counters of ours: start them again
            return summarize(self.store.read_counters(list(COUNTERS)))

    def top_scopes(self, limit: int = 10) -> list[tuple[str, int]]:
        """The ``limit`` scopes with the most hits across every process (this one's flushed first)."""
        self.flush_stats()
        return scope_hits.top(self.store, limit)

    def reset_stats(self) -> None:
        """Set the shared counters, then this process's, back to zero.

        The shared ones go first: when the server cannot be reached this raises and nothing
        changes, so the outage's counts (its errors above all) are kept.
        """
        self._require_every_node()
        # Held: counts a flush (the flusher thread's) took before the reset are not added after it.
        with self.stats.flushing if self.stats is not None else contextlib.nullcontext():
            self.store.reset_counters(list(COUNTERS))
            series.reset(self.store, time.time())
            scope_hits.reset(self.store)
            self._require_every_node()  # a pool skips a node that just failed quietly
            if self.stats is not None:
                self.stats.reset()

    def _require_every_node(self) -> None:
        down = self.store.unreachable_nodes()
        if down:
            raise StatsNotResetError(f"node {', '.join(down)} is not answering; the stats were not reset")

    def flush_stats(self) -> None:
        """Add this process's pending counts to the shared counters now."""
        if self.stats is None:
            return
        with self.stats.flushing:
            # Once more on a fresh connection if a pooled one was dropped (a server restart),
            # as for lookups: the counts are taken once, and a restart is no outage.
            self._call(self._add_pending, self.stats.take_pending())
            self.stats.keep_scope_hits(self._call(scope_hits.add, self.store, self.stats.take_scope_hits()))

    def _add_pending(self, pending: dict[str, int]) -> None:
        lifetime = series.lifetime_deltas(pending)
        if lifetime:
            self._add_lifetime(lifetime)
        series.add(self.store, series.series_deltas(pending), time.time())

    def _add_lifetime(self, lifetime: dict[str, int]) -> None:
        try:
            self.store.add_counters(lifetime)
        except Exception as exc:
            if not self._foreign_counters(exc):
                raise
            self.store.reset_counters(list(COUNTERS))
            self.store.add_counters(lifetime)

    async def aflush_stats(self) -> None:
        """Async :meth:`flush_stats`."""
        if self.stats is None:
            return
        pending = self.stats.take_pending()
        if pending:
            await self._acall(self._aadd_pending, pending)
        self.stats.keep_scope_hits(await self._acall(scope_hits.aadd, self.store, self.stats.take_scope_hits()))

    async def _aadd_pending(self, pending: dict[str, int]) -> None:
        """Async :meth:`_add_pending`."""
        lifetime = series.lifetime_deltas(pending)
        if lifetime:
            await self._aadd_lifetime(lifetime)
        await series.aadd(self.store, series.series_deltas(pending), time.time())

    async def _aadd_lifetime(self, lifetime: dict[str, int]) -> None:
        """Async :meth:`_add_lifetime`."""
        try:
            await self.store.aadd_counters(lifetime)
        except Exception as exc:
            if not self._foreign_counters(exc):
                raise
            await self.store.areset_counters(list(COUNTERS))
            await self.store.aadd_counters(lifetime)

    def _foreign_counters(self, exc: Exception) -> bool:
        """Whether a failed flush met something else's value under our counters' key (they
        then start again from this flush's counts), rather than an unreachable server."""
        return not (self.store.is_outage(exc) or isinstance(exc, ServerPausedError))

    def _llm_string_finder(self) -> Callable[[str], str]:
        """``llm_hash -> llm_string`` from the store's records, each read once."""
        found: dict[str, str] = {}

        def llm_string(llm_hash: str) -> str:
            if llm_hash not in found:
                record = self.store.get_record(llm_record_name(llm_hash))
                found[llm_hash] = _text(record) if record is not None else ""
            return found[llm_hash]

        return llm_string

    def _require_listing(self) -> None:
        if not self.can_list:
            raise ListingUnsupportedError(
                f"LLM cache {self.alias!r} is on {self.store.describe()}, which cannot list its entries; "
                f"only a whole-namespace clear is possible there."
            )


def _text(record: bytes | str) -> str:
    # A Redis client made with decode_responses=True hands back str.
    return record if isinstance(record, str) else record.decode("utf-8", "surrogatepass")


def _tag(scope: str) -> str:
    """The tag of ``scope``'s entry names; raises :class:`ValueError` for a bad scope."""
    problem = scope_problem(scope)
    if problem is not None or scope is None:
        raise ValueError(f"scope={problem or 'None is not a scope'}.")
    return scope_tag(scope)
