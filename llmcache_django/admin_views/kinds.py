"""The dashboard's rows for the other kinds of entry of an alias: LangGraph node entries (per
node namespace), cached embeddings and byte-store values, each with its shared counters."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmcache_django.admin_views.common import format_seconds
from llmcache_django.core.stats import COUNTERS
from llmcache_django.integrations.node_entries import decode_envelope
from llmcache_django.integrations.side_cache import SideCache

if TYPE_CHECKING:
    from llmcache_django.core.cache import LLMCache

#: Sub-namespace -> what the dashboard calls its entries.
KIND_LABELS = {"langgraph": "LangGraph node entries", "embeddings": "Cached embeddings", "bytes": "Byte-store values"}
#: Entries read per kind to count them and add up their size.
SCAN_LIMIT = 10_000


@dataclass
class NodeRow:
    """One LangGraph node namespace: its entries, their size and the oldest one's age."""

    node: str
    entries: int = 0
    #: This node's entries in the admin's list of node entries (set by the dashboard).
    url: str = ""
    size: int = 0
    created: float = field(default=float("inf"))

    @property
    def oldest(self) -> str:
        return format_seconds(max(0.0, time.time() - self.created)) if self.created != float("inf") else "—"


@dataclass
class KindSummary:
    """One kind of entry used on an alias (``entries`` is ``None`` where the store cannot list)."""

    kind: str
    label: str
    stats: dict[str, Any]
    entries: int | None = None
    size: int | None = None
    nodes: list[NodeRow] = field(default_factory=list)
    #: The admin's list of these entries, where it has one (set by the dashboard).
    entries_url: str = ""


def kind_summaries(cache: LLMCache) -> list[KindSummary]:
    """Every kind with entries or counts on ``cache``'s alias (raises if the server cannot be read)."""
    summaries = []
    for kind, label in KIND_LABELS.items():
        side = SideCache(kind, cache)
        summary = KindSummary(kind, label, side.shared_stats())
        if side.store.can_list:
            _tally(summary, side)
        if summary.entries or any(summary.stats[name] for name in COUNTERS):
            summaries.append(summary)
    return summaries


def _tally(summary: KindSummary, side: SideCache) -> None:
    nodes: dict[str, NodeRow] = {}
    summary.entries = summary.size = 0
    for _name, value in itertools.islice(side.store.iter_values(), SCAN_LIMIT):
        summary.entries += 1
        summary.size += len(value)
        if summary.kind == "langgraph":
            _count_node(nodes, value)
    summary.nodes = sorted(nodes.values(), key=lambda row: (-row.entries, row.node))


def _count_node(nodes: dict[str, NodeRow], value: bytes) -> None:
    try:
        header, _payload = decode_envelope(value)
    except ValueError:
        return
    namespace = header.get("ns")
    node = str(namespace[-1]) if isinstance(namespace, list) and namespace else "?"
    row = nodes.setdefault(node, NodeRow(node))
    row.entries += 1
    row.size += len(value)
    created = header.get("created")
    if isinstance(created, int | float):
        row.created = min(row.created, float(created))
