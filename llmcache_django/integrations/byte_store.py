"""A LangChain ``ByteStore`` on any ``LLM_CACHES`` alias, for ``CacheBackedEmbeddings`` and the like."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from hashlib import sha256

from asgiref.sync import sync_to_async
from langchain_core.stores import BaseStore

from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.side_cache import SideCache, SideCacheBinding

#: The sub-namespace of the LLM cache's store that byte-store values live in.
KIND = "bytes"
_NAME_TAG = b"llmcache-bytes-v1\x00"
_KEY_LENGTH = struct.Struct("<I")


class CacheByteStore(BaseStore[str, bytes]):
    """``langchain_core.stores.BaseStore[str, bytes]`` on an alias: ``mget``/``mset`` in one
    round trip where the store can, values for the alias's TTL, ``yield_keys(prefix=...)``
    where the store can list its entries. Server errors read as missing values and skipped
    writes (logged and counted), as everywhere in the cache.
    """

    def __init__(self, alias: str | None = None, *, cache: LLMCache | None = None) -> None:
        self._binding = SideCacheBinding(KIND, alias, cache)

    @property
    def side(self) -> SideCache:
        """Where the values are: beside the alias's current LLM cache (or the given cache)."""
        return self._binding()

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` (``None`` for those not stored)."""
        names = [key_name(key) for key in keys]
        found = self.side.attempt("lookup", self.side.store.get_many, list(dict.fromkeys(names))) if names else {}
        return self._values(keys, names, found or {})

    async def amget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Async :meth:`mget`."""
        names = [key_name(key) for key in keys]
        found = (
            await self.side.aattempt("lookup", self.side.store.aget_many, list(dict.fromkeys(names))) if names else {}
        )
        return self._values(keys, names, found or {})

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """Store each ``(key, value)``."""
        values = self._encoded(key_value_pairs)
        if values and not self.side.caches_nothing and self.side.write(self.side.store.set_many, values, self.side.ttl):
            self.side.count("writes", len(values))

    async def amset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """Async :meth:`mset`."""
        values = self._encoded(key_value_pairs)
        if (
            values
            and not self.side.caches_nothing
            and await self.side.awrite(self.side.store.aset_many, values, self.side.ttl)
        ):
            self.side.count("writes", len(values))

    def mdelete(self, keys: Sequence[str]) -> None:
        """Remove ``keys``; raises when the server cannot be reached."""
        for key in keys:
            self.side.store.delete(key_name(key))

    async def amdelete(self, keys: Sequence[str]) -> None:
        """Async :meth:`mdelete`."""
        for key in keys:
            await self.side.store.adelete(key_name(key))

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Every stored key (starting with ``prefix``), where the store can list its entries."""
        for _name, value in self.side.store.iter_values():
            try:
                key, _value = decode_value(value)
            except ValueError:
                continue
            if prefix is None or key.startswith(prefix):
                yield key

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Async :meth:`yield_keys` (listing runs in a worker thread)."""
        for key in await sync_to_async(lambda: list(self.yield_keys(prefix=prefix)))():
            yield key

    def clear(self) -> int | None:
        """Remove every value of this alias's byte store, and nothing else."""
        return self.side.clear()

    def _values(self, keys: Sequence[str], names: list[str], found: dict[str, bytes]) -> list[bytes | None]:
        values: list[bytes | None] = []
        for key, name in zip(keys, names, strict=True):
            value = found.get(name)
            if value is not None:
                try:
                    stored_key, value = decode_value(value)
                    if stored_key != key:
                        raise ValueError("the stored value belongs to another key")
                except ValueError as exc:
                    self.side.count("errors")
                    self.side.errors.report("reading a stored value", exc)
                    value = None
            self.side.count("misses" if value is None else "hits")
            values.append(value)
        self.side.flush_due_stats()
        return values

    def _encoded(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
        encoded = {}
        for key, value in key_value_pairs:
            if not isinstance(value, bytes):
                raise TypeError(f"the value of {key!r} is a {type(value).__name__}, not bytes")
            encoded[key_name(key)] = encode_value(key, value)
        return encoded


def key_name(key: str) -> str:
    """The entry name of a byte-store key: a SHA-256 hex digest."""
    if not isinstance(key, str):
        raise TypeError(f"a byte-store key is a str, not {type(key).__name__}")
    return sha256(_NAME_TAG + key.encode("utf-8", "surrogatepass")).hexdigest()


def encode_value(key: str, value: bytes) -> bytes:
    """``value`` behind its key (length-prefixed), so a read can tell it is the key's."""
    encoded_key = key.encode("utf-8", "surrogatepass")
    return _KEY_LENGTH.pack(len(encoded_key)) + encoded_key + value


def decode_value(stored: bytes) -> tuple[str, bytes]:
    """The key and value packed by :func:`encode_value`; ``ValueError`` for anything else."""
    if len(stored) < _KEY_LENGTH.size:
        raise ValueError("not a byte-store value")
    (length,) = _KEY_LENGTH.unpack_from(stored)
    end = _KEY_LENGTH.size + length
    if end > len(stored):
        raise ValueError("not a byte-store value")
    return stored[_KEY_LENGTH.size : end].decode("utf-8", "surrogatepass"), stored[end:]
