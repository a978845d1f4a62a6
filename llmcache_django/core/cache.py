"""``LLMCache``: the one place with LangChain's lookup/update/clear logic, over any store."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from django.dispatch import Signal
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.outputs import Generation

from llmcache_django.core import codec, control
from llmcache_django.core.exit_flush import flush_at_exit
from llmcache_django.core.failopen import ErrorReporter
from llmcache_django.core.flusher import ensure_running as ensure_flusher
from llmcache_django.core.keys import entry_digest, entry_key
from llmcache_django.core.latency import timed_lookup
from llmcache_django.core.listing import model_of
from llmcache_django.core.miss_timing import miss_duration, miss_started
from llmcache_django.core.operations import CacheOperations
from llmcache_django.core.signals import llm_cache_cleared, llm_cache_hit, llm_cache_miss
from llmcache_django.core.single_flight import DONE_SECONDS, SingleFlight, option_problem, wait_bound
from llmcache_django.core.stats import Stats
from llmcache_django.core.ttl import ttl_problem
from llmcache_django.stores.base import PartialClearError, ServerPausedError, Store

T = TypeVar("T")
logger = logging.getLogger("llmcache_django")
#: How many ``llm_string`` records this process remembers having written.
KNOWN_LLM_LIMIT = 1024
#: A model's ``llm_string`` record is written again after this many seconds, in case the
#: server culled or evicted it (Django's database cache culls past MAX_ENTRIES).
LLM_RECORD_REFRESH_SECONDS = 60.0
#: After a server error, lookups and updates skip the server for this many seconds, so a
#: dead server (and its client's connect timeouts and retries) costs one slow call, not all.
OUTAGE_BACKOFF_SECONDS = 5.0


class Lookup(NamedTuple):
    """What a lookup found (``entry``) and what happened: ``hit``, ``coalesced`` (another
    caller's fresh answer), ``miss``, ``refreshed`` (not read: ``refresh``), ``stale`` (an
    entry older than ``max_age``, refused) or ``bypassed`` (not read: ``off``)."""

    entry: codec.Entry | None
    outcome: str


MISSED = Lookup(None, "miss")
REFRESHED = Lookup(None, "refreshed")
STALE = Lookup(None, "stale")
BYPASSED = Lookup(None, "bypassed")


class PreparedWrite(NamedTuple):
    """An update's entry, encoded (``None``: nothing to write), and where it goes."""

    name: str
    value: bytes | None
    llm_hash: str
    model: str
    ttl: float | None


