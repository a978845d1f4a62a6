"""Counters of what a cache did and what its hits saved: per process, and shared.

Each process counts in memory (cheap on the hot path) and adds its pending deltas to
counters stored in the backend itself at most once per :data:`FLUSH_SECONDS`, so every
process and the admin see the same totals.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from langchain_core.outputs import ChatGeneration, Generation

from llmcache_django.core.series import INPUT_PREFIX, MODEL_NAME_RE, OUTPUT_PREFIX

#: The shared counters, in the order they are shown.
COUNTERS = (
    "hits",
    "misses",
    "writes",
    "errors",
    "skipped",
    "bytes_served",
    "tokens_saved",
    "ms_saved",
    "coalesced",  # misses answered by another caller's model call (single-flight), not hits
    "refreshed",  # lookups not answered from the cache by request: refresh, or older than max_age
    "bypassed",  # lookups and writes skipped by request: off, no-store
)
#: A token count above this in stored usage data is not a real one (and is not added).
MAX_TOKENS = 2**40
FLUSH_SECONDS = 1.0
#: Pending lookups and writes that make a flush due before FLUSH_SECONDS have passed, so a
#: busy process shares its counts in small, steady steps.
FLUSH_COUNT = 1000
#: Distinct models a process counts input and output tokens for (what prices turn into money);
#: the tokens of others still count in ``tokens_saved``.
MODEL_LIMIT = 50
#: Distinct scopes a process tallies hits for between two flushes, so a million users cannot
#: grow it; hits in further scopes still count in ``hits``.
SCOPES_PER_FLUSH = 100


class Stats:
    """Hit, miss, write and error counters, plus what the hits saved, for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._flushed = dict.fromkeys(COUNTERS, 0)  # the part of the totals already shared
        self._last_flush = time.monotonic()
        self._unflushed = 0  # lookups and writes since the last flush
        self._scope_hits: dict[str, int] = {}  # hits per scope since the last flush
        #: Held by a sync flush from taking the pending counts until they are added, and by a
        #: reset: the flusher thread's flush and a reset in another thread do not interleave.
        self.flushing = threading.Lock()

    def hit(
        self,
        nbytes: int,
        generations: list[Generation],
        duration: float | None,
        counter: str = "hits",
        model: str = "",
        scope: str | None = None,
    ) -> None:
        """Count a hit of ``nbytes`` in ``scope`` that spared a call of ``model`` of ``duration``
        seconds (under ``counter``: ``coalesced`` for an answer another caller's model call just stored)."""
        tokens = tokens_of(generations)
        input_tokens, output_tokens = split_tokens_of(generations)
        totals = self._totals
        with self._lock:
            self._unflushed += 1
            totals[counter] += 1
            totals["bytes_served"] += nbytes
            totals["tokens_saved"] += tokens
            if duration:
                totals["ms_saved"] += round(duration * 1000)
            if (input_tokens or output_tokens) and self._counts_model(model):
                totals[INPUT_PREFIX + model] = totals.get(INPUT_PREFIX + model, 0) + input_tokens
                totals[OUTPUT_PREFIX + model] = totals.get(OUTPUT_PREFIX + model, 0) + output_tokens
            if scope is not None and counter == "hits":
                self._tally_scope(scope, 1)

    def _tally_scope(self, scope: str, hits: int) -> None:
        tally = self._scope_hits
        if scope in tally:
            tally[scope] += hits
        elif len(tally) < SCOPES_PER_FLUSH:
            tally[scope] = hits

    def _counts_model(self, model: str) -> bool:
        # Model names come from stored entries: only plausible ones, and a bounded number of them.
        if INPUT_PREFIX + model in self._totals:
            return True
        return len(self._totals) < len(COUNTERS) + 2 * MODEL_LIMIT and bool(MODEL_NAME_RE.match(model))

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (``misses``, ``writes``, ``errors``, ``skipped``)."""
        with self._lock:
            self._unflushed += 1
            self._totals[name] += amount

    def __getattr__(self, name: str) -> int:
        if name in COUNTERS:
            return self._totals[name]
        raise AttributeError(name)

    def flush_due(self) -> bool:
        """Whether pending counts are old or many enough to be added to the shared counters."""
        return self._unflushed >= FLUSH_COUNT or time.monotonic() - self._last_flush >= FLUSH_SECONDS

    @property
    def has_pending(self) -> bool:
        """Whether some counts are not yet in the shared counters."""
        return self._totals != self._flushed or bool(self._scope_hits)

    def take_pending(self) -> dict[str, int]:
        """Return, and mark as shared, the counts not yet added to the shared counters."""
        with self._lock:
            pending = {name: total - self._flushed.get(name, 0) for name, total in self._totals.items()}
            self._flushed = dict(self._totals)
            self._last_flush = time.monotonic()
            self._unflushed = 0
        return {name: amount for name, amount in pending.items() if amount}

    def take_scope_hits(self) -> dict[str, int]:
        """Return, and forget, the hits per scope since the last flush."""
        with self._lock:
            tally, self._scope_hits = self._scope_hits, {}
        return tally

    def keep_scope_hits(self, hits: dict[str, int]) -> None:
        """Hold ``hits`` (taken, then not shared) for the next flush."""
        with self._lock:
            for scope, count in hits.items():
                self._tally_scope(scope, count)

    def forget_scope(self, scope: str) -> None:
        """Drop ``scope``'s hits not yet shared (the scope was erased)."""
        with self._lock:
            self._scope_hits.pop(scope, None)

    def snapshot(self) -> dict[str, Any]:
        """This process's counters, with ``hit_ratio`` and ``seconds_saved``."""
        with self._lock:
            return summarize({name: self._totals[name] for name in COUNTERS})

    def forget_pending_after_fork(self) -> None:
        """In a child after ``fork``: the pending counts are the parent's to share (it still
        holds them), and a lock another parent thread held stays held here: new locks."""
        self._lock = threading.Lock()
        self.flushing = threading.Lock()
        self._flushed = dict(self._totals)
        self._unflushed = 0
        self._scope_hits = {}

    def reset(self) -> None:
        """Set this process's counters back to zero (pending counts included)."""
        with self._lock:
            self._totals = dict.fromkeys(COUNTERS, 0)
            self._flushed = dict.fromkeys(COUNTERS, 0)
            self._unflushed = 0
            self._scope_hits = {}


