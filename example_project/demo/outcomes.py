"""Whether the cache answered: the package's hit and miss signals, scoped to one ask."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.dispatch import receiver

from llmcache_django.signals import llm_cache_hit, llm_cache_miss


@dataclass
class CacheOutcome:
    """The lookups the LLM cache reported while one question was asked."""

    hits: int = 0
    misses: int = 0

    @property
    def hit(self) -> bool:
        """True when the cache served the answer and the model was not asked."""
        return self.hits > 0 and self.misses == 0


# A context variable, not a global: concurrent requests each see only their own lookups.
_current: ContextVar[CacheOutcome | None] = ContextVar("llmcache_demo_outcome", default=None)


@contextmanager
def cache_outcome() -> Iterator[CacheOutcome]:
    """Collect the cache's hit and miss signals sent inside the `with` block."""
    outcome = CacheOutcome()
    token = _current.set(outcome)
    try:
        yield outcome
    finally:
        _current.reset(token)


@receiver(llm_cache_hit)
def _count_hit(sender: Any, **kwargs: Any) -> None:
    if (outcome := _current.get()) is not None:
        outcome.hits += 1


@receiver(llm_cache_miss)
def _count_miss(sender: Any, **kwargs: Any) -> None:
    if (outcome := _current.get()) is not None:
        outcome.misses += 1
