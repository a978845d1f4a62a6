"""Savings over time (per hour, per day) and money saved, on every kind of store (issue 24)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration
from prometheus_client import CollectorRegistry, generate_latest

from llmcache_django.core import series
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.stats import COUNTERS, MODEL_LIMIT, Stats
from llmcache_django.ops.checks import check_llm_cache_prices
from llmcache_django.ops.metrics import LLMCacheCollector
from llmcache_django.ops.savings import Savings, savings_of
from tests.savings_models import INPUT_TOKENS, OUTPUT_TOKENS, PricedChatModel
from tests.test_stats_exit import builders

ROOT = Path(__file__).resolve().parent.parent

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


def test_a_reset_empties_the_history_too(cache_kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(cache_kind)
    with override_settings(LLM_CACHE_PRICES=PRICES):
        one_miss_two_hits(cache)
        assert counted(savings_of(cache))[0] >= 2  # flushed: the history is on the server
        cache.reset_stats()
        assert counted(savings_of(cache)) == (0, 0, 0, 0.0)
        model = PricedChatModel(cache=cache)
        model.invoke("What is the capital of France?")  # the entry stays: a hit, counted from zero
        assert counted(savings_of(cache)) == (1, 0, INPUT_TOKENS + OUTPUT_TOKENS, pytest.approx(COST_PER_HIT))


SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.savings_models import PricedChatModel
{build}
model = PricedChatModel(cache=cache)
for index in range(20):
    model.invoke(f"question {{index % 5}}")  # 5 misses, then 15 hits
"""


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_processes_add_up_in_the_same_hour_and_day(kind: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(f"{kind}_server")
    namespace = f"sv{uuid.uuid4().hex[:8]}"
    build_code, build = builders(namespace)[kind]
    script = SCRIPT.format(root=str(ROOT), build=build_code.format(port=server.port, namespace=namespace))
    for _ in range(2):
        subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=120, cwd=ROOT)
    cache = build(server)
    one_miss_two_hits(cache)
    with override_settings(LLM_CACHE_PRICES=PRICES):
        assert counted(savings_of(cache)) == (
            15 + 20 + 2,  # the second process hits all 20: the first one's misses stored the answers
            5 + 1,
            37 * (INPUT_TOKENS + OUTPUT_TOKENS),
            pytest.approx(37 * COST_PER_HIT),
        )


def test_hostile_or_too_many_model_names_are_not_counted_per_model() -> None:
    stats = Stats()
    answer = [
        ChatGeneration(
            message=AIMessage(content="x", usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3})
        )
    ]
    stats.hit(10, answer, None, "hits", "bad model\nname")  # type: ignore[arg-type]
    for index in range(MODEL_LIMIT + 20):
        stats.hit(10, answer, None, "hits", f"model-{index}")  # type: ignore[arg-type]
    pending = stats.take_pending()
    per_model = [name for name in pending if name.startswith((series.INPUT_PREFIX, series.OUTPUT_PREFIX))]
    assert len(per_model) == 2 * MODEL_LIMIT
    assert series.INPUT_PREFIX + "bad model\nname" not in pending
    assert pending["tokens_saved"] == 3 * (MODEL_LIMIT + 21)  # every hit's tokens still count
    assert set(series.lifetime_deltas(pending)) <= set(COUNTERS)  # model names never reach the lifetime counters


@pytest.mark.parametrize(
    "prices",
    [
        ["gpt-4o-mini"],
        {"gpt-4o-mini": {"input": 0.15}},
        {"gpt-4o-mini": {"input": "0.15", "output": 0.6}},
        {"gpt-4o-mini": {"input": -1, "output": 0.6}},
        {"gpt 4o": {"input": 1, "output": 1}},
    ],
)
def test_a_malformed_price_setting_fails_the_check(prices: object) -> None:
    with override_settings(LLM_CACHE_PRICES=prices):
        assert [message.id for message in check_llm_cache_prices()] == ["llmcache_django.E040"]
        with pytest.raises(SystemCheckError, match="LLM_CACHE_PRICES"):
            call_command("check")


def test_well_formed_prices_pass_the_check() -> None:
    with override_settings(LLM_CACHE_PRICES={**PRICES, "claude-3-5-haiku": {"input": 1, "output": 5}}):
        assert check_llm_cache_prices() == []


@pytest.mark.django_db
def test_the_stats_command_shows_the_windows_and_money_as_text_and_json(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = make_llm_cache("alias-django-redis")
    one_miss_two_hits(cache)
    assert "last 24 h" not in stats_command()  # no price: the one line as before
    with override_settings(LLM_CACHE_PRICES=PRICES):
        text = stats_command()
        report = json.loads(stats_command("--json"))["default"]["savings"]
    assert text.splitlines()[1:] == [
        "  last 24 h: 2 hits, 1 miss; saved 8000 tokens and 0.0s of model time, cost saved 0.0039 at LLM_CACHE_PRICES",
        "  last 30 days: 2 hits, 1 miss; saved 8000 tokens and 0.0s of model time, cost saved 0.0039 at LLM_CACHE_PRICES",
    ]
    assert (report["last_24h"]["hits"], report["last_30d"]["tokens_saved"]) == (2, 8000)
    assert report["last_30d"]["cost_saved"] == pytest.approx(2 * COST_PER_HIT)
    assert (len(report["hourly"]), len(report["daily"])) == (24, 30)
    assert report["hourly"][-1]["start"].endswith(":00:00Z") and report["priced_models"] == ["gpt-4o-mini"]
    assert "cost_saved" not in json.loads(stats_command("--json"))["default"]["savings"]["last_24h"]


def test_prometheus_serves_the_windows_and_money_only_with_prices(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("redis")
    one_miss_two_hits(cache)
    registry = CollectorRegistry()
    registry.register(LLMCacheCollector(caches=lambda: {"default": cache}))
    unpriced = generate_latest(registry).decode()
    with override_settings(LLM_CACHE_PRICES=PRICES):
        priced = generate_latest(registry).decode()
    assert 'llmcache_window_hits{alias="default",window="24h"} 2.0' in priced
    assert 'llmcache_window_misses{alias="default",window="30d"} 1.0' in priced
    assert 'llmcache_window_tokens_saved{alias="default",window="30d"} 8000.0' in priced
    assert 'llmcache_window_cost_saved{alias="default",window="30d"} 0.0039' in priced
    assert (
        "llmcache_window_cost_saved{" not in unpriced
        and 'llmcache_window_hits{alias="default",window="24h"} 2.0' in unpriced
    )


def stats_command(*args: str) -> str:
    out = StringIO()
    call_command("llm_cache_stats", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.parametrize("kind", ["redis", "memcached", "redis-cluster-async"])
async def test_an_async_flush_adds_to_the_hour_and_day_too(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    model = PricedChatModel(cache=cache)
    for _ in range(3):
        await model.ainvoke("What is the capital of France?")
    await cache._aflush_stats_quietly()  # what a due flush does on the event loop
    assert cache.stats is not None and not cache.stats.has_pending
    hour, day = series.current_buckets(time.time())
    found = cache.store.read_bucket_counters([hour.name, day.name], ["hits", "misses"])
    assert found == {hour.name: {"hits": 2, "misses": 1}, day.name: {"hits": 2, "misses": 1}}
