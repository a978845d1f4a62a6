"""Hits per scope: which tenants or users the cache serves most, in a bounded shared ranking.

Each process tallies its hits per scope in memory (:class:`~llmcache_django.core.stats.Stats`,
at most :data:`~llmcache_django.core.stats.SCOPES_PER_FLUSH` scopes between two flushes) and
its flush adds them to one ranking of at most :data:`KEEP` scopes per namespace: a sorted set
on Redis (the server adds and trims at once), a record elsewhere (read, added to, trimmed and
written back under a lease where the store can take one, so two processes' flushes never
overwrite each other: a flush that finds the lease taken keeps its tally for the next one).
Unscoped calls are not a scope. Like the other counters, the ranking outlives ``clear()``;
erasing a scope (``clear_scope``) takes it out of the ranking too (:func:`forget`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from asgiref.sync import sync_to_async

from llmcache_django.core.control import scope_problem

if TYPE_CHECKING:
    from llmcache_django.stores.base import Store

logger = logging.getLogger("llmcache_django")
#: The scopes the shared ranking keeps (those with the most hits).
KEEP = 200
#: Where a store that does not rank scopes itself keeps the ranking (a record: no generation tag).
RANKING_NAME = "stats:scopes"
#: The lease held while a flush rewrites the ranking record, and how long it may be held.
LOCK_NAME = "lease:stats:scopes"
LOCK_SECONDS = 5.0


def add(store: Store, hits: Mapping[str, int]) -> dict[str, int]:
    """Add ``hits`` (scope -> hits) to ``store``'s ranking; the hits it could not add yet
    (another process is rewriting the record), for the next flush."""
    if not hits:
        return {}
    if store.ranks_scopes:
        store.add_scope_hits(hits, KEEP)
        return {}
    if store.can_lease and not _lock(store):
        return dict(hits)
    try:
        ranking = _read(store)
        for scope, count in hits.items():
            ranking[scope] = ranking.get(scope, 0) + count
        _write(store, ranking)
    finally:
        _unlock(store)
    return {}


async def aadd(store: Store, hits: Mapping[str, int]) -> dict[str, int]:
    """Async :func:`add`."""
    if hits and store.ranks_scopes:
        await store.aadd_scope_hits(hits, KEEP)
        return {}
    # As Django's own cache does: safe for a database backend's connections.
    return await sync_to_async(add, thread_sensitive=True)(store, hits) if hits else {}


def forget(store: Store, scope: str) -> None:
    """Take ``scope`` out of the ranking (its erasure). Unlike a flush, it waits for the lease
    (a flush holds it for a round trip or two): a rewrite it raced would put the scope back."""
    if store.ranks_scopes:
        store.forget_scope_hits(scope)
        return
    locked = not store.can_lease or _lock(store, wait=LOCK_SECONDS)
    if not locked:
        logger.warning(
            "LLM cache %s: the scope ranking stayed locked; forgetting %r without the lock", store.describe(), scope
        )
    try:
        ranking = _read(store)
        if ranking.pop(scope, None) is not None:
            _write(store, ranking)
    finally:
        if locked:
            _unlock(store)


def top(store: Store, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` scopes with the most hits (most first), as shared by every process."""
    if store.ranks_scopes:
        return store.read_scope_hits(limit)
    return _ranked(_read(store))[:limit]


def reset(store: Store) -> None:
    """Forget the ranking (a stats reset)."""
    if store.ranks_scopes:
        store.reset_scope_hits()
    else:
        store.set_record(RANKING_NAME, b"{}")


def _lock(store: Store, wait: float = 0.0) -> bool:
    """Take the ranking's lease, trying for up to ``wait`` seconds; whether this caller holds it."""
    deadline = time.monotonic() + wait
    while not store.add_lease(LOCK_NAME, uuid.uuid4().hex.encode(), LOCK_SECONDS):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _unlock(store: Store) -> None:
    if store.can_lease:
        store.end_lease(LOCK_NAME, None)


def _write(store: Store, ranking: Mapping[str, int]) -> None:
    store.set_record(RANKING_NAME, orjson.dumps(dict(_ranked(ranking)[:KEEP])))


def _read(store: Store) -> dict[str, int]:
    """The ranking record; anything but a JSON object of scope -> hits is no ranking (start again)."""
    record = store.get_record(RANKING_NAME)
    try:
        stored: Any = orjson.loads(record) if record is not None else {}
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(stored, dict):
        return {}
    return {
        scope: hits for scope, hits in stored.items() if scope_problem(scope) is None and type(hits) is int and hits > 0
    }


def _ranked(ranking: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(ranking.items(), key=lambda item: (-item[1], item[0]))
