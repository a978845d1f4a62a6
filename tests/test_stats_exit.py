"""Short-lived processes (a cron job, a command, a task) share all their counts before they exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable

import pytest
import redis
from pymemcache.client.base import PooledClient

from llmcache_django import MemcachedLLMCache, RedisLLMCache
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.stats import FLUSH_COUNT, Stats
from tests import servers

SCRIPT = """
from langchain_core.language_models import FakeListChatModel
{build}
model = FakeListChatModel(responses=["an answer"], cache=cache)
for index in range(100):
    model.invoke(f"question {{index % 10}}")  # 10 misses, then 90 hits
"""


def builders(namespace: str) -> dict[str, tuple[str, Callable[[servers.Server], LLMCache]]]:
    return {
        "redis": (
            "import redis; from llmcache_django import RedisLLMCache; "
            "cache = RedisLLMCache(redis.Redis(port={port}), namespace={namespace!r})",
            lambda server: RedisLLMCache(redis.Redis(port=server.port), namespace=namespace),
        ),
        "memcached": (
            "from pymemcache.client.base import PooledClient; from llmcache_django import MemcachedLLMCache; "
            "cache = MemcachedLLMCache(PooledClient(('127.0.0.1', {port})), namespace={namespace!r})",
            lambda server: MemcachedLLMCache(PooledClient(("127.0.0.1", server.port)), namespace=namespace),
        ),
    }


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_hundred_call_script_moves_the_shared_counters_by_exactly_a_hundred_lookups(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(f"{kind}_server")
    namespace = f"exit{uuid.uuid4().hex[:8]}"
    build_code, build = builders(namespace)[kind]
    script = SCRIPT.format(build=build_code.format(port=server.port, namespace=namespace))
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=120)
    stats = build(server).shared_stats()
    assert (stats["hits"], stats["misses"], stats["writes"]) == (90, 10, 10)


def test_many_pending_counts_make_a_flush_due_before_the_second_is_up() -> None:
    stats = Stats()
    stats.take_pending()
    for _ in range(FLUSH_COUNT - 1):
        stats.add("misses")
    assert not stats.flush_due()
    stats.add("misses")
    assert stats.flush_due()
