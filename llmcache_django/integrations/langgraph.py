"""LangGraph node caching on any ``LLM_CACHES`` alias: ``graph.compile(cache=LangGraphCache())``.

Needs the ``[langgraph]`` extra; nothing else in the package imports LangGraph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from langgraph.cache.base import BaseCache, FullKey, Namespace
from langgraph.checkpoint.serde.base import SerializerProtocol

from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.node_entries import (
    KIND,
    decode_envelope,
    encode_envelope,
    entry_name,
    header_start,
    namespace_of,
    typed_payload,
)
from llmcache_django.integrations.side_cache import SideCache, SideCacheBinding

ValueT = TypeVar("ValueT")
#: Serde types never read back: LangGraph's pickle fallback would unpickle what it reads.
REFUSED_TYPES = frozenset({"pickle"})


class LangGraphCache(BaseCache[ValueT]):
    """A ``langgraph.cache.base.BaseCache`` on an ``LLM_CACHES`` alias (or one of our caches).

    Node entries live beside the alias's LLM entries, in their own sub-namespace: neither
    ``clear()`` touches the other's. Many keys are read and written in one round trip where
    the store can; a pair's TTL of ``None`` means the alias's TTL. Values go through
    LangGraph's serde (by default without pickle) and are never unpickled on read. A server
    error is logged, counted and a miss or a skipped write, as for the LLM cache. Built with
    an alias, it follows that alias's settings when they change (as ``llm_caches`` does).
    """

    def __init__(
        self, alias: str | None = None, *, cache: LLMCache | None = None, serde: SerializerProtocol | None = None
    ) -> None:
        super().__init__(serde=serde)
        self._binding = SideCacheBinding(KIND, alias, cache)

    @property
    def side(self) -> SideCache:
        """Where the node entries are: beside the alias's current LLM cache (or the given cache)."""
        return self._binding()

    def __repr__(self) -> str:
        return f"<LangGraphCache alias={self.side.llm_cache.alias!r} {self.side.store.describe()}>"

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """The cached values of ``keys`` (those missing are left out), in one round trip."""
        side = self.side
        names = {entry_name(key): key for key in keys}
        found = side.attempt("lookup", side.store.get_many, list(names)) if names else {}
        values = self._read(side, names, found)
        side.flush_due_stats()
        return values

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """Async :meth:`get`."""
        side = self.side
        names = {entry_name(key): key for key in keys}
        found = await side.aattempt("lookup", side.store.aget_many, list(names)) if names else {}
        values = self._read(side, names, found)
        await side.aflush_due_stats()
        return values

    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Store each value for its TTL in seconds (``None``: the alias's TTL)."""
        side = self.side
        for ttl, values in self._batches(side, pairs).items():
            if side.write(side.store.set_many, values, ttl):
                side.count("writes", len(values))
        side.flush_due_stats()

    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Async :meth:`set`."""
        side = self.side
        for ttl, values in self._batches(side, pairs).items():
            if await side.awrite(side.store.aset_many, values, ttl):
                side.count("writes", len(values))
        await side.aflush_due_stats()

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Remove the entries of ``namespaces`` (every node entry of this cache when ``None``), and
        nothing else; raises when the server cannot be reached, so nothing is silently left."""
        self.clear_entries(namespaces)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Async :meth:`clear`."""
        from asgiref.sync import sync_to_async

        await sync_to_async(self.clear_entries, thread_sensitive=True)(namespaces)

    def clear_entries(
        self, namespaces: Sequence[Namespace] | None = None, *, nodes: Sequence[str] = (), dry_run: bool = False
    ) -> int | None:
        """:meth:`clear`, returning how many entries went (``None`` where unknown); ``nodes``
        also selects every namespace ending in one of these node names.

        Clearing some namespaces lists this cache's entries, which every store but Django's
        file and third-party caches can do; there, clear them all instead.
        """
        if namespaces is None and not nodes:
            return self.side.clear(dry_run=dry_run)
        wanted = {tuple(namespace) for namespace in namespaces or ()}
        names = set(nodes)

        def selected(value: bytes) -> bool:
            namespace = namespace_of(value)
            return namespace is not None and (namespace in wanted or (bool(namespace) and namespace[-1] in names))

        return self.side.delete_where(selected, dry_run=dry_run)

    def _read(
        self, side: SideCache, names: Mapping[str, FullKey], found: Mapping[str, bytes] | None
    ) -> dict[FullKey, ValueT]:
        values: dict[FullKey, ValueT] = {}
        served = 0
        for name, value in (found or {}).items():
            key = names.get(name)
            if key is None:  # not asked for (no store answers so; never let it reach the graph)
                continue
            try:
                values[key] = self._decode(key, value)
            except Exception as exc:  # whatever is under our key, the node just runs
                side.count("errors")
                side.errors.report("reading a node entry", exc)
                continue
            served += len(value)
        side.count("hits", len(values))
        side.count("bytes_served", served)
        side.count("misses", len(names) - len(values))
        return values

    def _decode(self, key: FullKey, value: bytes) -> ValueT:
        typed = typed_payload(value, header_start(*key))
        type_, payload = typed if typed is not None else _typed_payload_in_full(key, value)
        if not isinstance(type_, str) or type_ in REFUSED_TYPES:
            raise ValueError(f"stored node entry has serde type {type_!r}, which is never read")
        return self.serde.loads_typed((type_, payload))  # type: ignore[no-any-return]

    def _batches(
        self, side: SideCache, pairs: Mapping[FullKey, tuple[ValueT, int | None]]
    ) -> dict[float | None, dict[str, bytes]]:
        """The encoded entries by TTL (entries whose TTL caches nothing left out)."""
        batches: dict[float | None, dict[str, bytes]] = {}
        for key, (value, ttl) in pairs.items():
            seconds = side.ttl if ttl is None else ttl
            if seconds is not None and seconds <= 0:
                continue  # TTL 0 means "do not cache", as Django's TIMEOUT 0 does
            try:
                batches.setdefault(seconds, {})[entry_name(key)] = self._encode(key, value, seconds)
            except Exception as exc:
                side.failed("encoding a node entry", exc)
        return batches

    def _encode(self, key: FullKey, value: ValueT, ttl: float | None) -> bytes:
        type_, payload = self.serde.dumps_typed(value)
        return encode_envelope(key[0], key[1], type_, payload, ttl)


def _typed_payload_in_full(key: FullKey, value: bytes) -> tuple[object, bytes]:
    """The serde type and payload of a node entry whose header is not this key's as we write it
    (parsed in full, so a foreign or planted value says what it is)."""
    header, payload = decode_envelope(value)
    if header.get("ns") != list(key[0]) or header.get("key") != key[1]:
        raise ValueError("stored node entry belongs to another key")
    return header.get("type"), payload
