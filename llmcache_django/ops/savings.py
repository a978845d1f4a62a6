"""Savings over time and money saved: what the dashboard, ``llm_cache_stats`` and Prometheus show.

The counts come from the shared per-hour and per-day buckets (:mod:`llmcache_django.core.series`).
Money comes only from ``LLM_CACHE_PRICES`` (per million tokens, per model): LangChain's model
profiles carry no prices, and a guessed price is worse than none, so with no price for any
model there is no money at all (``None``), and a model without a price adds nothing to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from llmcache_django.conf import app_settings
from llmcache_django.core import series

if TYPE_CHECKING:
    from llmcache_django.core.cache import LLMCache

PRICE_KINDS = ("input", "output")


@dataclass(frozen=True)
class Price:
    """A model's price in currency units per million input and output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """What ``input_tokens`` and ``output_tokens`` cost at this price."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


def price_problems(prices: Any) -> list[str]:
    """What is wrong with an ``LLM_CACHE_PRICES`` value (empty when it is well formed)."""
    if not isinstance(prices, Mapping):
        return [f"LLM_CACHE_PRICES must be a dict of model name -> prices, not {type(prices).__name__}."]
    problems = []
    for model, price in prices.items():
        where = f"LLM_CACHE_PRICES[{model!r}]"
        if not isinstance(model, str) or not series.MODEL_NAME_RE.match(model):
            problems.append(f"{where}: a model name is 1-80 letters, digits or . _ : / @ + -.")
        elif not isinstance(price, Mapping) or set(price) != set(PRICE_KINDS):
            problems.append(f"{where} must be a dict with exactly the keys 'input' and 'output'.")
        elif not all(_is_price(price[kind]) for kind in PRICE_KINDS):
            problems.append(f"{where}: 'input' and 'output' must be finite numbers >= 0 (per million tokens).")
    return problems


def configured_prices() -> dict[str, Price]:
    """``LLM_CACHE_PRICES`` as prices; a malformed setting gives none (the system check names it)."""
    prices = app_settings.LLM_CACHE_PRICES
    if price_problems(prices):
        return {}
    return {model: Price(float(price["input"]), float(price["output"])) for model, price in prices.items()}


@dataclass
class SavingsPoint:
    """One hour or one day: lookups, what the hits saved and, with prices, what that was worth."""

    start: float
    hits: int = 0
    misses: int = 0
    tokens_saved: int = 0
    seconds_saved: float = 0.0
    cost_saved: float | None = None


@dataclass
class Savings:
    """An alias's last 24 hours and last 30 days (oldest first), and the money columns' models."""

    hourly: list[SavingsPoint] = field(default_factory=list)
    daily: list[SavingsPoint] = field(default_factory=list)
    priced_models: list[str] = field(default_factory=list)

    @property
    def has_money(self) -> bool:
        """Whether a price is configured (no price, no money column)."""
        return bool(self.priced_models)

    def total(self, points: str) -> SavingsPoint:
        """The sum of ``"hourly"`` (last 24 h) or ``"daily"`` (last 30 days)."""
        chosen: list[SavingsPoint] = getattr(self, points)
        total = SavingsPoint(start=chosen[0].start if chosen else 0.0)
        for point in chosen:
            total.hits += point.hits
            total.misses += point.misses
            total.tokens_saved += point.tokens_saved
            total.seconds_saved += point.seconds_saved
        if self.has_money:
            total.cost_saved = sum(point.cost_saved or 0.0 for point in chosen)
        return total

    def as_json(self) -> dict[str, Any]:
        """The JSON form (``llm_cache_stats --json``): points with ISO start times, and totals."""
        return {
            "priced_models": self.priced_models,
            "last_24h": _point_json(self.total("hourly")),
            "last_30d": _point_json(self.total("daily")),
            "hourly": [_point_json(point) for point in self.hourly],
            "daily": [_point_json(point) for point in self.daily],
        }


def savings_of(cache: LLMCache, now: float | None = None) -> Savings | None:
    """``cache``'s savings over time (this process's pending counts flushed first), or ``None``
    where its store keeps no counters per time bucket."""
    if cache.stats is None or not cache.store.keeps_series:
        return None
    cache.flush_stats()
    now = time.time() if now is None else now
    prices = configured_prices()
    names = [*series.SERIES_COUNTERS, *series.model_counter_names(sorted(prices))]
    hours, days = series.recent_hours(now), series.recent_days(now)
    found = cache.store.read_bucket_counters([bucket.name for bucket in [*hours, *days]], names)
    return Savings(
        hourly=[_point(bucket, found[bucket.name], prices) for bucket in hours],
        daily=[_point(bucket, found[bucket.name], prices) for bucket in days],
        priced_models=sorted(prices),
    )


def _point(bucket: series.Bucket, counts: Mapping[str, int], prices: Mapping[str, Price]) -> SavingsPoint:
    point = SavingsPoint(
        start=bucket.start,
        hits=counts.get("hits", 0),
        misses=counts.get("misses", 0),
        tokens_saved=counts.get("tokens_saved", 0),
        seconds_saved=counts.get("ms_saved", 0) / 1000,
    )
    if prices:
        point.cost_saved = sum(
            price.cost(counts.get(series.INPUT_PREFIX + model, 0), counts.get(series.OUTPUT_PREFIX + model, 0))
            for model, price in prices.items()
        )
    return point


def _point_json(point: SavingsPoint) -> dict[str, Any]:
    values = asdict(point)
    values["start"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(point.start))
    if values["cost_saved"] is None:
        del values["cost_saved"]  # no price, no money
    return values


def _is_price(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0
