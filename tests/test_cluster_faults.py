"""A Redis Cluster primary killed under load of real LangChain models: no call fails, hits resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster
from langchain_core.language_models import FakeListLLM

from llmcache_django import RedisLLMCache
from llmcache_django.signals import llm_cache_hit
from llmcache_django.stores.base import PartialClearError, is_entry_name
from tests.cluster_servers import Cluster, start_cluster
from tests.helpers import text_generations

WARM_PROMPTS = [f"question {number}" for number in range(24)]
#: Generous: a replica is promoted after about twice the 1 s node timeout.
RECOVERY_DEADLINE = 60.0
DASHBOARD = "admin:llmcache_django_llmcache_changelist"


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of this test's own: killing a primary must not disturb the session cluster."""
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_without_failover() -> Iterator[Cluster]:
    """A cluster of this test's own whose killed primary is never replaced (see start_cluster)."""
    cluster = start_cluster(failover=False)
    yield cluster
    cluster.stop()


def primary_holding_most_of(cluster: Cluster, pattern: str) -> Any:
    best, most = None, -1
    for server in cluster.servers:
        node = redis.Redis(port=server.port)
        if node.info("replication")["role"] == "master":
            count = sum(1 for _ in node.scan_iter(match=pattern))
            node.execute_command("WAIT", 1, 2000)  # the replica has every entry before the kill
            if count > most:
                best, most = server, count
        node.close()
    return best


class Load:
    """Passes over the warm prompts plus fresh ones (misses), timing every model call."""

    def __init__(self, model: FakeListLLM) -> None:
        self.model = model
        self.failed = 0
        self.hits = 0
        self.longest = 0.0
        self.fresh = 0
        llm_cache_hit.connect(self._hit, weak=False)

    def _hit(self, **kwargs: Any) -> None:
        self.hits += 1

    def one_pass(self) -> int:
        """Run one pass; return how many of the warm prompts hit."""
        before = self.hits
        for prompt in [*WARM_PROMPTS, f"fresh {self.fresh}", f"fresh {self.fresh + 1}"]:
            started = time.monotonic()
            try:
                self.model.invoke(prompt)
            except Exception:
                self.failed += 1
            self.longest = max(self.longest, time.monotonic() - started)
        self.fresh += 2
        return self.hits - before

    def close(self) -> None:
        llm_cache_hit.disconnect(self._hit)


def test_killing_a_primary_fails_no_model_call_and_hits_resume_after_failover(own_cluster: Cluster) -> None:
    client = redis.cluster.RedisCluster.from_url(own_cluster.urls[0])
    cache = RedisLLMCache(client, namespace="faults", server_timeout=0.5)
    model = FakeListLLM(responses=[f"answer {number}" for number in range(7)], cache=cache)
    load = Load(model)
    try:
        load.one_pass()  # every warm prompt is stored
        assert load.one_pass() == len(WARM_PROMPTS)
        victim = primary_holding_most_of(own_cluster, cache.store.pattern)  # type: ignore[attr-defined]
        assert victim is not None and victim.process is not None
        load.longest = 0.0
        victim.process.kill()
        killed_at = time.monotonic()
        passes = 0
        while load.one_pass() < len(WARM_PROMPTS) and time.monotonic() - killed_at < RECOVERY_DEADLINE:
            passes += 1
        resumed_after = time.monotonic() - killed_at
        print(
            f"\ncluster primary killed: longest model call {load.longest * 1000:.0f} ms, "
            f"every warm prompt hit again after {resumed_after:.1f} s ({passes} passes)"
        )
        assert load.failed == 0
        assert load.one_pass() == len(WARM_PROMPTS)  # hits resumed: the promoted replica serves them
    finally:
        load.close()


@pytest.mark.django_db
def test_with_a_primary_down_the_dashboard_and_a_clear_name_that_node(
    cluster_without_failover: Cluster, admin_client: Any
) -> None:
    own_cluster = cluster_without_failover
    from django.test import override_settings
    from django.urls import reverse

    from llmcache_django import llm_caches
    from llmcache_django.ops.health import Status, probe

    settings = override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "llm": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": own_cluster.urls},
        },
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": "nodes", "OPTIONS": {"CLUSTER": True}}},
    )
    with settings:
        cache = llm_caches["default"]
        for number in range(30):
            cache.update(f"p{number}", "[('model_name', 'm')]", text_generations("a"))
        page = admin_client.get(reverse(DASHBOARD)).content.decode()
        assert page.count('class="llmcache-node llmcache-quiet"') == len(own_cluster.servers)
        victim = primary_holding_most_of(own_cluster, cache.store.pattern)  # type: ignore[attr-defined]
        victim.process.kill()
        page = admin_client.get(reverse(DASHBOARD)).content.decode()
        assert f'data-node="127.0.0.1:{victim.port}">primary 127.0.0.1:{victim.port}: down' in page
        with pytest.raises(PartialClearError, match=f"could not reach 127.0.0.1:{victim.port}"):
            cache.store.clear()
        health = probe("default")
        assert health.status is Status.DEGRADED
        assert f"1 of {len(own_cluster.servers)} servers down: 127.0.0.1:{victim.port}" in health.detail


def entries_on_live_primaries(cluster: Cluster, store: Any, dead: Any) -> int:
    """Entries (not the stats or model records) on every primary but ``dead``."""
    count = 0
    for server in cluster.servers:
        if server is dead:
            continue
        node = redis.Redis(port=server.port, decode_responses=True)
        if node.info("replication")["role"] == "master":
            keys = node.scan_iter(match=store.pattern)
            count += sum(1 for key in keys if is_entry_name(key[len(store.prefix) :]))
        node.close()
    return count


@pytest.mark.django_db
def test_with_a_primary_down_aclear_and_the_admin_clear_say_and_log_what_went(
    cluster_without_failover: Cluster, admin_client: Any
) -> None:
    from django.contrib.admin.models import LogEntry
    from django.test import override_settings
    from django.urls import reverse

    from llmcache_django import llm_caches

    settings = override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "llm": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": cluster_without_failover.urls,
            },
        },
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": "partly", "OPTIONS": {"CLUSTER": True}}},
    )
    with settings:
        cache = llm_caches["default"]
        for number in range(30):
            cache.update(f"p{number}", "[('model_name', 'm')]", text_generations("a"))
        victim = primary_holding_most_of(cluster_without_failover, cache.store.pattern)  # type: ignore[attr-defined]
        victim.process.kill()
        on_the_others = entries_on_live_primaries(cluster_without_failover, cache.store, victim)
        assert on_the_others > 0
        with pytest.raises(PartialClearError) as raised:
            asyncio.run(cache.aclear())  # primary by primary, as clear() does
        assert (raised.value.removed, list(raised.value.failed)) == (on_the_others, [f"127.0.0.1:{victim.port}"])
        for number in range(30):  # those on the dead primary's slots are skipped writes
            cache.update(f"q{number}", "[('model_name', 'm')]", text_generations("b"))
        on_the_others = entries_on_live_primaries(cluster_without_failover, cache.store, victim)
        assert on_the_others > 0
        admin_client.post(reverse("admin:llmcache_django_llmcache_clear", args=["default"]))
    log = LogEntry.objects.get()
    assert f"cleared {on_the_others} entries on " in log.change_message
    assert f"could not reach 127.0.0.1:{victim.port} (" in log.change_message
    assert log.object_repr == f"all of LLM cache 'default' ({on_the_others} entries, incomplete)"
