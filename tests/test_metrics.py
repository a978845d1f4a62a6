"""Prometheus: scrape django-prometheus's /metrics and ours, parse, and check what moved by how much."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client, override_settings
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import Generation
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from llmcache_django.core import stats as stats_module
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.latency import BUCKETS
from llmcache_django.ops.metrics import LLMCacheCollector
from tests import servers

pytestmark = pytest.mark.urls("tests.ops_urls")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ROOT = Path(__file__).resolve().parent.parent
USAGE = {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(path: str = "/metrics") -> Samples:
    response = Client().get(path)
    assert response.status_code == 200
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def slow_answers(seconds: float) -> Iterator[AIMessage]:
    """The model's answers; the first takes ``seconds``, so the entry records a model time."""
    time.sleep(seconds)
    while True:
        yield AIMessage(content="Paris.", usage_metadata=USAGE)  # type: ignore[arg-type]


@pytest.fixture
def redis_alias(make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    return make_llm_cache("alias-django-redis")


def test_a_miss_then_two_hits_move_every_counter_by_the_right_amount(redis_alias: LLMCache) -> None:
    model = GenericFakeChatModel(messages=slow_answers(0.05), cache=redis_alias)
    before = scrape()
    for _ in range(3):
        assert model.invoke("What is the capital of France?").content == "Paris."
    after = scrape()
    (entry,) = redis_alias.entries()
    assert entry.duration is not None and entry.duration >= 0.05
    counts = {name: moved(before, after, f"llmcache_{name}_total", alias="default") for name in stats_module.COUNTERS}
    assert counts.pop("hits") == 2
    assert counts.pop("misses") == 1
    assert counts.pop("writes") == 1
    assert counts.pop("tokens_saved") == 2 * 42
    assert counts.pop("bytes_served") == 2 * entry.size
    assert counts.pop("ms_saved") == 0  # exported in seconds, not milliseconds
    assert set(counts.values()) == {0}  # errors, skipped, and any counter added later
    seconds = moved(before, after, "llmcache_model_seconds_saved_total", alias="default")
    assert seconds == pytest.approx(2 * round(entry.duration * 1000) / 1000)


def test_every_lookup_is_one_observation_of_the_latency_histogram(redis_alias: LLMCache) -> None:
    model = GenericFakeChatModel(messages=slow_answers(0), cache=redis_alias)
    before = scrape()
    for _ in range(3):
        model.invoke("What is the capital of France?")
    after = scrape()
    assert moved(before, after, "llmcache_lookup_seconds_count", alias="default") == 3
    assert moved(before, after, "llmcache_lookup_seconds_bucket", alias="default", le="+Inf") == 3
    assert moved(before, after, "llmcache_lookup_seconds_sum", alias="default") > 0
    buckets = [value(after, "llmcache_lookup_seconds_bucket", alias="default", le=str(bound)) for bound in BUCKETS]
    assert buckets == sorted(buckets)  # cumulative
    assert buckets[-1] <= value(after, "llmcache_lookup_seconds_count", alias="default")


async def test_async_lookups_are_counted_and_timed_too(redis_alias: LLMCache) -> None:
    from asgiref.sync import sync_to_async

    model = GenericFakeChatModel(messages=slow_answers(0), cache=redis_alias)
    before = await sync_to_async(scrape)()
    await model.ainvoke("What is the capital of Italy?")
    await model.ainvoke("What is the capital of Italy?")
    after = await sync_to_async(scrape)()
    assert moved(before, after, "llmcache_hits_total", alias="default") == 1
    assert moved(before, after, "llmcache_misses_total", alias="default") == 1
    assert moved(before, after, "llmcache_lookup_seconds_count", alias="default") == 2


def test_a_dead_server_counts_one_error_then_skips_and_shows_as_paused() -> None:
    dead = f"redis://127.0.0.1:{servers.free_port()}/0"  # nothing listens there
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "llm": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": dead},
    }
    with override_settings(CACHES=caches, LLM_CACHES={"default": {"CACHE": "llm"}}):
        model = GenericFakeChatModel(messages=slow_answers(0), cache=True)
        before = scrape()
        assert model.invoke("Hello?").content == "Paris."  # the cache never breaks the model call
        assert model.invoke("Hello?").content == "Paris."
        after = scrape()
    assert moved(before, after, "llmcache_errors_total", alias="default") == 1
    # The second lookup and both writes were not tried while the server is left alone.
    assert moved(before, after, "llmcache_skipped_total", alias="default") == 3
    assert moved(before, after, "llmcache_hits_total", alias="default") == 0
    assert value(after, "llmcache_server_paused", alias="default") == 1


