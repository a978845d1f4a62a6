"""Savings over time: the shared counters again, per hour (last 24 h) and per day (last 30 days).

They ride the flush of the lifetime counters (:meth:`LLMCache.flush_stats`): the same pending
counts are added to the counters of the current hour's and the current day's bucket. A bucket
expires on the server as it leaves its window (a Redis hash with EXPIREAT, memcached keys and
database rows with an expiry), so the server holds at most 24 hourly and 30 daily buckets.
Counts are bucketed at flush time (at most a second or so after the lookup).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcache_django.stores.base import Store

HOURS = 24
DAYS = 30
#: The lifetime counters also kept per bucket.
SERIES_COUNTERS = ("hits", "misses", "tokens_saved", "ms_saved")
#: Per-model token counters (``input_tokens:gpt-4o-mini``): what prices turn into money.
INPUT_PREFIX = "input_tokens:"
OUTPUT_PREFIX = "output_tokens:"
#: What a model name must look like to be counted per model (safe as part of any server key).
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9._:/@+-]{1,80}$")


@dataclass(frozen=True)
class Bucket:
    """One hour or one day of counters: its server name, start and when it leaves its window."""

    name: str
    start: float
    expires_at: float


def hour_bucket(index: int) -> Bucket:
    """The bucket of the ``index``-th hour since the epoch (UTC)."""
    start = index * 3600
    return Bucket(f"h{time.strftime('%Y%m%d%H', time.gmtime(start))}", start, start + HOURS * 3600)


def day_bucket(index: int) -> Bucket:
    """The bucket of the ``index``-th day since the epoch (UTC)."""
    start = index * 86400
    return Bucket(f"d{time.strftime('%Y%m%d', time.gmtime(start))}", start, start + DAYS * 86400)


def current_buckets(now: float) -> list[Bucket]:
    """The hour and the day ``now`` falls in."""
    return [hour_bucket(int(now // 3600)), day_bucket(int(now // 86400))]


def recent_hours(now: float) -> list[Bucket]:
    """The last :data:`HOURS` hourly buckets, oldest first (the current hour last)."""
    current = int(now // 3600)
    return [hour_bucket(index) for index in range(current - HOURS + 1, current + 1)]


def recent_days(now: float) -> list[Bucket]:
    """The last :data:`DAYS` daily buckets, oldest first (today last)."""
    current = int(now // 86400)
    return [day_bucket(index) for index in range(current - DAYS + 1, current + 1)]


def series_deltas(pending: Mapping[str, int]) -> dict[str, int]:
    """The part of a flush's pending counts that is kept per bucket."""
    return {
        name: amount
        for name, amount in pending.items()
        if amount and (name in SERIES_COUNTERS or name.startswith((INPUT_PREFIX, OUTPUT_PREFIX)))
    }


def lifetime_deltas(pending: Mapping[str, int]) -> dict[str, int]:
    """The part of a flush's pending counts that goes to the lifetime counters (no per-model ones)."""
    return {name: amount for name, amount in pending.items() if not name.startswith((INPUT_PREFIX, OUTPUT_PREFIX))}


def model_counter_names(models: list[str]) -> list[str]:
    """The per-model token counters of ``models``."""
    return [prefix + model for model in models for prefix in (INPUT_PREFIX, OUTPUT_PREFIX)]


def add(store: Store, deltas: Mapping[str, int], now: float) -> None:
    """Add ``deltas`` to the current hour's and day's counters (nothing where the store keeps no series)."""
    if deltas and store.keeps_series:
        store.add_bucket_counters({bucket.name: bucket.expires_at for bucket in current_buckets(now)}, deltas)


async def aadd(store: Store, deltas: Mapping[str, int], now: float) -> None:
    """Async :func:`add`."""
    if deltas and store.keeps_series:
        await store.aadd_bucket_counters({bucket.name: bucket.expires_at for bucket in current_buckets(now)}, deltas)


def reset(store: Store, now: float) -> None:
    """Set the counters of every bucket still in its window back to zero."""
    if store.keeps_series:
        store.reset_bucket_counters([bucket.name for bucket in [*recent_hours(now), *recent_days(now)]])
