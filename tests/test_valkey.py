"""valkey-py clients (django-valkey's, or your own) get the same treatment as redis-py ones."""

from __future__ import annotations

import asyncio

import valkey
import valkey.asyncio
import valkey.sentinel
from valkey.backoff import ConstantBackoff
from valkey.retry import Retry

from llmcache_django import RedisLLMCache
from llmcache_django.stores.redis_clients import derive_client
from tests import servers
from tests.helpers import text_generations

LLM = "model=test"


def round_trip(cache: RedisLLMCache) -> tuple[object, object]:
    cache.clear()
    cache.update("p", LLM, text_generations("sync write"))
    asyncio.run(cache.aupdate("q", LLM, text_generations("async write")))
    return asyncio.run(cache.alookup("p", LLM)), cache.lookup("q", LLM)


def test_a_valkey_client_serves_sync_and_async_calls(redis_server: servers.Server) -> None:
    cache = RedisLLMCache(valkey.Valkey(port=redis_server.port), namespace="vk")
    assert round_trip(cache) == (text_generations("sync write"), text_generations("async write"))
    assert repr(cache).startswith("<RedisLLMCache alias='' valkey localhost:")
    assert cache.stats.errors == 0  # type: ignore[union-attr]


def test_an_async_valkey_client_derives_a_sync_valkey_client_with_its_settings(redis_server: servers.Server) -> None:
    retry = Retry(ConstantBackoff(0.01), 2)
    client = valkey.asyncio.Valkey(port=redis_server.port, retry=retry, client_name="llm-vk", protocol=3)
    cache = RedisLLMCache(async_client=client, namespace="vk-async")
    assert round_trip(cache) == (text_generations("sync write"), text_generations("async write"))
    sync = cache.store.client  # type: ignore[attr-defined]
    assert isinstance(sync, valkey.Valkey)
    settings = sync.connection_pool.connection_kwargs
    assert (settings["client_name"], settings["protocol"]) == ("llm-vk", 3)
    assert isinstance(settings["retry"], Retry)  # valkey-py's own class, one try: the cache's policy
    assert settings["retry"]._retries == 0  # the client's 2 retries are not the cache's
    assert sync.client_getname() == b"llm-vk"  # the server saw the name


def test_a_valkey_sentinel_client_derives_an_async_client_on_the_same_service(
    sentinel: tuple[servers.Server, servers.Server],
) -> None:
    _primary, watcher = sentinel
    manager = valkey.sentinel.Sentinel([("127.0.0.1", watcher.port)], socket_timeout=1)
    client = manager.master_for(servers.SENTINEL_SERVICE, socket_timeout=1, db=4)
    derived = derive_client(client, asynchronous=True, server_timeout=1)
    assert isinstance(derived, valkey.asyncio.Valkey)
    assert derived.connection_pool.service_name == servers.SENTINEL_SERVICE
    cache = RedisLLMCache(client, namespace="vk-sentinel")
    assert round_trip(cache) == (text_generations("sync write"), text_generations("async write"))
    assert "sentinel service" in repr(cache)