def test_our_view_serves_the_same_registry_and_speaks_openmetrics(redis_alias: LLMCache) -> None:
    redis_alias.lookup("prompt", "llm")
    plain = scrape("/llm-metrics")
    assert value(plain, "llmcache_misses_total", alias="default") == value(
        scrape(), "llmcache_misses_total", alias="default"
    )
    response = Client().get("/llm-metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in parse_openmetrics(response.content.decode())}
    assert families["llmcache_misses"].type == "counter"
    assert families["llmcache_lookup_seconds"].type == "histogram"
    assert Client().post("/llm-metrics").status_code == 405


def collector_of(cache: LLMCache) -> Callable[[], Samples]:
    """A worker's /metrics: a registry whose collector sees ``cache`` as its alias 'default'."""
    registry = CollectorRegistry()
    registry.register(LLMCacheCollector(caches=lambda: {"default": cache}))
    return lambda: parse(generate_latest(registry).decode())


def totals(samples: Samples) -> dict[str, float]:
    return {name: value(samples, f"llmcache_{name}_total", alias="default") for name in ("hits", "misses", "writes")}


def test_every_worker_serves_the_same_totals(redis_server: servers.Server) -> None:
    import redis

    from llmcache_django import RedisLLMCache

    namespace = f"workers{uuid.uuid4().hex[:8]}"
    # Two workers: each its own cache object and in-process counters, one Redis namespace.
    first, second = (RedisLLMCache(redis.Redis(port=redis_server.port), namespace=namespace) for _ in range(2))
    scrape_first, scrape_second = collector_of(first), collector_of(second)
    model = GenericFakeChatModel(messages=slow_answers(0), cache=first)
    for _ in range(3):
        model.invoke("Which worker answered?")  # all on the first worker: 1 miss, 1 write, 2 hits
    second.lookup("only the second worker", "llm")  # and 1 miss on the second,
    second.flush_stats()  # shared within a second, as every worker's counts are
    expected = {"hits": 2, "misses": 2, "writes": 1}
    assert totals(scrape_first()) == expected
    assert totals(scrape_second()) == expected


CHILD = """
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from django.test.utils import override_settings
from langchain_core.language_models import FakeListChatModel
from llmcache_django import llm_caches
with override_settings(CACHES=json.loads(sys.argv[1]), LLM_CACHES=json.loads(sys.argv[2])):
    model = FakeListChatModel(responses=["an answer"], cache=llm_caches["default"])
    for index in range(20):
        model.invoke(f"question {index % 4}")  # 4 misses, then 16 hits; shared when it exits
"""


def test_a_worker_that_never_used_the_cache_serves_what_the_others_counted(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    import json

    from django.conf import settings

    from llmcache_django import llm_caches

    make_llm_cache("alias-django-redis")
    argv = [sys.executable, "-c", CHILD, json.dumps(settings.CACHES), json.dumps(settings.LLM_CACHES)]
    subprocess.run(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, timeout=120)
    llm_caches.reset()  # this worker has built nothing: the scrape builds the alias and reads it
    assert totals(scrape()) == {"hits": 16, "misses": 4, "writes": 4}


def test_a_reset_is_a_counter_reset_in_every_worker(redis_server: servers.Server) -> None:
    import redis

    from llmcache_django import RedisLLMCache

    namespace = f"reset{uuid.uuid4().hex[:8]}"
    first, second = (RedisLLMCache(redis.Redis(port=redis_server.port), namespace=namespace) for _ in range(2))
    scrape_first, scrape_second = collector_of(first), collector_of(second)
    first.lookup("one", "llm")
    first.flush_stats()  # shared within a second
    second.lookup("two", "llm")
    assert totals(scrape_second())["misses"] == 2
    first.reset_stats()  # `llm_cache_stats --reset` in one process
    first.lookup("three", "llm")
    assert totals(scrape_first())["misses"] == totals(scrape_second())["misses"] == 1


def test_with_the_server_killed_a_scrape_serves_the_last_totals_plus_this_workers_errors() -> None:
    import redis

    from llmcache_django import RedisLLMCache

    server = servers.start_redis()
    try:
        cache = RedisLLMCache(redis.Redis(port=server.port, socket_connect_timeout=0.5), namespace="outage")
        scrape_worker = collector_of(cache)
        cache.lookup("before", "llm")
        cache.update("before", "llm", [Generation(text="x")])
        assert totals(scrape_worker()) == {"hits": 0, "misses": 1, "writes": 1}
        server.kill()
        cache.lookup("during", "llm")  # fails: an error, counted here only
        during = scrape_worker()
        assert totals(during) == {"hits": 0, "misses": 1, "writes": 1}  # nothing went backwards
        assert value(during, "llmcache_errors_total", alias="default") == 1
    finally:
        server.stop()


def test_a_counter_added_to_stats_is_exported_without_a_change_here(
    monkeypatch: pytest.MonkeyPatch, make_llm_cache: Callable[..., LLMCache]
) -> None:
    monkeypatch.setattr(stats_module, "COUNTERS", tuple(name for name in stats_module.COUNTERS if name != "coalesced"))
    monkeypatch.setattr(stats_module, "COUNTERS", (*stats_module.COUNTERS, "coalesced"))
    cache = make_llm_cache("alias-locmem")
    assert cache.stats is not None
    cache.stats.add("coalesced", 2)
    samples = scrape()
    assert value(samples, "llmcache_coalesced_total", alias="default") == 2


def test_an_alias_with_stats_off_exports_latency_but_no_counters(make_llm_cache: Callable[..., LLMCache]) -> None:
    registry = CollectorRegistry()
    registry.register(LLMCacheCollector())  # a fresh one: no totals from earlier caches
    cache = make_llm_cache("alias-locmem", OPTIONS={"STATS": False})
    before = parse(generate_latest(registry).decode())
    cache.lookup("prompt", "llm")
    after = parse(generate_latest(registry).decode())
    assert not any(name == "llmcache_misses_total" for name, _ in after)
    assert moved(before, after, "llmcache_lookup_seconds_count", alias="default") == 1


def test_an_alias_with_wrong_settings_is_left_out_and_the_others_are_served(redis_alias: LLMCache) -> None:
    from django.conf import settings

    redis_alias.lookup("prompt", "llm")
    redis_alias.flush_stats()  # changed settings rebuild the cache: this one's counts are shared first
    broken = {**settings.LLM_CACHES, "broken": {"CACHE": "no-such-cache"}}
    with override_settings(LLM_CACHES=broken):
        samples = scrape()
    assert value(samples, "llmcache_misses_total", alias="default") >= 1
    assert not any(dict(labels).get("alias") == "broken" for _, labels in samples)


NO_EXTRAS = """
import os, sys
sys.modules["prometheus_client"] = None  # as if the extras were not installed
sys.modules["health_check"] = None
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from django.test.utils import override_settings
from langchain_core.language_models import FakeListLLM
from llmcache_django.core.cache import LLMCache

assert not hasattr(LLMCache.lookup_entry, "__wrapped__"), "lookups are timed without prometheus-client"
assert not hasattr(LLMCache.alookup_entry, "__wrapped__")
locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
with override_settings(CACHES=locmem, LLM_CACHES={"default": {}}):
    model = FakeListLLM(responses=["a", "b"], cache=True)
    assert model.invoke("q") == model.invoke("q") == "a"
import llmcache_django.ops.health
for module in ("llmcache_django.ops.metrics", "llmcache_django.ops.health_check"):
    try:
        __import__(module)
    except ImportError as exc:
        print(exc)
print(sorted(name for name in sys.modules if name.startswith(("prometheus", "health_check", "django_prometheus"))))
"""


def test_without_the_extras_lookups_are_not_timed_and_the_modules_name_the_extra() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", NO_EXTRAS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "llmcache_django.ops.metrics needs prometheus-client: pip install 'llmcache-django[prometheus]'",
        "llmcache_django.ops.health_check needs django-health-check: pip install 'llmcache-django[health]'",
        "['health_check', 'prometheus_client']",  # only the blocked names: nothing was imported
    ]


def test_the_collector_is_on_the_default_registry_once() -> None:
    from prometheus_client import REGISTRY

    from llmcache_django.apps import install_metrics
    from llmcache_django.ops.metrics import install

    install_metrics()  # ready() did it already: a second call registers nothing twice
    assert install() is install()
    lines = generate_latest(REGISTRY).decode().splitlines()
    assert lines.count("# TYPE llmcache_lookup_seconds histogram") == 1