class LLMCache(CacheOperations, BaseCache):
    """A LangChain cache over a :class:`~llmcache_django.stores.base.Store`.

    Lookups and updates never raise: a server failure, a corrupt or foreign value, an
    oversize entry or a failing signal receiver is logged (once per burst), counted in
    :attr:`stats`, and treated as a miss or a skipped write. After a server failure the
    server is left alone for :data:`OUTAGE_BACKOFF_SECONDS`, so model calls do not each
    wait on a dead server. ``clear()`` removes this namespace's entries only, and raises if
    the server cannot be reached, so an operator knows nothing was cleared.
    """

    #: Seconds to leave the server alone after it failed (see :data:`OUTAGE_BACKOFF_SECONDS`).
    outage_backoff: float = OUTAGE_BACKOFF_SECONDS

    def __init__(
        self,
        store: Store,
        *,
        ttl: float | None = None,
        alias: str = "",
        namespace: str = "",
        compress_min_bytes: float = codec.DEFAULT_COMPRESS_MIN_BYTES,
        max_entry_bytes: int | None = None,
        stats: bool = True,
        single_flight: bool | float = False,
    ) -> None:
        problem = ttl_problem(ttl)
        if problem is not None:
            raise ValueError(f"ttl={problem}.")
        problem = option_problem(single_flight)
        if problem is not None:
            raise ValueError(f"single_flight={problem}.")
        self.store = store
        self.ttl = ttl
        self.alias = alias
        self.namespace = namespace
        # A client that decodes responses to str cannot carry compressed bytes.
        self.compress_min_bytes = compress_min_bytes if store.binary_safe else math.inf
        if max_entry_bytes is not None:
            store.max_value_bytes = max_entry_bytes  # where it can, the store refuses larger values unread
        self.max_entry_bytes: int = store.max_value_bytes
        #: The most a stored value may inflate to; larger entries are neither written nor read.
        self.max_decoded_bytes = codec.DECODED_PER_STORED * self.max_entry_bytes
        self.stats: Stats | None = Stats() if stats else None
        if self.stats is not None:
            flush_at_exit(self)
        self.errors = ErrorReporter(alias or type(self).__name__)
        self._llm_records: dict[str, tuple[str, str, float]] = {}  # llm_string -> (hash, model, written at)
        wait = wait_bound(single_flight) if ttl is None or ttl > 0 else None  # TTL 0 caches nothing to wait for
        #: Coalesces concurrent misses of one entry into one model call (``None``: off).
        self.single_flight = SingleFlight(store, wait=wait, on_error=self._failed) if wait is not None else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r} {self.store.describe()}>"

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Return the cached generations for ``(prompt, llm_string)``, or ``None``."""
        entry = self.lookup_entry(prompt, llm_string)
        return None if entry is None else entry.generations

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async :meth:`lookup`."""
        entry = await self.alookup_entry(prompt, llm_string)
        return None if entry is None else entry.generations

    def lookup_entry(self, prompt: str, llm_string: str) -> codec.Entry | None:
        """:meth:`lookup`, returning the whole entry (generations, creation time, ...)."""
        return self.lookup_outcome(prompt, llm_string).entry

    async def alookup_entry(self, prompt: str, llm_string: str) -> codec.Entry | None:
        """Async :meth:`lookup_entry`."""
        return (await self.alookup_outcome(prompt, llm_string)).entry

    @timed_lookup
    def lookup_outcome(self, prompt: str, llm_string: str) -> Lookup:
        """:meth:`lookup_entry` and what happened (see :class:`Lookup`), under the
        directives in force (:mod:`~llmcache_django.core.control`)."""
        given = control.current_for(self.alias)
        name, canonical = entry_key(prompt, llm_string, given.scope if given is not None else None)
        if self.stats is not None:
            ensure_flusher()  # an idle process's last counts are shared too
        if given is not None and not given.reads:
            return self._not_read(name, given)
        if self._server_down():
            return MISSED
        try:
            value = self._call(self.store.get, name)
        except Exception as exc:
            self._failed("lookup", exc)
            return MISSED
        coalesced = False
        if value is None and self.single_flight is not None and (given is None or given.stores):
            value = self.single_flight.join(name)  # an answer that will not be stored leads no flight
            coalesced = value is not None
        outcome = self._read(name, value, canonical, coalesced=coalesced, given=given)
        entry = outcome.entry
        signal = llm_cache_miss if entry is None else llm_cache_hit
        if signal.receivers:
            self._report_receiver_errors(
                signal.send_robust(sender=self, alias=self.alias, prompt=canonical, llm_string=llm_string)
            )
        if self.stats is not None and self.stats.flush_due():
            self.flush_stats_quietly()
        return outcome

    @timed_lookup
    async def alookup_outcome(self, prompt: str, llm_string: str) -> Lookup:
        """Async :meth:`lookup_outcome`."""
        given = control.current_for(self.alias)
        name, canonical = entry_key(prompt, llm_string, given.scope if given is not None else None)
        if self.stats is not None:
            ensure_flusher()  # an idle process's last counts are shared too
        if given is not None and not given.reads:
            return self._not_read(name, given)
        if self._server_down():
            return MISSED
        try:
            value = await self._acall(self.store.aget, name)
        except Exception as exc:
            self._failed("lookup", exc)
            return MISSED
        coalesced = False
        if value is None and self.single_flight is not None and (given is None or given.stores):
            value = await self.single_flight.ajoin(name)
            coalesced = value is not None
        outcome = self._read(name, value, canonical, coalesced=coalesced, given=given)
        entry = outcome.entry
        signal = llm_cache_miss if entry is None else llm_cache_hit
        if signal.receivers:
            self._report_receiver_errors(
                await _asend_robust(signal, sender=self, alias=self.alias, prompt=canonical, llm_string=llm_string)
            )
        if self.stats is not None and self.stats.flush_due():
            await self._aflush_stats_quietly()
        return outcome

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store ``return_val`` for ``(prompt, llm_string)``, replacing any previous entry."""
        write = self._prepare_write(prompt, llm_string, return_val)
        if write is None:
            return
        name, value, llm_hash, model, ttl = write
        lease_ended = False
        try:
            lease_ended = self._write(name, value, llm_string, llm_hash, model, ttl)
        finally:  # waiters for this entry get it from memory, even if the write failed
            if self.single_flight is not None:
                self.single_flight.settle(name, value, lease_ended=lease_ended)

    def _prepare_write(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> PreparedWrite | None:
        """What :meth:`update` and :meth:`aupdate` write, worked out once for both (no I/O);
        ``None`` when the call's directives store nothing."""
        given = control.current_for(self.alias)
        if given is not None and not given.stores:
            self._count("bypassed")
            return None
        name, canonical = entry_key(prompt, llm_string, given.scope if given is not None else None)
        ttl = self._ttl(given)
        llm_hash, model = self._llm_names(llm_string)
        value = self._encode(name, canonical, llm_hash, model, return_val, ttl, given.scope if given else None)
        return PreparedWrite(name, value, llm_hash, model, ttl)

    def _write(
        self, name: str, value: bytes | None, llm_string: str, llm_hash: str, model: str, ttl: float | None
    ) -> bool:
        """Store the entry (and the LLM record when due); whether the write also ended this
        process's single-flight lease on ``name`` (one round trip for both where it can)."""
        if value is None or self._server_down():
            return False
        lease = self.single_flight.held_lease(name) if self.single_flight is not None else None
        try:
            if lease is None:
                self._call(self.store.set, name, value, ttl)
            else:
                self._call(self.store.set_ending_lease, name, value, ttl, lease, DONE_SECONDS)
            if self._llm_record_due(llm_string):
                self.store.set_record(codec.llm_record_name(llm_hash), llm_string.encode("utf-8", "surrogatepass"))
                self._remember_llm(llm_string, llm_hash, model)
        except Exception as exc:
            self._failed("update", exc)
            return False
        self._count("writes")
        return lease is not None

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async :meth:`update`."""
        write = self._prepare_write(prompt, llm_string, return_val)
        if write is None:
            return
        name, value, llm_hash, model, ttl = write
        lease_ended = False
        try:
            lease_ended = await self._awrite(name, value, llm_string, llm_hash, model, ttl)
        finally:
            if self.single_flight is not None:
                await self.single_flight.asettle(name, value, lease_ended=lease_ended)

    async def _awrite(
        self, name: str, value: bytes | None, llm_string: str, llm_hash: str, model: str, ttl: float | None
    ) -> bool:
        """Async :meth:`_write`."""
        if value is None or self._server_down():
            return False
        lease = self.single_flight.held_lease(name) if self.single_flight is not None else None
        try:
            if lease is None:
                await self._acall(self.store.aset, name, value, ttl)
            else:
                await self._acall(self.store.aset_ending_lease, name, value, ttl, lease, DONE_SECONDS)
            if self._llm_record_due(llm_string):
                await self.store.aset_record(
                    codec.llm_record_name(llm_hash), llm_string.encode("utf-8", "surrogatepass")
                )
                self._remember_llm(llm_string, llm_hash, model)
        except Exception as exc:
            self._failed("update", exc)
            return False
        self._count("writes")
        return lease is not None

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache's namespace, and nothing else.

        Keyword arguments of the langchain-community classes (``asynchronous``, ``delay``,
        ``noreply``) are accepted and ignored.
        """
        self.clear_namespace()

    def clear_namespace(self) -> int | None:
        """:meth:`clear`, returning how many entries went (``None`` where unknown).

        Raises on failure: a clear that did not happen must say so. A
        :class:`~llmcache_django.stores.base.PartialClearError` (some nodes cleared, others
        not) is logged with what went, then raised.
        """
        try:
            count = self.store.clear()
        except PartialClearError as exc:
            self._cleared_partly(exc)
            raise
        self._cleared(count)
        if llm_cache_cleared.receivers:
            self._report_receiver_errors(llm_cache_cleared.send_robust(sender=self, alias=self.alias, count=count))
        return count

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`."""
        await self.aclear_namespace()

    async def aclear_namespace(self) -> int | None:
        """Async :meth:`clear_namespace`."""
        try:
            count = await self.store.aclear()
        except PartialClearError as exc:
            self._cleared_partly(exc)
            raise
        self._cleared(count)
        if llm_cache_cleared.receivers:
            self._report_receiver_errors(
                await _asend_robust(llm_cache_cleared, sender=self, alias=self.alias, count=count)
            )
        return count

    def abandon(self, prompt: str, llm_string: str) -> None:
        """Say that the model call after a miss of ``(prompt, llm_string)`` will not
        ``update`` (it failed): callers waiting for it (single-flight) go on at once."""
        name = self._flight_name(prompt, llm_string)
        if name is not None and self.single_flight is not None:
            self.single_flight.settle(name, None)

    async def aabandon(self, prompt: str, llm_string: str) -> None:
        """Async :meth:`abandon`."""
        name = self._flight_name(prompt, llm_string)
        if name is not None and self.single_flight is not None:
            await self.single_flight.asettle(name, None)

    def _flight_name(self, prompt: str, llm_string: str) -> str | None:
        """The entry whose flight this caller may lead, or ``None``: a call that neither
        read and stores (``refresh``, ``no-store``, ``off``) joined no flight to end."""
        given = control.current_for(self.alias)
        if given is None:
            return entry_digest(prompt, llm_string)
        return entry_digest(prompt, llm_string, given.scope) if given.reads and given.stores else None

    def _not_read(self, name: str, given: control.Directives) -> Lookup:
        """A lookup the directives skipped: ``refresh`` counts as refreshed, ``off`` as bypassed."""
        refresh = given.mode == "refresh"
        self._count("refreshed" if refresh else "bypassed")
        if refresh:
            miss_started(name)  # the fresh answer's duration is measured as a miss's
        return REFRESHED if refresh else BYPASSED

    def _ttl(self, given: control.Directives | None) -> float | None:
        return given.ttl if given is not None and given.ttl is not None else self.ttl

    def _read(
        self,
        name: str,
        value: bytes | None,
        prompt: str,
        *,
        coalesced: bool = False,
        given: control.Directives | None = None,
    ) -> Lookup:
        if value is None:
            self._miss(name)
            return MISSED
        try:
            if len(value) > self.max_entry_bytes:
                raise codec.CodecError(
                    f"stored value of {len(value)} bytes is over the {self.max_entry_bytes}-byte limit"
                )
            entry = codec.decode(value, max_bytes=self.max_decoded_bytes)
            if entry.prompt != prompt:
                raise codec.CodecError("stored entry belongs to another prompt")
            if given is not None and given.max_age is not None and time.time() - entry.created > given.max_age:
                self._count("refreshed")
                miss_started(name)
                return STALE
            if self.stats is not None:
                counter = "coalesced" if coalesced else "hits"
                scope = given.scope if given is not None else None
                self.stats.hit(len(value), entry.generations, entry.duration, counter, entry.model, scope)
        except Exception as exc:  # whatever is under our key, the model call goes on
            self._fail("reading a stored entry", exc)
            self._miss(name)
            return MISSED
        return Lookup(entry, "coalesced" if coalesced else "hit")

    def _llm_names(self, llm_string: str) -> tuple[str, str]:
        known = self._llm_records.get(llm_string)
        if known is not None:
            return known[0], known[1]
        return codec.llm_hash(llm_string), model_of(llm_string)

    def _llm_record_due(self, llm_string: str) -> bool:
        known = self._llm_records.get(llm_string)
        return known is None or time.monotonic() - known[2] >= LLM_RECORD_REFRESH_SECONDS

    def _remember_llm(self, llm_string: str, llm_hash: str, model: str) -> None:
        if len(self._llm_records) >= KNOWN_LLM_LIMIT:
            self._llm_records.clear()
        self._llm_records[llm_string] = (llm_hash, model, time.monotonic())

    def _encode(
        self,
        name: str,
        prompt: str,
        llm_hash: str,
        model: str,
        generations: Sequence[Generation],
        ttl: float | None,
        scope: str | None,
    ) -> bytes | None:
        duration = miss_duration(name)
        if ttl is not None and ttl <= 0:
            return None  # TTL 0 means "do not cache", as Django's TIMEOUT 0 does
        try:
            entry = codec.new_entry(prompt, model, llm_hash, generations, ttl, duration, scope)
            value = codec.encode(entry, compress_min_bytes=self.compress_min_bytes, max_bytes=self.max_decoded_bytes)
        except Exception as exc:
            self._fail("encoding an entry", exc)
            return None
        if len(value) > self.max_entry_bytes:
            self._fail(
                "update",
                ValueError(f"entry of {len(value)} bytes is over the {self.max_entry_bytes}-byte limit; not cached"),
            )
            return None
        return value

    def _miss(self, name: str) -> None:
        self._count("misses")
        miss_started(name)

    def _cleared(self, count: int | None) -> None:
        self.store.paused_until = 0.0  # a clear that reached the server lets it be asked again
        logger.info("LLM cache %r cleared (%s entries)", self.alias, "unknown" if count is None else count)

    def _cleared_partly(self, exc: PartialClearError) -> None:
        self.store.paused_until = 0.0
        logger.warning("LLM cache %r cleared in part: %s", self.alias, exc.describe())

    def _count(self, counter: str) -> None:
        if self.stats is not None:
            self.stats.add(counter)

    def flush_stats_quietly(self) -> None:
        """:meth:`flush_stats`, failing open: an error is logged and counted, the counts stay pending."""
        if self._paused():
            return  # the counts stay pending until the server is back
        try:
            self.flush_stats()
        except Exception as exc:
            self._failed("saving stats", exc)

    async def _aflush_stats_quietly(self) -> None:
        if self._paused():
            return
        try:
            await self.aflush_stats()
        except Exception as exc:
            self._failed("saving stats", exc)

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return function(*args)
        except Exception as exc:
            if not self.store.is_stale_connection(exc):
                raise
        # A pooled connection the server dropped (a restart): one retry opens a fresh one.
        return function(*args)

    async def _acall(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return await function(*args)
        except Exception as exc:
            if not self.store.is_stale_connection(exc):
                raise
        return await function(*args)

    def _paused(self) -> bool:
        return bool(self.store.paused_until) and time.monotonic() < self.store.paused_until

    def _server_down(self) -> bool:
        if self._paused():
            self._count("skipped")
            return True
        return False

    def _failed(self, operation: str, exc: BaseException) -> None:
        """Log and count a failed server call; only an unreachable server pauses the cache."""
        if isinstance(exc, ServerPausedError):
            self._count("skipped")  # queued before the outage began, dropped since
            return
        if self.store.is_outage(exc):
            self.store.paused_until = time.monotonic() + self.outage_backoff
        self._fail(operation, exc)

    def _report_receiver_errors(self, responses: list[tuple[Any, Any]]) -> None:
        for _receiver, response in responses:
            if isinstance(response, Exception):
                self._fail("a signal receiver", response)

    def _fail(self, operation: str, exc: BaseException) -> None:
        self._count("errors")
        self.errors.report(operation, exc)


async def _asend_robust(signal: Signal, **kwargs: Any) -> list[tuple[Any, Any]]:
    asend_robust = getattr(signal, "asend_robust", None)  # Django >= 5.0
    if asend_robust is None:
        return signal.send_robust(**kwargs)
    return await asend_robust(**kwargs)  # type: ignore[no-any-return]
