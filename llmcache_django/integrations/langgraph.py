"""LangGraph node caching on any ``LLM_CACHES`` alias: ``graph.compile(cache=LangGraphCache())``.

Needs the ``[langgraph]`` extra; nothing else in the package imports LangGraph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import TypeVar

from langgraph.cache.base import BaseCache, FullKey, Namespace
from langgraph.checkpoint.serde.base import SerializerProtocol

from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.node_entries import KIND, decode_envelope, encode_envelope, entry_name, namespace_of
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
        names = {entry_name(key): key for key in keys}
        found = self.side.attempt("lookup", self.side.store.get_many, list(names)) if names else {}
        values = self._read(names, found)
        self.side.flush_due_stats()
        return values

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """Async :meth:`get`."""
        names = {entry_name(key): key for key in keys}
        found = await self.side.aattempt("lookup", self.side.store.aget_many, list(names)) if names else {}
        values = self._read(names, found)
        await self.side.aflush_due_stats()
        return values

    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Store each value for its TTL in seconds (``None``: the alias's TTL)."""
        for ttl, values in self._batches(pairs):
            if self.side.write(self.side.store.set_many, values, ttl):
                self.side.count("writes", len(values))
        self.side.flush_due_stats()

    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Async :meth:`set`."""
        for ttl, values in self._batches(pairs):
            if await self.side.awrite(self.side.store.aset_many, values, ttl):
                self.side.count("writes", len(values))
        await self.side.aflush_due_stats()

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

    def _read(self, names: Mapping[str, FullKey], found: Mapping[str, bytes] | None) -> dict[FullKey, ValueT]:
        values: dict[FullKey, ValueT] = {}
        for name, key in names.items():
            value = (found or {}).get(name)
            if value is None:
                self.side.count("misses")
                continue
            try:
                values[key] = self._decode(key, value)
            except Exception as exc:  # whatever is under our key, the node just runs
                self.side.count("errors")
                self.side.count("misses")
                self.side.errors.report("reading a node entry", exc)
                continue
            if self.side.stats is not None:
                self.side.stats.hit(len(value), [], None)
        return values

    def _decode(self, key: FullKey, value: bytes) -> ValueT:
        header, payload = decode_envelope(value)
        if header.get("ns") != list(key[0]) or header.get("key") != key[1]:
            raise ValueError("stored node entry belongs to another key")
        type_ = header.get("type")
        if not isinstance(type_, str) or type_ in REFUSED_TYPES:
            raise ValueError(f"stored node entry has serde type {type_!r}, which is never read")
        return self.serde.loads_typed((type_, payload))  # type: ignore[no-any-return]

    def _batches(
        self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]
    ) -> list[tuple[float | None, dict[str, bytes]]]:
        """The encoded entries grouped by TTL (entries whose TTL caches nothing left out)."""
        encoded: list[tuple[float | None, str, bytes]] = []
        for key, (value, ttl) in pairs.items():
            seconds = self.side.ttl if ttl is None else ttl
            if seconds is not None and seconds <= 0:
                continue  # TTL 0 means "do not cache", as Django's TIMEOUT 0 does
            try:
                encoded.append((seconds, entry_name(key), self._encode(key, value, seconds)))
            except Exception as exc:
                self.side.failed("encoding a node entry", exc)
        encoded.sort(key=lambda item: (item[0] is None, item[0] or 0))
        batches = []
        for ttl, group in groupby(encoded, key=lambda item: item[0]):
            batches.append((ttl, {name: value for _ttl, name, value in group}))
        return batches

    def _encode(self, key: FullKey, value: ValueT, ttl: float | None) -> bytes:
        type_, payload = self.serde.dumps_typed(value)
        return encode_envelope(key[0], key[1], type_, payload, ttl)
