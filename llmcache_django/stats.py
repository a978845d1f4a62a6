"""Per-process counters of what a cache did and what its hits saved."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

from langchain_core.outputs import Generation


@dataclass
class Stats:
    """Hit, miss, write and error counters, plus what the hits saved."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0
    bytes_served: int = 0
    tokens_saved: int = 0
    seconds_saved: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def hit(self, nbytes: int, generations: list[Generation], duration: float | None) -> None:
        """Count a hit of ``nbytes`` that spared a model call of ``duration`` seconds."""
        tokens = tokens_of(generations)
        with self._lock:
            self.hits += 1
            self.bytes_served += nbytes
            self.tokens_saved += tokens
            self.seconds_saved += duration or 0.0

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (``misses``, ``writes`` or ``errors``)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, Any]:
        """Return the counters and the hit ratio as a plain dict."""
        with self._lock:
            values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
        lookups = values["hits"] + values["misses"]
        values["hit_ratio"] = values["hits"] / lookups if lookups else None
        return values

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.hits = self.misses = self.writes = self.errors = 0
            self.bytes_served = self.tokens_saved = 0
            self.seconds_saved = 0.0


def tokens_of(generations: list[Generation]) -> int:
    """Total tokens the model spent on ``generations`` (usage metadata or token usage info)."""
    total = 0
    for generation in generations:
        usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
        if usage:
            total += int(usage.get("total_tokens") or 0)
            continue
        info = generation.generation_info or {}
        token_usage = info.get("token_usage") or info.get("usage") or {}
        if isinstance(token_usage, dict):
            total += int(token_usage.get("total_tokens") or 0)
    return total
