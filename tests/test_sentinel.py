"""A Sentinel-managed Redis alias under load while its primary dies: the sentinel promotes the
replica, sync and async calls follow it, and no model call fails."""

from __future__ import annotations

from pathlib import Path

from django.test import override_settings

from llmcache_django import llm_caches
from tests import servers
from tests.fault_load import FaultLoad

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def test_killing_the_primary_fails_no_model_call_and_hits_resume_on_the_promoted_replica(tmp_path: Path) -> None:
    primary, replica, watcher = servers.start_sentinel_group(tmp_path)  # the sentinel sees the replica
    caches = {"default": LOCMEM, "llm": servers.sentinel_cache_settings(watcher, SOCKET_CONNECT_TIMEOUT=1)}
    try:
        with override_settings(CACHES=caches, LLM_CACHES={"default": {"CACHE": "llm", "TTL": 600}}):
            cache = llm_caches["default"]
            cache.clear()
            load = FaultLoad(cache, threads=3, async_threads=1).start()
            servers.wait_for_replication(replica)  # the warmed entries are on the replica
            load.fault()
            primary.kill()
            resumed = load.wait_for_hits(seconds=60)
            load.stop().report("sentinel primary killed")
            assert load.failed == []
            assert resumed, "warmed prompts never hit again after the failover"
            assert cache.store.describe().startswith("redis sentinel service")  # type: ignore[attr-defined]
    finally:
        for server in (watcher, replica, primary):
            server.stop()
