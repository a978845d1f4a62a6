"""Namespace-wide clear by generation for servers that cannot list keys reliably.

A counter under ``<namespace>:generation`` is bumped by ``clear()``. Every value is written
as ``b"<generation>:" + value``; a value from another generation reads as a miss. The
lookup fetches the counter and the entry in one ``get_many`` round trip, so clear is
O(1), atomic across processes, and never touches keys outside the namespace. Where the
backend can list its keys, clear then also deletes the old entries to free their memory.

An entry of a scope (its name starts with the scope's tag) also carries the scope's own
generation, ``b"<generation>.<scope generation>:" + value``, read in the same round trip:
``clear_scope()`` bumps that one counter, so a scope is erased at once, whatever the server.
"""

from __future__ import annotations

import re
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, TypeVar

from llmcache_django.stores.base import LEASE_DONE, OversizeValueError, Store, is_entry_name, scope_tag_of

T = TypeVar("T")
GENERATION_NAME = "generation"
#: What a generation counter holds: a decimal number (memcached's ``incr`` keeps it under 2**64).
GENERATION_PATTERN = re.compile(rb"[0-9]{1,20}")
#: The longest ``b"<generation>.<scope generation>:"`` tag in front of a stored value.
GENERATION_TAG_BYTES = 42
#: Each scope's generation counter is under this name plus the scope's tag.
SCOPE_GENERATION_PREFIX = "scope-generation:"
#: Scope generations remembered per process (past it, they are read again).
KNOWN_SCOPES_LIMIT = 4096
COUNTER_PREFIX = "stats:"
#: The record naming the current reset of the counters per time bucket.
SERIES_EPOCH_NAME = "stats:epoch"
SERIES_EPOCH_PATTERN = re.compile(rb"[0-9]{1,20}")
LIST_BATCH = 200


