"""The dashboard's scopes of an alias: entries per scope (counted from the listing, where the
store can list) and the scopes with the most hits (the shared ranking of every process)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmcache_django.admin_views.common import admin_url
from llmcache_django.core.keys import scope_tag

if TYPE_CHECKING:
    from llmcache_django.admin import LLMCacheAdmin
    from llmcache_django.core.cache import LLMCache
    from llmcache_django.core.listing import EntryInfo

#: The scopes shown by hits, and the most rows of the section (the rest by entries).
TOP_SCOPES = 10
MAX_ROWS = 20


@dataclass
class ScopeRow:
    """One scope of an alias: its entries (``None``: the store cannot list them) and its hits
    (``None``: unscoped, or not among the top scopes by hits)."""

    label: str
    entries: int | None
    hits: int | None = None
    entries_url: str = ""
    unscoped: bool = False


@dataclass
class ScopeTally:
    """Entries per scope tag (``None``: unscoped), counted as the dashboard lists an alias."""

    counts: Counter[str | None] = field(default_factory=Counter)
    names: dict[str, str] = field(default_factory=dict)

    def add(self, info: EntryInfo) -> None:
        """Count ``info`` in its scope."""
        tag = info.scope_tag
        self.counts[tag] += 1
        if tag is not None and info.scope is not None:
            self.names[tag] = info.scope


def scope_rows(model_admin: LLMCacheAdmin, cache: LLMCache, tally: ScopeTally | None) -> list[ScopeRow]:
    """The top scopes by hits, then the scopes with the most entries, then the unscoped
    entries; empty when the alias has no scope to show. ``tally`` is ``None`` where the
    store cannot list its entries."""
    rows: list[ScopeRow] = []
    shown: set[str | None] = set()
    for scope, hits in cache.top_scopes(TOP_SCOPES):
        shown.add(scope_tag(scope))
        entries = tally.counts.get(scope_tag(scope), 0) if tally is not None else None
        rows.append(ScopeRow(scope, entries, hits, _entries_url(model_admin, cache, scope)))
    if tally is None:
        return rows
    for tag, count in tally.counts.most_common():
        if len(rows) >= MAX_ROWS:
            break
        if tag is not None and tag not in shown:
            name = tally.names.get(tag)  # an entry written before scopes were stored: its tag only
            url = _entries_url(model_admin, cache, name) if name else ""
            rows.append(ScopeRow(name or f"scope #{tag}", count, None, url))
    if rows:
        rows.append(ScopeRow("unscoped", tally.counts.get(None, 0), unscoped=True))
    return rows


def _entries_url(model_admin: LLMCacheAdmin, cache: LLMCache, scope: str) -> str:
    return admin_url(model_admin, "entries", cache.alias, query={"scope": scope})
