"""Savings over time (per hour, per day) and money saved, on every kind of store (issue 24)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.test import override_settings

from llmcache_django.core import series
from llmcache_django.core.cache import LLMCache
from llmcache_django.ops.savings import Savings, savings_of
from tests.savings_models import INPUT_TOKENS, OUTPUT_TOKENS, PricedChatModel

PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.60}}
#: What one hit of PricedChatModel saves at PRICES: 1000 * 0.15 / 1e6 + 3000 * 0.60 / 1e6.
COST_PER_HIT = (INPUT_TOKENS * 0.15 + OUTPUT_TOKENS * 0.60) / 1_000_000


def one_miss_two_hits(cache: LLMCache) -> PricedChatModel:
    model = PricedChatModel(cache=cache)
    for _ in range(3):
        model.invoke("What is the capital of France?")
    assert model.calls == 1
    return model


def wait_until(condition: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {limit} s"
        time.sleep(0.05)


def counted(savings: Savings | None) -> tuple[int, int, int, float]:
    """Today's hits, misses, tokens saved and cost saved (the compat kinds share one namespace)."""
    assert savings is not None
    today = savings.daily[-1]
    return today.hits, today.misses, today.tokens_saved, today.cost_saved or 0.0


def test_the_current_hour_and_day_count_the_hits_tokens_and_money_saved(llm_cache: LLMCache) -> None:
    with override_settings(LLM_CACHE_PRICES=PRICES):
        before = counted(savings_of(llm_cache))
        one_miss_two_hits(llm_cache)
        savings = savings_of(llm_cache)
    assert savings is not None
    assert (len(savings.hourly), len(savings.daily)) == (24, 30)
    hits, misses, tokens, cost = (after - then for after, then in zip(counted(savings), before, strict=True))
    assert (hits, misses, tokens) == (2, 1, 2 * (INPUT_TOKENS + OUTPUT_TOKENS))
    assert cost == pytest.approx(2 * COST_PER_HIT)
    assert savings.hourly[-1].hits >= 2 or savings.hourly[-2].hits > 0  # the hour may have turned meanwhile


def test_no_price_no_money(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("redis")
    one_miss_two_hits(cache)
    with override_settings(LLM_CACHE_PRICES={"some-other-model": {"input": 1, "output": 1}}):
        other = savings_of(cache)
    savings = savings_of(cache)
    assert savings is not None and other is not None
    assert savings.hourly[-1].cost_saved is None and not savings.has_money
    assert "cost_saved" not in savings.as_json()["last_24h"]
    assert other.hourly[-1].cost_saved == 0  # priced models only: never a guessed price for this one


@pytest.mark.parametrize(
    "kind",
    [
        "redis",
        "memcached",
        pytest.param("alias-database", marks=pytest.mark.django_db(transaction=True)),
        "alias-locmem",
    ],
)
def test_the_server_keeps_no_bucket_past_its_window(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    now = time.time()
    for hours_ago in range(0, 60):
        series.add(cache.store, {"hits": 1}, now - hours_ago * 3600)
    hours = [series.hour_bucket(int(now // 3600) - hours_ago) for hours_ago in range(0, 60)]

    def kept() -> int:
        found = cache.store.read_bucket_counters([bucket.name for bucket in hours], ["hits"])
        return sum(1 for counts in found.values() if counts["hits"])

    wait_until(lambda: kept() == series.HOURS)  # older hours expire at once (within a second or so)
    days = [series.day_bucket(int(now // 86400) - days_ago) for days_ago in range(0, 40)]
    found = cache.store.read_bucket_counters([bucket.name for bucket in days], ["hits"])
    assert sum(1 for counts in found.values() if counts["hits"]) == 3  # 60 hours span 3 days


def test_a_redis_bucket_expires_as_it_leaves_its_window(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("redis")
    now = time.time()
    series.add(cache.store, {"hits": 1}, now)
    hour, day = series.current_buckets(now)
    client = cache.store.client  # type: ignore[attr-defined]
    assert client.expiretime(cache.store.bucket_key(hour.name)) == int(hour.start) + 24 * 3600  # type: ignore[attr-defined]
    assert client.expiretime(cache.store.bucket_key(day.name)) == int(day.start) + 30 * 86400  # type: ignore[attr-defined]
