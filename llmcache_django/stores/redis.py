"""Entries on Redis through redis-py, sync and async."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import redis
import redis.asyncio

from llmcache_django.stores.base import (
    DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_SERVER_TIMEOUT,
    LEASE_DONE,
    Store,
    is_entry_name,
)
from llmcache_django.stores.redis_clients import derive_client, family_of, is_bounded
from llmcache_django.stores.redis_loops import LoopClients
from llmcache_django.stores.redis_scopes import RedisScopeRanking

#: A bounded read in one round trip: the value's first ARGV[1] + 1 bytes, or nil when there is
#: no key (GETRANGE alone reads a missing key as empty, which would take an EXISTS more).
READ_SCRIPT = (
    "local value = redis.call('GETRANGE', KEYS[1], 0, ARGV[1]) "
    "if value == '' and redis.call('EXISTS', KEYS[1]) == 0 then return false end "
    "return value"
)
READ_SHA = hashlib.sha1(READ_SCRIPT.encode()).hexdigest()
#: Many bounded reads as one command (one node only: a cluster pipelines them instead); a
#: missing key reads as empty, which no value of ours is.
READ_MANY_SCRIPT = (
    "local values = {} "
    "for i, key in ipairs(KEYS) do values[i] = redis.call('GETRANGE', key, 0, ARGV[1]) end "
    "return values"
)
READ_MANY_SHA = hashlib.sha1(READ_MANY_SCRIPT.encode()).hexdigest()
#: Many writes as one command (one node only), each for ARGV[1] milliseconds ('' for none):
#: one command to pack and one reply to parse, where a pipeline has one of each per key.
WRITE_MANY_SCRIPT = (
    "local ttl = ARGV[1] "
    "for i, key in ipairs(KEYS) do "
    "if ttl == '' then redis.call('SET', key, ARGV[i + 1]) else redis.call('SET', key, ARGV[i + 1], 'PX', ttl) end "
    "end "
    "return #KEYS"
)
WRITE_MANY_SHA = hashlib.sha1(WRITE_MANY_SCRIPT.encode()).hexdigest()
#: Keys removed per UNLINK while clearing a namespace, and values read per pipeline when listing.
CLEAR_BATCH = 500
LIST_BATCH = 200


class RedisStore(RedisScopeRanking, Store):
    """Stores each entry as one Redis string under ``prefix + name``.

    Give a sync client, an async client or both. Async calls go through clients made from the
    given one (the async client if given, else the sync one) with every one of its connection
    settings, one per event loop (async connections cannot cross loops), each with at most
    ``async_max_connections`` calls at once: a burst of lookups queues (up to
    ``async_pool_timeout`` seconds) instead of failing with "Too many connections". A loop's
    client is released when the loop shuts down. Sync calls use the given sync client, or one
    made from the async client. Every call is one try of at most ``server_timeout`` seconds to
    connect and as many to answer: where the given client sets no timeout, a longer one, or
    retries (redis-py's ``Redis()`` retries 10 times), the cache uses a copy of it with those
    timeouts and no retries (``None``: the client as given). A dropped pooled connection is
    retried once by the cache itself. A lookup reads at most one byte past
    ``max_value_bytes`` (``GETRANGE``), so an oversize value planted under an entry's key is
    never transferred whole. ``clear()`` SCANs the namespace and UNLINKs what it finds, so the
    memory is reclaimed and nothing else is touched.
    """

    def __init__(
        self,
        prefix: str,
        *,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        async_max_connections: int = 50,
        async_pool_timeout: float = 20.0,
        server_timeout: float | None = DEFAULT_SERVER_TIMEOUT,
        max_value_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        if client is None and async_client is None:
            raise ValueError("RedisStore needs a sync client, an async client or both")
        self.prefix = prefix
        self.max_value_bytes = max_value_bytes
        self._source: Any = async_client if async_client is not None else client
        self._async_max_connections = async_max_connections
        self._server_timeout = server_timeout
        self.client = self._sync_client(client)
        self._new_async_client()  # a setting that cannot be carried fails here, not on first use
        self._loops = LoopClients(self._new_async_client, async_max_connections, async_pool_timeout)
        self.binary_safe = not self._decodes_responses()
        errors = family_of(self._source).exceptions  # redis-py's or valkey-py's
        self.outage_errors = (*self.outage_errors, errors.ConnectionError, errors.TimeoutError)
        self._connection_error: type[Exception] = errors.ConnectionError
        self._no_script: type[Exception] = errors.NoScriptError
        self._response_error: type[Exception] = errors.ResponseError
        #: Whether reads run :data:`READ_SCRIPT` (until the server says it runs no scripts).
        self._scripts = True

    def _sync_client(self, client: redis.Redis | None) -> redis.Redis:
        if client is not None and is_bounded(client, self._server_timeout):
            return client
        return derive_client(  # type: ignore[no-any-return]
            client if client is not None else self._source,
            asynchronous=False,
            server_timeout=self._server_timeout,
            retries=self._server_timeout is None,
        )

    def _new_async_client(self) -> redis.asyncio.Redis:
        return derive_client(  # type: ignore[no-any-return]
            self._source,
            asynchronous=True,
            server_timeout=self._server_timeout,
            max_connections=self._async_max_connections,
            retries=self._server_timeout is None,
        )

    def _decodes_responses(self) -> bool:
        return _decodes_responses(self._source)

    @property
    def async_client(self) -> redis.asyncio.Redis:
        """The async client of the running event loop."""
        return self._loops.get().client  # type: ignore[no-any-return]

    def describe(self) -> str:
        pool = self._source.connection_pool
        kwargs = pool.connection_kwargs
        if getattr(pool, "service_name", None):
            where = f"sentinel service {pool.service_name}"
        else:
            where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        library = family_of(self._source).__name__  # redis or valkey
        return f"{library} {where} db {kwargs.get('db', 0)} (prefix {self.prefix!r})"

    def get(self, name: str) -> bytes | None:
        return self._read(self.client, self.prefix + name)

    def _read(self, client: Any, key: str) -> bytes | None:
        """The value under ``key`` up to one byte past :attr:`max_value_bytes` (the cache
        refuses it then: a longer value is never transferred whole), or ``None``; one round trip."""
        if self._scripts:
            try:
                return client.evalsha(READ_SHA, 1, key, self.max_value_bytes)  # type: ignore[no-any-return]
            except self._no_script:
                return client.eval(READ_SCRIPT, 1, key, self.max_value_bytes)  # type: ignore[no-any-return]
            except self._response_error as exc:
                self._without_scripts(exc)
        value = client.getrange(key, 0, self.max_value_bytes)
        return value if value or client.exists(key) else None  # GETRANGE reads a missing key as empty

    async def _aread(self, client: Any, key: str) -> bytes | None:
        """Async :meth:`_read`."""
        if self._scripts:
            try:
                return await client.evalsha(READ_SHA, 1, key, self.max_value_bytes)  # type: ignore[no-any-return]
            except self._no_script:
                return await client.eval(READ_SCRIPT, 1, key, self.max_value_bytes)  # type: ignore[no-any-return]
            except self._response_error as exc:
                self._without_scripts(exc)
        value = await client.getrange(key, 0, self.max_value_bytes)
        return value if value or await client.exists(key) else None

    def _without_scripts(self, exc: Exception) -> None:
        """A server that runs no Lua (a managed service that disables it) is read with
        ``GETRANGE``, and ``EXISTS`` after an empty answer: a miss takes two round trips there."""
        text = str(exc).lower()
        if "unknown command" not in text and not text.startswith("noperm"):
            raise exc  # about the key (WRONGTYPE ...): a miss for it, as for any read
        self._scripts = False

    def set(self, name: str, value: bytes, ttl: float | None) -> None:
        self.client.set(self.prefix + name, value, px=_milliseconds(ttl))

    def delete(self, name: str) -> bool:
        return bool(self.client.unlink(self.prefix + name))

    def clear(self) -> int | None:
        return self._unlink_matching(self.pattern)

    def clear_scope(self, tag: str) -> int | None:
        return self._unlink_matching(self.scope_pattern(tag))

    def scope_pattern(self, tag: str) -> str:
        """A SCAN ``MATCH`` pattern for exactly the entries of the scope with tag ``tag``."""
        return f"{self.pattern[:-1]}{tag}.*"

    def _unlink_matching(self, pattern: str) -> int:
        """Remove every entry whose key matches ``pattern``; how many went."""
        removed = 0
        for batch in _batches(self._entry_keys(self.client.scan_iter(match=pattern, count=1000)), CLEAR_BATCH):
            removed += self.client.unlink(*batch)  # type: ignore[operator]
        return removed

    can_list = True

    def iter_values(self) -> Iterator[tuple[str, bytes]]:
        keys = self._entry_keys(self.client.scan_iter(match=self.pattern, count=1000))
        for batch in _batches(keys, LIST_BATCH):
            for key, value in zip(batch, self._read_batch(batch), strict=True):
                if 0 < len(value) <= self.max_value_bytes:  # else gone since the SCAN, or not an entry
                    yield _text(key)[len(self.prefix) :], value

    def _read_batch(self, keys: list[bytes | str]) -> list[bytes]:
        """The values under ``keys`` in one round trip, each read as far as :meth:`_read` reads."""
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.getrange(key, 0, self.max_value_bytes)
            return pipe.execute()  # type: ignore[no-any-return]

    #: Whether :meth:`get_many` may run :data:`READ_MANY_SCRIPT` (all keys on one server).
    scripts_many_keys = True

    def get_many(self, names: Sequence[str]) -> dict[str, bytes]:
        if not names:
            return {}
        keys = [self.prefix + name for name in names]
        if len(keys) == 1:  # GETRANGE reads as far as a script would, in one command without Lua
            return self._found(names, [self.client.getrange(keys[0], 0, self.max_value_bytes)])  # type: ignore[list-item]
        if self._scripts and self.scripts_many_keys:
            try:
                try:
                    values = self.client.evalsha(READ_MANY_SHA, len(keys), *keys, self.max_value_bytes)
                except self._no_script:
                    values = self.client.eval(READ_MANY_SCRIPT, len(keys), *keys, self.max_value_bytes)
                return self._found(names, values)  # type: ignore[arg-type]
            except self._response_error as exc:
                self._without_scripts(exc)
        return self._found(names, self._read_batch(keys))  # type: ignore[arg-type]

    async def aget_many(self, names: Sequence[str]) -> dict[str, bytes]:
        if not names:
            return {}
        keys = [self.prefix + name for name in names]
        loop_client = self._loops.get()
        async with loop_client.slots:
            client = loop_client.client
            if len(keys) == 1:
                return self._found(names, [await client.getrange(keys[0], 0, self.max_value_bytes)])
            if self._scripts and self.scripts_many_keys:
                try:
                    try:
                        values = await client.evalsha(READ_MANY_SHA, len(keys), *keys, self.max_value_bytes)
                    except self._no_script:
                        values = await client.eval(READ_MANY_SCRIPT, len(keys), *keys, self.max_value_bytes)
                    return self._found(names, values)
                except self._response_error as exc:
                    self._without_scripts(exc)
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.getrange(key, 0, self.max_value_bytes)
                return self._found(names, await pipe.execute())

    def _found(self, names: Sequence[str], values: Sequence[bytes]) -> dict[str, bytes]:
        # GETRANGE reads a missing key as empty (no entry is empty); a longer value is not ours.
        return {
            name: value for name, value in zip(names, values, strict=True) if 0 < len(value) <= self.max_value_bytes
        }

    def set_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        if len(values) == 1:
            [(name, value)] = values.items()
            self.client.set(self.prefix + name, value, px=_milliseconds(ttl))
            return
        if values and self._scripts and self.scripts_many_keys:
            args = self._write_many_args(values, ttl)
            try:
                try:
                    self.client.evalsha(WRITE_MANY_SHA, len(values), *args)
                except self._no_script:
                    self.client.eval(WRITE_MANY_SCRIPT, len(values), *args)
                return
            except self._response_error as exc:
                self._without_scripts(exc)
        with self.client.pipeline(transaction=False) as pipe:
            for name, value in values.items():
                pipe.set(self.prefix + name, value, px=_milliseconds(ttl))
            pipe.execute()

    async def aset_many(self, values: Mapping[str, bytes], ttl: float | None) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots:
            client = loop_client.client
            if len(values) == 1:
                [(name, value)] = values.items()
                await client.set(self.prefix + name, value, px=_milliseconds(ttl))
                return
            if values and self._scripts and self.scripts_many_keys:
                args = self._write_many_args(values, ttl)
                try:
                    try:
                        await client.evalsha(WRITE_MANY_SHA, len(values), *args)
                    except self._no_script:
                        await client.eval(WRITE_MANY_SCRIPT, len(values), *args)
                    return
                except self._response_error as exc:
                    self._without_scripts(exc)
            async with client.pipeline(transaction=False) as pipe:
                for name, value in values.items():
                    pipe.set(self.prefix + name, value, px=_milliseconds(ttl))
                await pipe.execute()

    def _write_many_args(self, values: Mapping[str, bytes], ttl: float | None) -> list[str | bytes | int]:
        """:data:`WRITE_MANY_SCRIPT`'s keys, then its arguments: the TTL, then the values."""
        milliseconds = _milliseconds(ttl)
        return [
            *(self.prefix + name for name in values),
            "" if milliseconds is None else milliseconds,
            *values.values(),
        ]

    def _nest(self, part: str) -> None:
        self.prefix += f"{part}:"

    def set_record(self, name: str, value: bytes) -> None:
        self.client.set(self.prefix + name, value)

    async def aset_record(self, name: str, value: bytes) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots:
            await loop_client.client.set(self.prefix + name, value)

    def get_record(self, name: str) -> bytes | None:
        return self._read(self.client, self.prefix + name)

    @property
    def counters_key(self) -> str:
        """The hash holding the namespace's shared counters (kept by ``clear()``)."""
        return self.prefix + "stats"

    def add_counters(self, deltas: Mapping[str, int]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for counter, amount in deltas.items():
                pipe.hincrby(self.counters_key, counter, amount)
            pipe.execute()

    async def aadd_counters(self, deltas: Mapping[str, int]) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots, loop_client.client.pipeline(transaction=False) as pipe:
            for counter, amount in deltas.items():
                pipe.hincrby(self.counters_key, counter, amount)
            await pipe.execute()

    def read_counters(self, names: list[str]) -> dict[str, int]:
        values = self.client.hmget(self.counters_key, names)
        return {name: _as_count(value) for name, value in zip(names, values, strict=True)}  # type: ignore[arg-type]

    def reset_counters(self, names: list[str]) -> None:
        try:
            self.client.hdel(self.counters_key, *names)
        except self._response_error:  # not a hash: another program's value, ours to replace
            self.client.unlink(self.counters_key)

    async def areset_counters(self, names: list[str]) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots:
            try:
                await loop_client.client.hdel(self.counters_key, *names)
            except self._response_error:  # not a hash: another program's value, ours to replace
                await loop_client.client.unlink(self.counters_key)

    keeps_series = True

    def bucket_key(self, bucket: str) -> str:
        """The hash holding the counters of the time bucket ``bucket`` (it expires on its own)."""
        return self.prefix + "stats:" + bucket

    def add_bucket_counters(self, buckets: Mapping[str, float], deltas: Mapping[str, int]) -> None:
        try:
            self._add_to_buckets(buckets, deltas)
        except self._response_error:  # not a hash: another program's value, ours to replace
            self.client.unlink(*(self.bucket_key(bucket) for bucket in buckets))
            self._add_to_buckets(buckets, deltas)

    def _add_to_buckets(self, buckets: Mapping[str, float], deltas: Mapping[str, int]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            _queue_bucket_adds(pipe, {self.bucket_key(bucket): at for bucket, at in buckets.items()}, deltas)
            pipe.execute()

    async def aadd_bucket_counters(self, buckets: Mapping[str, float], deltas: Mapping[str, int]) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots, loop_client.client.pipeline(transaction=False) as pipe:
            _queue_bucket_adds(pipe, {self.bucket_key(bucket): at for bucket, at in buckets.items()}, deltas)
            await pipe.execute()

    def read_bucket_counters(self, buckets: list[str], names: list[str]) -> dict[str, dict[str, int]]:
        with self.client.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.hmget(self.bucket_key(bucket), names)
            found = pipe.execute(raise_on_error=False)
        return {
            bucket: {
                name: 0 if isinstance(values, Exception) else _as_count(value)
                for name, value in zip(
                    names, values if not isinstance(values, Exception) else [None] * len(names), strict=True
                )
            }
            for bucket, values in zip(buckets, found, strict=True)
        }

    def reset_bucket_counters(self, buckets: list[str]) -> None:
        self.client.unlink(*(self.bucket_key(bucket) for bucket in buckets))

    def _entry_keys(self, keys: Iterable[bytes | str]) -> Iterator[bytes | str]:
        start = len(self.prefix)
        return (key for key in keys if is_entry_name(_text(key)[start:]))

    async def aget(self, name: str) -> bytes | None:
        loop_client = self._loops.get()
        async with loop_client.slots:
            return await self._aread(loop_client.client, self.prefix + name)

    async def aset(self, name: str, value: bytes, ttl: float | None) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots:
            await loop_client.client.set(self.prefix + name, value, px=_milliseconds(ttl))

    async def adelete(self, name: str) -> bool:
        loop_client = self._loops.get()
        async with loop_client.slots:
            return bool(await loop_client.client.unlink(self.prefix + name))

    async def aclear(self) -> int | None:
        return await self._aunlink_matching(self.pattern)

    async def aclear_scope(self, tag: str) -> int | None:
        return await self._aunlink_matching(self.scope_pattern(tag))

    async def _aunlink_matching(self, pattern: str) -> int:
        """Async :meth:`_unlink_matching`."""
        client, removed, batch = self.async_client, 0, []
        async for key in client.scan_iter(match=pattern, count=1000):
            if is_entry_name(_text(key)[len(self.prefix) :]):
                batch.append(key)
            if len(batch) >= CLEAR_BATCH:
                removed += await client.unlink(*batch)
                batch = []
        if batch:
            removed += await client.unlink(*batch)
        return removed

    def is_stale_connection(self, exc: BaseException) -> bool:
        # redis-py reports a dropped pooled connection as a ConnectionError raised outside connect().
        return super().is_stale_connection(exc) or (
            isinstance(exc, self._connection_error) and "connecting to" not in str(exc)
        )

    @property
    def pattern(self) -> str:
        """A SCAN ``MATCH`` pattern for exactly the keys under ``prefix``."""
        return "".join("\\" + char if char in "*?[]\\" else char for char in self.prefix) + "*"

    can_lease = True

    def add_lease(self, name: str, token: bytes, ttl: float) -> bool:
        return bool(self.client.set(self.prefix + name, token, nx=True, px=_milliseconds(ttl)))

    def read_lease(self, name: str) -> bytes | None:
        return self._read(self.client, self.prefix + name)  # on the lookup path too: bounded

    def end_lease(self, name: str, done_ttl: float | None) -> None:
        if done_ttl is None:
            self.client.unlink(self.prefix + name)
        else:
            self.client.set(self.prefix + name, LEASE_DONE, px=_milliseconds(done_ttl))

    def set_ending_lease(self, name: str, value: bytes, ttl: float | None, lease: str, done_ttl: float) -> None:
        with self.client.pipeline(transaction=False) as pipe:  # one round trip; the entry is written first
            pipe.set(self.prefix + name, value, px=_milliseconds(ttl))
            pipe.set(self.prefix + lease, LEASE_DONE, px=_milliseconds(done_ttl))
            pipe.execute()

    async def aset_ending_lease(self, name: str, value: bytes, ttl: float | None, lease: str, done_ttl: float) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots, loop_client.client.pipeline(transaction=False) as pipe:
            pipe.set(self.prefix + name, value, px=_milliseconds(ttl))
            pipe.set(self.prefix + lease, LEASE_DONE, px=_milliseconds(done_ttl))
            await pipe.execute()

    async def aadd_lease(self, name: str, token: bytes, ttl: float) -> bool:
        loop_client = self._loops.get()
        async with loop_client.slots:
            return bool(await loop_client.client.set(self.prefix + name, token, nx=True, px=_milliseconds(ttl)))

    async def aread_lease(self, name: str) -> bytes | None:
        return await self.aget(name)

    async def aend_lease(self, name: str, done_ttl: float | None) -> None:
        if done_ttl is None:
            await self.adelete(name)
        else:
            await self.aset(name, LEASE_DONE, done_ttl)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _as_count(value: bytes | str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0  # not a counter of ours: it reads as zero, and the next flush replaces it


def _queue_bucket_adds(pipe: Any, keys: Mapping[str, float], deltas: Mapping[str, int]) -> None:
    # One round trip for every bucket: HINCRBY each counter, then EXPIREAT the bucket's end.
    for key, expires_at in keys.items():
        for counter, amount in deltas.items():
            pipe.hincrby(key, counter, amount)
        pipe.expireat(key, int(expires_at))


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def _milliseconds(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, round(ttl * 1000))


def _decodes_responses(client: Any) -> bool:
    return bool(client.connection_pool.connection_kwargs.get("decode_responses"))
