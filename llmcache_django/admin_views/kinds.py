"""The other kinds of entry of an alias as the admin shows them: the dashboard's rows
(LangGraph node entries per node namespace, cached embeddings and byte-store values, each
with its shared counters), and one node entry or vector as a line of its list."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmcache_django.admin_views.common import age_text, format_seconds
from llmcache_django.core.stats import COUNTERS
from llmcache_django.integrations.node_entries import decode_envelope
from llmcache_django.integrations.side_cache import SideCache
from llmcache_django.integrations.vectors import vector_info

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
    entry = node_entry(value)
    if entry is None:
        return
    row = nodes.setdefault(entry.group or "?", NodeRow(entry.group or "?"))
    row.entries += 1
    row.size += entry.size
    if entry.created is not None:
        row.created = min(row.created, entry.created)


@dataclass(frozen=True)
class KindEntry:
    """One stored entry of another kind, as the list shows it."""

    #: The node name (last part of the namespace) or the model identity: what the list
    #: filters by and what one clear removes ("" when the entry does not say).
    group: str
    #: The full node namespace, or the role, dimensions and dtype of a vector.
    detail: str
    #: The LangGraph cache key ("" for a vector).
    key: str
    created: float | None
    expires: float | None
    size: int

    @property
    def age(self) -> str:
        return age_text(max(0.0, time.time() - self.created)) if self.created is not None else "—"

    @property
    def ttl_left(self) -> str:
        if self.expires is None:
            return "never expires" if self.key else "—"
        left = self.expires - time.time()
        return format_seconds(left) if left > 0 else "expired"


def node_entry(value: bytes) -> KindEntry | None:
    """A LangGraph node entry's namespace, key and times (``None`` if ``value`` is not one)."""
    try:
        header, _payload = decode_envelope(value)
    except ValueError:
        return None
    namespace = header.get("ns")
    if not isinstance(namespace, list) or not all(isinstance(part, str) for part in namespace):
        return None
    return KindEntry(
        group=namespace[-1] if namespace else "",
        detail=" / ".join(namespace),
        key=str(header.get("key", "")),
        created=_number(header.get("created")),
        expires=_number(header.get("expires")),
        size=len(value),
    )


def vector_entry(value: bytes) -> KindEntry | None:
    """A cached vector's model, role, shape and age (``None`` if ``value`` is not one)."""
    try:
        info = vector_info(value)
    except ValueError:
        return None
    shape = f"{info.dimensions}-dim {info.dtype}"
    return KindEntry(
        group=info.identity,
        detail=f"{info.role}, {shape}" if info.role else shape,
        key="",
        created=info.created,
        expires=None,
        size=len(value),
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
