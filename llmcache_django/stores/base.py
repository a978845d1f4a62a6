"""The store contract: bytes under names, inside one namespace, sync and async."""

from __future__ import annotations

import asyncio
import copy
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Seconds any one server call may take before it counts as a failure (a miss or a skipped
#: write), for clients the cache builds and for given clients that set no timeout of their own.
DEFAULT_SERVER_TIMEOUT = 2.0
#: Largest stored entry by default: memcached's default item size less room for the key and
#: the item header. No LLM answer comes near it; a larger value under our key is not ours.
DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024 - 1024
#: The value of a single-flight lease whose leader stored its answer.
LEASE_DONE = b"done"
#: What an entry's name is: a SHA-256 hex digest, after its scope's 16-digit tag and a dot
#: for an entry of a scope. Every other name (counters, records, leases, generations) is
#: bookkeeping: never listed, counted or cleared as an entry.
DIGEST_RE = re.compile(r"^(?:[0-9a-f]{16}\.)?[0-9a-f]{64}$")
SCOPE_TAG_RE = re.compile(r"^[0-9a-f]{16}$")


def is_entry_name(name: str) -> bool:
    """Whether ``name`` is an entry digest (not a counter or other bookkeeping key)."""
    return bool(DIGEST_RE.match(name))


#: Read by every health probe; not a digest, so never an entry's name.
PROBE_NAME = "health-probe"

#: A server's name and a call that reads from it (raising when it does not answer).
ServerProbe = tuple[str, Callable[[], Any]]


@dataclass(frozen=True)
class Node:
    """One server of a many-server store (a memcached pool, a Redis Cluster), as the admin,
    the health probe and the stats see it.

    ``up`` is whether it answered (or, unmeasured, whether the client is using it); ``error``
    says why not. ``entries`` counts our namespace's entries on it, ``keys`` every key on it,
    ``bytes_used`` its memory; ``None`` where not measured. ``marked_down``: the client is
    skipping it for now, so its keys miss quietly.
    """

    name: str
    role: str  # "server" (a memcached pool), "primary" or "replica" (a Redis Cluster)
    up: bool = True
    error: str | None = None
    entries: int | None = None
    keys: int | None = None
    bytes_used: int | None = None
    marked_down: bool = False


class PartialClearError(RuntimeError):
    """A clear or delete that did part of its work: ``removed`` entries went from the
    ``cleared`` nodes, then ``failed`` (node -> reason) could not be done. ``note`` says what
    becomes of the entries that were not removed."""

    def __init__(self, removed: int, cleared: list[str], failed: dict[str, str], *, note: str = "") -> None:
        self.removed = removed
        self.cleared = cleared
        self.failed = failed
        self.note = note
        super().__init__(self.describe())

    def describe(self) -> str:
        """Exactly what was and was not cleared, for logs, the admin and ``clear_llm_cache``."""
        failures = "; ".join(f"{node} ({reason})" for node, reason in self.failed.items())
        if not self.cleared:
            return f"no server could be reached, nothing was cleared: {failures}"
        entries = "entry" if self.removed == 1 else "entries"
        note = f": {self.note}" if self.note else ""
        return f"cleared {self.removed} {entries} on {', '.join(self.cleared)}; could not reach {failures}{note}"


def scope_tag_of(name: str) -> str | None:
    """The scope tag an entry name starts with, or ``None`` for an unscoped entry (or not an entry)."""
    return name[:16] if len(name) > 64 and is_entry_name(name) else None


class OversizeValueError(ValueError):
    """A stored value is larger than the store reads back: it was refused without being fetched."""


class ServerPausedError(RuntimeError):
    """The cache is leaving an unreachable server alone; the call was not made."""


class Store(ABC):
    """Byte storage for one namespace on one server (or Django cache).

    ``name`` arguments are entry digests; the store turns them into server keys under its
    namespace. Methods may raise any exception on a server failure: the cache catches,
    logs, counts and carries on, so stores stay free of error handling.
    """

    #: Largest entry this store writes or reads (the cache's default ``max_entry_bytes``).
    max_value_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    #: Whether values may be arbitrary bytes (``False`` for clients that decode to str).
    binary_safe: bool = True
    #: Whether :meth:`iter_values` can enumerate the namespace on this backend.
    can_list: bool = False

    #: Exceptions that mean the server cannot be reached (the cache then pauses), as opposed
    #: to a problem with one key or value (a miss for that key only).
    outage_errors: tuple[type[BaseException], ...] = (OSError, EOFError)
    #: Exceptions that mean a pooled connection was dropped by the server: worth one retry.
    stale_errors: tuple[type[BaseException], ...] = (ConnectionResetError, BrokenPipeError, EOFError)

    #: Until this ``time.monotonic()``, calls queued for a worker thread are dropped: the
    #: cache set it when the server became unreachable, so they do not each wait on it.
    paused_until: float = 0.0

    def check_not_paused(self) -> None:
        """Raise :class:`ServerPausedError` while the cache is leaving the server alone."""
        if self.paused_until and time.monotonic() < self.paused_until:
            raise ServerPausedError(f"{self.describe()} is unreachable; not asked for a while")

    def is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the server is unreachable, rather than one key being bad."""
        return isinstance(exc, self.outage_errors)

    def is_stale_connection(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a dropped pooled connection, which a fresh one may not hit."""
        return isinstance(exc, self.stale_errors)

    def nodes(self, *, measure: bool = True) -> list[Node]:
        """Every server of a many-server store; ``[]`` for a single server (the store is the node).

        With ``measure``, each server is asked for its figures (a dead one comes back down,
        with its error); without, only what the client already knows, with no server call.
        """
        return []

    def unreachable_nodes(self) -> list[str]:
        """The servers the client currently treats as down (their keys miss quietly)."""
        return [node.name for node in self.nodes(measure=False) if node.marked_down]

    def probes(self) -> list[ServerProbe]:
        """One read per server the store talks to, for the health probe (run in threads)."""
        return [(self.describe(), self.retrying(lambda: self.get(PROBE_NAME)))]

    def retrying(self, read: Callable[[], Any]) -> Callable[[], Any]:
        """``read``, tried once more on a pooled connection the server dropped, as the cache does."""

        def read_once_more() -> Any:
            try:
                return read()
            except Exception as exc:
                if not self.is_stale_connection(exc):
                    raise
            return read()

        return read_once_more

    @abstractmethod
    def describe(self) -> str:
        """Return where the entries live, for logs and the admin (no secrets)."""

    @abstractmethod
    def get(self, name: str) -> bytes | None:
        """Return the value stored under ``name``, or ``None`` when there is none."""

    @abstractmethod
    def set(self, name: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` under ``name`` for ``ttl`` seconds (``None``: no expiry)."""

    @abstractmethod
    def delete(self, name: str) -> bool:
        """Remove the entry ``name``; return whether it existed (when the server says)."""

    @abstractmethod
    def clear(self) -> int | None:
        """Make every entry of the namespace unreachable; return how many, if known.

        Nothing outside the namespace is touched, and after it returns no client gets a
        hit for an entry written before it started.
        """

    @abstractmethod
    def clear_scope(self, tag: str) -> int | None:
        """Make every entry of the scope with tag ``tag`` unreachable, and nothing else; return
        how many were removed, if known. Raises when the server could not be reached."""

    @abstractmethod
    async def aclear_scope(self, tag: str) -> int | None:
        """Async :meth:`clear_scope`."""

    @abstractmethod
    async def aget(self, name: str) -> bytes | None:
        """Async :meth:`get`; never blocks the event loop on network I/O."""

    @abstractmethod
    async def aset(self, name: str, value: bytes, ttl: float | None) -> None:
        """Async :meth:`set`."""

    @abstractmethod
    async def adelete(self, name: str) -> bool:
        """Async :meth:`delete`."""

    @abstractmethod
    async def aclear(self) -> int | None:
        """Async :meth:`clear`."""

    @abstractmethod
    def set_record(self, name: str, value: bytes) -> None:
        """Keep a small bookkeeping value (no expiry) that is not an entry."""

    @abstractmethod
    async def aset_record(self, name: str, value: bytes) -> None:
        """Async :meth:`set_record`."""

    @abstractmethod
    def get_record(self, name: str) -> bytes | None:
        """Read a value kept by :meth:`set_record`, or ``None``."""

    # Many entries at once, and other kinds of entry beside these (LangGraph, embeddings).

    def get_many(self, names: Sequence[str]) -> dict[str, bytes]:
        """Return the values stored under ``names`` (absent ones left out), in one round trip
        where the backend can; a value over :attr:`max_value_bytes` is left out unread."""
        found: dict[str, bytes] = {}
        for name in names:
            try:
                value = self.get(name)
            except OversizeValueError:
                continue
            if value is not None and len(value) <= self.max_value_bytes:
                found[name] = value
        return found

    def set_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        """Store every ``name: value`` of ``values`` for ``ttl`` seconds, in one round trip where the backend can."""
        for name, value in values.items():
            self.set(name, value, ttl)

    async def aget_many(self, names: Sequence[str]) -> dict[str, bytes]:
        """Async :meth:`get_many`."""
        found: dict[str, bytes] = {}
        for name in names:
            try:
                value = await self.aget(name)
            except OversizeValueError:
                continue
            if value is not None and len(value) <= self.max_value_bytes:
                found[name] = value
        return found

    async def aset_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        """Async :meth:`set_many`."""
        for name, value in values.items():
            await self.aset(name, value, ttl)

    def sub_store(self, part: str) -> Store:
        """A store of the same kind on the same servers and connections, for the sub-namespace
        ``part`` of this one: its keys never collide with this store's entries, and neither
        store's ``clear()`` touches the other's entries (their names are not entry digests of
        the other)."""
        sub = copy.copy(self)
        sub.paused_until = 0.0
        sub._nest(part)
        return sub

    def _nest(self, part: str) -> None:
        """Move this (freshly copied) store into the sub-namespace ``part``."""
        raise NotImplementedError(f"{self.describe()} has no sub-namespaces")

    # Operator side: listing and shared counters. Not on the lookup path.

    def iter_values(self) -> Iterator[tuple[str, bytes]]:
        """Yield ``(name, value)`` for every live entry of the namespace, a batch at a time.

        Raises :class:`NotImplementedError` where :attr:`can_list` is false.
        """
        raise NotImplementedError(f"{self.describe()} cannot list its entries")

    @abstractmethod
    def add_counters(self, deltas: Mapping[str, int]) -> None:
        """Atomically add ``deltas`` to the namespace's shared counters."""

    @abstractmethod
    async def aadd_counters(self, deltas: Mapping[str, int]) -> None:
        """Async :meth:`add_counters`."""

    @abstractmethod
    def read_counters(self, names: list[str]) -> dict[str, int]:
        """Return the shared counters ``names`` (0 for those never written)."""

    @abstractmethod
    def reset_counters(self, names: list[str]) -> None:
        """Set the shared counters ``names`` back to zero."""

    async def areset_counters(self, names: list[str]) -> None:
        """Async :meth:`reset_counters` (by default, the sync one in a worker thread)."""
        await asyncio.to_thread(self.reset_counters, names)

    # Counters per time bucket (savings over time): expire on the server as they leave their window.

    #: Whether this store keeps counters per time bucket (the built-in stores do).
    keeps_series: bool = False

    def add_bucket_counters(self, buckets: Mapping[str, float], deltas: Mapping[str, int]) -> None:
        """Atomically add ``deltas`` to the counters of each bucket of ``buckets`` (name ->
        the Unix time the server drops it), in as few round trips as the backend allows."""
        raise NotImplementedError(f"{self.describe()} keeps no counters per time bucket")

    async def aadd_bucket_counters(self, buckets: Mapping[str, float], deltas: Mapping[str, int]) -> None:
        """Async :meth:`add_bucket_counters`."""
        await asyncio.to_thread(self.add_bucket_counters, buckets, deltas)

    def read_bucket_counters(self, buckets: list[str], names: list[str]) -> dict[str, dict[str, int]]:
        """Return ``{bucket: {name: count}}`` for ``buckets`` (0 for counters never written or expired)."""
        raise NotImplementedError(f"{self.describe()} keeps no counters per time bucket")

    def reset_bucket_counters(self, buckets: list[str]) -> None:
        """Set every counter of ``buckets`` back to zero (what a stats reset does to the history)."""
        raise NotImplementedError(f"{self.describe()} keeps no counters per time bucket")

    # Hits per scope: a ranking of at most ``keep`` scopes (see :mod:`llmcache_django.core.scope_hits`).

    #: Whether the server ranks scopes itself (:meth:`add_scope_hits`); elsewhere the ranking is a record.
    ranks_scopes: bool = False

    def add_scope_hits(self, hits: Mapping[str, int], keep: int) -> None:
        """Atomically add ``hits`` (scope -> hits) to the ranking, then keep its top ``keep`` scopes."""
        raise NotImplementedError(f"{self.describe()} does not rank scopes itself")

    async def aadd_scope_hits(self, hits: Mapping[str, int], keep: int) -> None:
        """Async :meth:`add_scope_hits`."""
        await asyncio.to_thread(self.add_scope_hits, hits, keep)

    def forget_scope_hits(self, scope: str) -> None:
        """Take ``scope`` out of the ranking."""
        raise NotImplementedError(f"{self.describe()} does not rank scopes itself")

    def read_scope_hits(self, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` scopes with the most hits, most first."""
        raise NotImplementedError(f"{self.describe()} does not rank scopes itself")

    def reset_scope_hits(self) -> None:
        """Forget the ranking (what a stats reset does)."""
        raise NotImplementedError(f"{self.describe()} does not rank scopes itself")

    # Single-flight leases: short-lived values under names that are not entries.

    #: Whether :meth:`add_lease` is atomic across processes on this backend.
    can_lease: bool = False

    def add_lease(self, name: str, token: bytes, ttl: float) -> bool:
        """Atomically store ``token`` under ``name`` for ``ttl`` seconds unless something is
        there; return whether it did."""
        raise NotImplementedError(f"{self.describe()} cannot take leases")

    def read_lease(self, name: str) -> bytes | None:
        """Return the lease under ``name``, or ``None``."""
        raise NotImplementedError(f"{self.describe()} cannot take leases")

    def end_lease(self, name: str, done_ttl: float | None) -> None:
        """Replace the lease ``name`` by :data:`LEASE_DONE` for ``done_ttl`` seconds, or remove it (``None``)."""
        raise NotImplementedError(f"{self.describe()} cannot take leases")

    def set_ending_lease(self, name: str, value: bytes, ttl: float | None, lease: str, done_ttl: float) -> None:
        """:meth:`set` the entry ``name``, then :meth:`end_lease` ``lease`` as done, in as few
        round trips as the backend allows (the leader's write: one, where it can pipeline)."""
        self.set(name, value, ttl)
        self.end_lease(lease, done_ttl)

    async def aset_ending_lease(self, name: str, value: bytes, ttl: float | None, lease: str, done_ttl: float) -> None:
        """Async :meth:`set_ending_lease`."""
        await self.aset(name, value, ttl)
        await self.aend_lease(lease, done_ttl)

    async def aadd_lease(self, name: str, token: bytes, ttl: float) -> bool:
        """Async :meth:`add_lease`."""
        return await asyncio.to_thread(self.add_lease, name, token, ttl)

    async def aread_lease(self, name: str) -> bytes | None:
        """Async :meth:`read_lease`."""
        return await asyncio.to_thread(self.read_lease, name)

    async def aend_lease(self, name: str, done_ttl: float | None) -> None:
        """Async :meth:`end_lease`."""
        await asyncio.to_thread(self.end_lease, name, done_ttl)