def summarize(counters: dict[str, int]) -> dict[str, Any]:
    """Add ``hit_ratio`` (``None`` before any lookup) and ``seconds_saved`` to raw counters."""
    values: dict[str, Any] = dict(counters)
    lookups = values["hits"] + values["misses"]
    values["hit_ratio"] = values["hits"] / lookups if lookups else None
    values["seconds_saved"] = values["ms_saved"] / 1000
    return values


def tokens_of(generations: list[Generation]) -> int:
    """Total tokens the model spent on ``generations`` (usage metadata or token usage info)."""
    total = 0
    for generation in generations:
        usage = generation.message.usage_metadata if isinstance(generation, ChatGeneration) else None  # type: ignore[attr-defined]
        if usage:
            total += _count(usage.get("total_tokens"))
            continue
        info = generation.generation_info or {}
        token_usage = info.get("token_usage") or info.get("usage") or {}
        if isinstance(token_usage, dict):
            total += _count(token_usage.get("total_tokens"))
    return total


def split_tokens_of(generations: list[Generation]) -> tuple[int, int]:
    """Input and output tokens the model spent on ``generations`` (what a price applies to)."""
    input_total = output_total = 0
    for generation in generations:
        usage = generation.message.usage_metadata if isinstance(generation, ChatGeneration) else None  # type: ignore[attr-defined]
        if usage:
            input_total += _count(usage.get("input_tokens"))
            output_total += _count(usage.get("output_tokens"))
            continue
        info = generation.generation_info or {}
        token_usage = info.get("token_usage") or info.get("usage") or {}
        if isinstance(token_usage, dict):
            input_total += _count(token_usage.get("prompt_tokens", token_usage.get("input_tokens")))
            output_total += _count(token_usage.get("completion_tokens", token_usage.get("output_tokens")))
    return input_total, output_total


def _count(value: Any) -> int:
    # Stored usage data comes from whatever is under our key: only a plausible count counts.
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else 0
