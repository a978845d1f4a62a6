"""Health: each alias's server reachable, degraded or down, through ``probe`` and django-health-check."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import Client, override_settings

from llmcache_django.core.cache import LLMCache
from llmcache_django.ops.health import Status, probe
from tests import servers

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
MEMCACHED = "django.core.cache.backends.memcached.PyMemcacheCache"


@contextmanager
def llm_alias(cache_settings: dict[str, Any], **options: Any) -> Iterator[None]:
    """``LLM_CACHES["default"]`` on ``cache_settings``."""
    with override_settings(
        CACHES={"default": LOCMEM, "llm": cache_settings}, LLM_CACHES={"default": {"CACHE": "llm", **options}}
    ):
        yield


@pytest.fixture
def memcached_pool() -> Iterator[list[servers.Server]]:
    """Three memcached servers of our own, so one can be killed or paused."""
    pool = [servers.start_memcached() for _ in range(3)]
    yield pool
    for server in pool:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def pool_settings(pool: list[servers.Server]) -> dict[str, Any]:
    return {"BACKEND": MEMCACHED, "LOCATION": [server.location for server in pool]}


@pytest.mark.parametrize(
    "kind", ["alias-django-redis", "alias-django-builtin-redis", "alias-pymemcache", "alias-locmem"]
)
def test_a_running_server_is_reachable(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    make_llm_cache(kind)
    health = probe("default")
    assert health.status is Status.REACHABLE, health.detail
    assert health.detail.startswith("answered in ")


@pytest.mark.django_db(transaction=True)
def test_the_database_cache_is_reachable(make_llm_cache: Callable[..., LLMCache]) -> None:
    make_llm_cache("alias-database")
    assert probe("default").status is Status.REACHABLE


def test_a_killed_redis_is_down() -> None:
    server = servers.start_redis()
    with llm_alias({"BACKEND": "django_redis.cache.RedisCache", "LOCATION": server.url}):
        assert probe("default").status is Status.REACHABLE
        server.stop()
        health = probe("default")
    assert health.status is Status.DOWN
    assert "ConnectionError" in health.detail
    assert f"127.0.0.1:{server.port}" in health.detail


def test_a_killed_memcached_is_down() -> None:
    server = servers.start_memcached()
    with llm_alias({"BACKEND": MEMCACHED, "LOCATION": server.location}):
        assert probe("default").status is Status.REACHABLE
        server.stop()
        health = probe("default")
    assert health.status is Status.DOWN
    assert health.servers[0].server == server.location


def test_every_server_of_a_memcached_pool_is_probed(memcached_pool: list[servers.Server]) -> None:
    with llm_alias(pool_settings(memcached_pool)):
        health = probe("default")
    assert health.status is Status.REACHABLE
    assert sorted(server.server for server in health.servers) == sorted(s.location for s in memcached_pool)


def test_one_memcached_server_of_three_down_is_degraded(memcached_pool: list[servers.Server]) -> None:
    with llm_alias(pool_settings(memcached_pool)):
        memcached_pool[1].stop()
        health = probe("default")
    assert health.status is Status.DEGRADED
    assert health.detail.startswith(f"1 of 3 servers down: {memcached_pool[1].location}: ")
    down = [server.server for server in health.servers if server.error is not None]
    assert down == [memcached_pool[1].location]


def test_a_restarted_memcached_is_reachable_at_once(memcached_pool: list[servers.Server]) -> None:
    with llm_alias(pool_settings(memcached_pool)):
        assert probe("default").status is Status.REACHABLE  # the pools now hold open connections
        old = memcached_pool[0]
        assert old.process is not None
        old.stop()
        memcached_pool[0] = servers.Server(old.name, old.port).start(list(old.process.args))  # type: ignore[arg-type]
        health = probe("default")
    assert health.status is Status.REACHABLE, health.detail  # the dropped connection was retried once


def test_a_memcached_that_stops_answering_is_down_within_the_bound(memcached_pool: list[servers.Server]) -> None:
    assert memcached_pool[0].process is not None
    with llm_alias(pool_settings(memcached_pool[:1])):
        os.kill(memcached_pool[0].process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
        health = probe("default", timeout=0.3)
    assert health.status is Status.DOWN
    assert health.detail == f"{memcached_pool[0].location}: no answer within 0.3 s"


def test_all_three_memcached_servers_down_is_down(memcached_pool: list[servers.Server]) -> None:
    with llm_alias(pool_settings(memcached_pool)):
        for server in memcached_pool:
            server.stop()
        health = probe("default")
    assert health.status is Status.DOWN
    assert health.detail.count("127.0.0.1:") == 3


def test_an_answer_slower_than_the_threshold_is_degraded(make_llm_cache: Callable[..., LLMCache]) -> None:
    make_llm_cache("alias-django-redis")
    health = probe("default", slow=0.0)  # any answer takes some time
    assert health.status is Status.DEGRADED
    assert "(slower than 0 s)" in health.detail


def test_an_alias_that_cannot_be_built_is_down_naming_the_setting() -> None:
    with override_settings(LLM_CACHES={"default": {"CACHE": "missing"}}):
        health = probe("default")
    assert health.status is Status.DOWN
    assert "LLM_CACHES['default']['CACHE'] = 'missing' is not in CACHES" in health.detail


# Through django-health-check's own view (tests/ops_urls.py).


def health_page() -> tuple[int, dict[str, str]]:
    response = Client().get("/health/", HTTP_ACCEPT="application/json")
    return response.status_code, json.loads(response.content)


@pytest.mark.urls("tests.ops_urls")
def test_the_health_check_view_reports_a_reachable_alias(make_llm_cache: Callable[..., LLMCache]) -> None:
    make_llm_cache("alias-django-redis")
    assert health_page() == (200, {"LLMCacheCheck(alias='default')": "OK"})


@pytest.mark.urls("tests.ops_urls")
def test_the_health_check_view_warns_about_a_degraded_pool(memcached_pool: list[servers.Server]) -> None:
    with llm_alias(pool_settings(memcached_pool)):
        memcached_pool[2].stop()
        status, report = health_page()
    assert status == 500  # django-health-check fails the page on any warning
    assert report["LLMCacheCheck(alias='default')"].startswith(
        f"Warning: 1 of 3 servers down: {memcached_pool[2].location}"
    )


@pytest.mark.urls("tests.ops_urls")
def test_the_health_check_view_reports_a_dead_server_as_unavailable() -> None:
    dead = f"redis://127.0.0.1:{servers.free_port()}/0"
    with llm_alias({"BACKEND": "django_redis.cache.RedisCache", "LOCATION": dead}):
        status, report = health_page()
    assert status == 500
    assert report["LLMCacheCheck(alias='default')"].startswith("Unavailable: redis 127.0.0.1:")


def test_llm_cache_checks_names_every_alias_by_default() -> None:
    from llmcache_django.ops.health_check import LLMCacheCheck, llm_cache_checks

    config = {"default": {"CACHE": "default"}, "summaries": {"CACHE": "default", "NAMESPACE": "sum"}}
    with override_settings(LLM_CACHES=config):
        assert llm_cache_checks() == [(LLMCacheCheck, {"alias": "default"}), (LLMCacheCheck, {"alias": "summaries"})]
        assert llm_cache_checks("summaries", slow=1) == [(LLMCacheCheck, {"alias": "summaries", "slow": 1})]