class FoundValues(dict[str, bytes]):
    """What :meth:`GenerationalStore._get_many` found, plus the keys whose values it refused
    to fetch for being over :attr:`Store.max_value_bytes` (left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.oversize: set[str] = set()


class GenerationalStore(Store):
    """A :class:`Store` whose ``clear()`` bumps a shared generation counter."""

    def __init__(self) -> None:
        #: The generation last read under each generation key (one key, or one per node).
        self._generations: dict[str, bytes | None] = {}

    # Primitives the concrete store maps onto its client (server keys, not names).
    @abstractmethod
    def key(self, name: str) -> str:
        """Return the server key for ``name``."""

    @abstractmethod
    def _get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Fetch ``keys`` in one round trip; absent keys are left out."""

    @abstractmethod
    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` under ``key``."""

    @abstractmethod
    def _add(self, key: str, value: bytes) -> bool:
        """Store ``value`` under ``key`` (no expiry) unless the key exists; whether it did."""

    @abstractmethod
    def _incr(self, key: str, amount: int = 1) -> int | None:
        """Atomically add ``amount`` to the integer at ``key``; ``None`` when it is missing."""

    @abstractmethod
    def _delete(self, key: str) -> bool:
        """Delete ``key``."""

    @abstractmethod
    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run the blocking ``function(*args)`` off the event loop."""

    def _list_names(self) -> Iterator[str]:
        """Yield the name of every key under the namespace (where :attr:`can_list`)."""
        raise NotImplementedError(f"{self.describe()} cannot list its entries")

    @property
    def generation_key(self) -> str:
        """The server key of the namespace's generation counter."""
        return self.key(GENERATION_NAME)

    def generation_key_of(self, key: str) -> str:
        """The generation counter that tags the entry at server key ``key``."""
        return self.generation_key

    def scope_generation_key(self, name: str) -> str | None:
        """The server key of the generation counter of the scope entry ``name`` is in, if any."""
        tag = scope_tag_of(name)
        return None if tag is None else self.key(SCOPE_GENERATION_PREFIX + tag)

    def get(self, name: str) -> bytes | None:
        key = self.key(name)
        generation_key, scope_key = self.generation_key_of(key), self.scope_generation_key(name)
        found = self._get_many([generation_key, key] if scope_key is None else [generation_key, scope_key, key])
        generation = self._checked_generation(generation_key, found.get(generation_key))
        self._generations[generation_key] = generation
        if scope_key is not None:
            generation = self._scoped(generation, scope_key, found.get(scope_key))
        if isinstance(found, FoundValues) and key in found.oversize:
            raise OversizeValueError(f"the value under {key!r} is over the {self.max_value_bytes}-byte limit; not read")
        return _untag(found.get(key), generation)

    def set(self, name: str, value: bytes, ttl: float | None) -> None:
        key = self.key(name)
        self._set(key, self._write_tag(name, key) + b":" + value, ttl)

    def _write_tag(self, name: str, key: str) -> bytes:
        """The generation an entry written now under ``name`` (at server key ``key``) is tagged
        with: the namespace's, and its scope's after a dot."""
        generation_key, scope_key = self.generation_key_of(key), self.scope_generation_key(name)
        generation = self._generations.get(generation_key) or self._current_generation(generation_key)
        if scope_key is not None:
            generation += b"." + (self._generations.get(scope_key) or self._current_scope_generation(scope_key))
        return generation

    def clear_scope(self, tag: str) -> int | None:
        scope_key = self.key(SCOPE_GENERATION_PREFIX + tag)
        if self._ours(self._incr, scope_key) is None:
            self._start_scope_generation(scope_key)  # none there: whatever was tagged before is unreadable
        self._generations.pop(scope_key, None)
        if not self.can_list:
            return None
        prefix = f"{tag}."
        return sum(self._delete(self.key(name)) for name in list(self._list_names()) if name.startswith(prefix))

    async def aclear_scope(self, tag: str) -> int | None:
        return await self._in_thread(self.clear_scope, tag)

    def _scoped(self, generation: bytes | None, scope_key: str, stored: bytes | str | None) -> bytes | None:
        """The tag of an entry of the scope counted at ``scope_key``, in ``generation``
        (``None``: none can be read, the scope never written or its counter lost)."""
        scope_generation = _valid_generation(stored)
        if scope_generation is None:
            if stored is not None:
                self._delete(scope_key)  # not a counter of ours: the next write starts a fresh one
            return None
        self._remember(scope_key, scope_generation)
        return None if generation is None else generation + b"." + scope_generation

    def _current_scope_generation(self, scope_key: str) -> bytes:
        scope_generation = _valid_generation(self._get_many([scope_key]).get(scope_key))
        if scope_generation is None:
            return self._start_scope_generation(scope_key)
        self._remember(scope_key, scope_generation)
        return scope_generation

    def _start_scope_generation(self, scope_key: str) -> bytes:
        # Time-based, like the namespace's: never one an evicted or deleted counter held.
        self._add(scope_key, str(time.time_ns()).encode())
        scope_generation = _valid_generation(self._get_many([scope_key]).get(scope_key))
        if scope_generation is None:
            raise RuntimeError(f"{self.describe()}: a scope's generation counter could not be stored")
        self._remember(scope_key, scope_generation)
        return scope_generation

    def _remember(self, scope_key: str, scope_generation: bytes) -> None:
        if len(self._generations) >= KNOWN_SCOPES_LIMIT:
            self._generations.clear()  # one per user: bounded, and read again when needed
        self._generations[scope_key] = scope_generation

    def delete(self, name: str) -> bool:
        return self._delete(self.key(name))

    def clear(self) -> int | None:
        self._next_generation()
        self._generations.clear()
        if not self.can_list:
            return None
        removed = 0
        for name in list(self._list_names()):
            if is_entry_name(name):
                removed += self._delete(self.key(name))
        return removed

    def set_record(self, name: str, value: bytes) -> None:
        self._set(self.key(name), value, None)  # no generation tag: records outlive clear()

    def get_record(self, name: str) -> bytes | None:
        found = self._get_many([self.key(name)]).get(self.key(name))
        return None if found is None else _as_bytes(found)

    async def aget(self, name: str) -> bytes | None:
        return await self._in_thread(self._unless_paused, self.get, name)

    async def aset(self, name: str, value: bytes, ttl: float | None) -> None:
        await self._in_thread(self._unless_paused, self.set, name, value, ttl)

    async def adelete(self, name: str) -> bool:
        return await self._in_thread(self.delete, name)

    async def aclear(self) -> int | None:
        return await self._in_thread(self.clear)

    async def aset_record(self, name: str, value: bytes) -> None:
        await self._in_thread(self._unless_paused, self.set_record, name, value)

    async def aadd_counters(self, deltas: Mapping[str, int]) -> None:
        await self._in_thread(self._unless_paused, self.add_counters, deltas)

    async def areset_counters(self, names: list[str]) -> None:
        await self._in_thread(self.reset_counters, names)

    def _unless_paused(self, function: Callable[..., T], *args: Any) -> T:
        # Checked when a worker thread picks the call up: calls queued behind a server that
        # just went away are dropped instead of each waiting for their timeout.
        self.check_not_paused()
        return function(*args)

    def iter_values(self) -> Iterator[tuple[str, bytes]]:
        names = (name for name in self._list_names() if is_entry_name(name))
        while batch := list(islice(names, LIST_BATCH)):
            yield from self.get_many(batch).items()

    def get_many(self, names: Sequence[str]) -> dict[str, bytes]:
        # The entries and their generation counters (the namespace's, a scope's) in one round trip.
        keys = {name: self.key(name) for name in names}
        generation_keys = {key: self.generation_key_of(key) for key in keys.values()}
        scope_keys = {name: self.scope_generation_key(name) for name in names}
        counters = {*generation_keys.values(), *(key for key in scope_keys.values() if key is not None)}
        found = self._get_many([*counters, *keys.values()])
        generations = {
            generation_key: self._checked_generation(generation_key, found.get(generation_key))
            for generation_key in set(generation_keys.values())
        }
        self._generations.update(generations)
        values = {}
        for name, key in keys.items():
            generation, scope_key = generations[generation_keys[key]], scope_keys[name]
            if scope_key is not None:
                generation = self._scoped(generation, scope_key, found.get(scope_key))
            values[name] = _untag(found.get(key), generation)
        # A value longer than any we write is not ours (where the backend cannot refuse it unread).
        return {
            name: value for name, value in values.items() if value is not None and len(value) <= self.max_value_bytes
        }

    def set_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        tagged: dict[str, bytes] = {}
        for name, value in values.items():
            key = self.key(name)
            tagged[key] = self._write_tag(name, key) + b":" + value
        self._set_many(tagged, ttl)

    def _set_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        """Store every ``key: value`` of ``values`` (one round trip where the client can)."""
        for key, value in values.items():
            self._set(key, value, ttl)

    async def aget_many(self, names: Sequence[str]) -> dict[str, bytes]:
        return await self._in_thread(self._unless_paused, self.get_many, names)

    async def aset_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        await self._in_thread(self._unless_paused, self.set_many, values, ttl)

    def _nest(self, part: str) -> None:
        self._generations = {}

    def add_counters(self, deltas: Mapping[str, int]) -> None:
        for counter, amount in deltas.items():
            key = self.key(COUNTER_PREFIX + counter)
            if self._ours(self._incr, key, amount) is None and not self._add(key, str(amount).encode()):
                self._incr(key, amount)  # another process created it first

    def read_counters(self, names: list[str]) -> dict[str, int]:
        found = self._get_many([self.key(COUNTER_PREFIX + name) for name in names])
        return {name: _as_count(found.get(self.key(COUNTER_PREFIX + name))) for name in names}

    def reset_counters(self, names: list[str]) -> None:
        for name in names:
            self._delete(self.key(COUNTER_PREFIX + name))

    keeps_series = True

    def bucket_key(self, bucket: str, counter: str, epoch: str) -> str:
        """The server key of ``counter`` in the time bucket ``bucket`` since the reset ``epoch``
        (it expires on its own)."""
        return self.key(f"{COUNTER_PREFIX}{epoch}:{bucket}:{counter}")

    def series_epoch(self) -> str:
        """Which reset of the bucket counters is current: a reset starts new keys (the server
        cannot delete keys it cannot name, such as other models' token counts)."""
        stored = self.get_record(SERIES_EPOCH_NAME)
        return stored.decode() if stored is not None and SERIES_EPOCH_PATTERN.fullmatch(stored) else "0"

    def add_bucket_counters(self, buckets: Mapping[str, float], deltas: Mapping[str, int]) -> None:
        epoch = self.series_epoch()
        for bucket, expires_at in buckets.items():
            ttl = max(1.0, expires_at - time.time())
            for counter, amount in deltas.items():
                key = self.bucket_key(bucket, counter, epoch)
                if self._ours(self._incr, key, amount) is None and not self._add_expiring(
                    key, str(amount).encode(), ttl
                ):
                    self._incr(key, amount)  # another process created it first

    async def aadd_bucket_counters(self, buckets: Mapping[str, float], deltas: Mapping[str, int]) -> None:
        await self._in_thread(self._unless_paused, self.add_bucket_counters, buckets, deltas)

    def read_bucket_counters(self, buckets: list[str], names: list[str]) -> dict[str, dict[str, int]]:
        epoch = self.series_epoch()
        keys = {(bucket, name): self.bucket_key(bucket, name, epoch) for bucket in buckets for name in names}
        found = self._get_many(list(keys.values()))
        return {bucket: {name: _as_count(found.get(keys[bucket, name])) for name in names} for bucket in buckets}

    def reset_bucket_counters(self, buckets: list[str]) -> None:
        self.set_record(SERIES_EPOCH_NAME, str(time.time_ns()).encode())  # the old keys expire on their own

    def _next_generation(self) -> None:
        if self._ours(self._incr, self.generation_key) is None:
            self._start_generation()

    def _ours(self, function: Callable[..., T], key: str, *args: Any) -> T | None:
        """``function(key, *args)``; a foreign value under our bookkeeping ``key`` (another
        program's, a corrupt row) is deleted and reads as missing, never as an outage."""
        try:
            return function(key, *args)
        except Exception as exc:
            if self.is_outage(exc):
                raise
        self._delete(key)
        return None

    def _checked_generation(self, generation_key: str, stored: bytes | str | None) -> bytes | None:
        """The generation ``stored`` under ``generation_key`` as it tags entries (``None``: none).

        Only a plain decimal counter is one: anything else there (another program's value, one
        with our ``:`` separator in it, which no tag could ever match) is deleted, so the next
        write starts a fresh generation instead of every lookup missing for good.
        """
        if stored is None:
            return None
        generation = _as_bytes(stored)
        if GENERATION_PATTERN.fullmatch(generation):
            return generation
        self._delete(generation_key)
        return None

    def _current_generation(self, generation_key: str | None = None) -> bytes:
        generation_key = generation_key or self.generation_key
        found = self._get_many([generation_key]).get(generation_key)
        generation = self._checked_generation(generation_key, found)
        if generation is None:
            return self._start_generation(generation_key)
        self._generations[generation_key] = generation
        return generation

    def _first_generation(self) -> bytes:
        """The value a missing generation counter starts from."""
        # A fresh, time-based start can never equal a generation an evicted counter held.
        return str(time.time_ns()).encode()

    def _start_generation(self, generation_key: str | None = None) -> bytes:
        generation_key = generation_key or self.generation_key
        self._add(generation_key, self._first_generation())
        found = self._get_many([generation_key]).get(generation_key)
        generation = self._checked_generation(generation_key, found)
        if generation is None:
            raise RuntimeError(f"{self.describe()}: the generation counter could not be stored")
        self._generations[generation_key] = generation
        return generation

    # Single-flight leases, untagged (a lease is not an entry, and outlives clear()).

    def _add_expiring(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds unless the key exists; whether it did."""
        raise NotImplementedError(f"{self.describe()} cannot take leases")

    def add_lease(self, name: str, token: bytes, ttl: float) -> bool:
        return self._add_expiring(self.key(name), token, ttl)

    def read_lease(self, name: str) -> bytes | None:
        found = self._get_many([self.key(name)]).get(self.key(name))
        return None if found is None else _as_bytes(found)

    def end_lease(self, name: str, done_ttl: float | None) -> None:
        if done_ttl is None:
            self._delete(self.key(name))
        else:
            self._set(self.key(name), LEASE_DONE, done_ttl)

    async def aadd_lease(self, name: str, token: bytes, ttl: float) -> bool:
        return await self._in_thread(self.add_lease, name, token, ttl)

    async def aread_lease(self, name: str) -> bytes | None:
        return await self._in_thread(self.read_lease, name)

    async def aend_lease(self, name: str, done_ttl: float | None) -> None:
        await self._in_thread(self.end_lease, name, done_ttl)


def _untag(stored: bytes | str | None, generation: bytes | None) -> bytes | None:
    """The value inside ``b"<generation>:" + value``, or ``None`` if absent or from another generation."""
    if stored is None or generation is None:
        return None
    tag, _, value = _as_bytes(stored).partition(b":")
    return value if tag == generation else None


def _valid_generation(stored: bytes | str | None) -> bytes | None:
    """``stored`` if it is a generation counter (a plain decimal number), else ``None``."""
    if stored is None:
        return None
    generation = _as_bytes(stored)
    return generation if GENERATION_PATTERN.fullmatch(generation) else None


def _as_count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0  # not a counter of ours: it reads as zero, and the next flush replaces it


def _as_bytes(value: bytes | str | int) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()
