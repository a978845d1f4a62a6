"""The clients the Redis cache derives have every setting of the user's client, on every event loop."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.sentinel
from asgiref.sync import async_to_sync
from django.test import override_settings
from redis.backoff import ConstantBackoff
from redis.credentials import UsernamePasswordCredentialProvider
from redis.retry import Retry

from llmcache_django import RedisLLMCache, llm_caches
from llmcache_django.compat import AsyncRedisCache, RedisCache
from llmcache_django.core.cache import LLMCache
from llmcache_django.stores.redis_clients import POOL_STATE, ClientSettingError, derive_client
from tests import servers
from tests.helpers import chat_generation, text_generations

LLM = "model=test"
SERVICE = servers.SENTINEL_SERVICE


def round_trips(cache: LLMCache, prompt: str = "p") -> tuple[Any, Any]:
    """Write with one kind of call, read with the other; return (async read, sync read)."""
    cache.update(prompt, LLM, text_generations("sync write"))
    async_read = asyncio.run(cache.alookup(prompt, LLM))
    asyncio.run(cache.aupdate(prompt + "-async", LLM, text_generations("async write")))
    return async_read, cache.lookup(prompt + "-async", LLM)


def assert_round_trips(cache: LLMCache) -> None:
    assert round_trips(cache) == (text_generations("sync write"), text_generations("async write"))
    assert cache.stats.errors == 0  # type: ignore[union-attr]


# Credentials: an ACL user through a credential provider, the default user disabled.


@pytest.fixture(scope="module")
def acl_server() -> Iterator[servers.Server]:
    server = servers.start_redis("--user", "default", "off", "--user", "alice", "on", ">s3cret", "~*", "&*", "+@all")
    yield server
    server.stop()


def alice() -> UsernamePasswordCredentialProvider:
    return UsernamePasswordCredentialProvider("alice", "s3cret")


def test_a_credential_provider_reaches_the_derived_async_client(acl_server: servers.Server) -> None:
    assert_round_trips(RedisCache(redis.Redis(port=acl_server.port, credential_provider=alice())))


def test_a_credential_provider_reaches_the_derived_sync_client(acl_server: servers.Server) -> None:
    assert_round_trips(AsyncRedisCache(redis.asyncio.Redis(port=acl_server.port, credential_provider=alice())))


def test_username_and_password_reach_the_derived_clients(acl_server: servers.Server) -> None:
    url = f"redis://alice:s3cret@127.0.0.1:{acl_server.port}/3"
    assert_round_trips(AsyncRedisCache(redis.asyncio.Redis.from_url(url)))
    assert_round_trips(RedisCache(redis.Redis.from_url(url)))


# TLS: a client certificate whose key is encrypted, checked against our own CA.


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> servers.Certificates:
    return servers.make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(certificates: servers.Certificates) -> Iterator[servers.Server]:
    server = servers.start_redis_tls(certificates)
    yield server
    server.stop()


def tls_settings(certificates: servers.Certificates, *, encrypted_key: bool = False) -> dict[str, Any]:
    settings = {
        "ssl": True,
        "ssl_ca_certs": str(certificates.ca_cert),
        "ssl_certfile": str(certificates.client_cert),
        "ssl_keyfile": str(certificates.client_key),
        "ssl_check_hostname": True,
    }
    if encrypted_key:
        settings["ssl_keyfile"] = str(certificates.encrypted_client_key)
        settings["ssl_password"] = certificates.client_key_password
    return settings


def takes_ssl_password(connection_class: type) -> bool:
    """Whether this redis-py's ``connection_class`` can decrypt a key (5.0's asyncio one cannot)."""
    return "ssl_password" in inspect.signature(connection_class.__init__).parameters


def test_tls_settings_reach_the_derived_async_client(
    tls_server: servers.Server, certificates: servers.Certificates
) -> None:
    client = redis.Redis(host="127.0.0.1", port=tls_server.port, **tls_settings(certificates))
    assert_round_trips(RedisCache(client))


def test_tls_settings_reach_the_derived_sync_client(
    tls_server: servers.Server, certificates: servers.Certificates
) -> None:
    client = redis.asyncio.Redis(host="127.0.0.1", port=tls_server.port, **tls_settings(certificates))
    assert_round_trips(AsyncRedisCache(client))


def test_an_encrypted_client_key_is_decrypted_by_the_derived_async_client_too(
    tls_server: servers.Server, certificates: servers.Certificates
) -> None:
    settings = tls_settings(certificates, encrypted_key=True)
    client = redis.Redis(host="127.0.0.1", port=tls_server.port, **settings)
    if takes_ssl_password(redis.asyncio.connection.SSLConnection):
        assert_round_trips(RedisCache(client))
    else:  # an older redis-py: say so, rather than connect without the key
        with pytest.raises(ClientSettingError, match=r"ssl_password="):
            RedisCache(client)


def test_a_tls_setting_with_no_async_equivalent_fails_naming_it(certificates: servers.Certificates) -> None:
    client = redis.Redis(port=servers.free_port(), ssl_validate_ocsp=True, **tls_settings(certificates))
    with pytest.raises(ClientSettingError, match=r"ssl_validate_ocsp=True .* give both clients"):
        RedisCache(client)


# Unix socket, RESP3, client name, decode_responses.


@pytest.fixture(scope="module")
def unix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.Server, Path]]:
    path = tmp_path_factory.mktemp("unix") / "redis.sock"
    server = servers.start_redis("--unixsocket", str(path), "--unixsocketperm", "700")
    yield server, path
    server.stop()


def test_a_unix_socket_client_derives_clients_on_the_same_socket(unix_server: tuple[servers.Server, Path]) -> None:
    server, path = unix_server
    assert_round_trips(RedisCache(redis.Redis(unix_socket_path=str(path))))
    assert_round_trips(AsyncRedisCache(redis.asyncio.Redis(unix_socket_path=str(path))))
    connections = async_connections(
        RedisCache(redis.Redis(unix_socket_path=str(path), client_name="unix")), server, "unix"
    )
    assert connections
    assert all(connection["addr"].startswith(str(path)) for connection in connections)


def async_connections(cache: LLMCache, server: servers.Server, name: str) -> list[dict[str, Any]]:
    """The server's view of the connections named ``name`` while the cache's async calls run."""

    async def lookup_and_list() -> list[dict[str, Any]]:
        await cache.alookup("p", LLM)  # opens the async client's connection, and keeps it open
        return redis.Redis(port=server.port).client_list()  # type: ignore[return-value]

    return [client for client in asyncio.run(lookup_and_list()) if client["name"] == name]


def test_resp3_and_the_client_name_reach_every_derived_connection(redis_server: servers.Server) -> None:
    name = f"llm-{uuid.uuid4().hex[:8]}"
    cache = RedisCache(redis.Redis(port=redis_server.port, protocol=3, client_name=name))
    connections = async_connections(cache, redis_server, name)
    assert connections  # the async client's connection carries the name ...
    assert {connection["resp"] for connection in connections} == {"3"}  # ... and speaks RESP3


def test_a_decoding_async_client_round_trips_large_answers(redis_server: servers.Server) -> None:
    cache = AsyncRedisCache(redis.asyncio.Redis(port=redis_server.port, decode_responses=True))
    big = text_generations("A long answer. " * 5000)
    asyncio.run(cache.aupdate("big", LLM, big))
    assert asyncio.run(cache.alookup("big", LLM)) == big
    assert cache.lookup("big", LLM) == big


# Every setting, generically.


def test_every_connection_setting_is_carried_to_the_derived_async_client() -> None:
    client = redis.Redis(
        host="127.0.0.1",
        port=servers.free_port(),
        db=5,
        credential_provider=alice(),
        socket_timeout=1.5,
        socket_connect_timeout=0.5,
        socket_keepalive=False,
        retry=Retry(ConstantBackoff(0.01), 3),
        retry_on_error=[ConnectionResetError],
        health_check_interval=7,
        client_name="named",
        protocol=3,
        decode_responses=True,
        encoding="latin-1",
    )
    source = client.connection_pool.connection_kwargs
    derived_pool = derive_client(client, asynchronous=True, server_timeout=2.0).connection_pool
    derived = derived_pool.connection_kwargs
    for name, value in source.items():
        if name not in POOL_STATE and name not in {"retry", "parser_class"}:
            assert derived[name] == value, name
    retry = derived_pool.make_connection().retry
    assert isinstance(retry, redis.asyncio.retry.Retry)
    assert (retry._retries, retry._backoff.compute(1)) == (3, 0.01)
    assert ConnectionResetError in retry._supported_errors


def test_missing_timeouts_become_the_server_timeout_on_derived_clients() -> None:
    client = redis.Redis(port=servers.free_port(), socket_timeout=None, socket_connect_timeout=None)
    derived = derive_client(client, asynchronous=True, server_timeout=0.75).connection_pool.connection_kwargs
    assert (derived["socket_timeout"], derived["socket_connect_timeout"]) == (0.75, 0.75)


def test_a_given_client_without_timeouts_is_used_through_a_bounded_copy(redis_server: servers.Server) -> None:
    given = redis.Redis.from_url(redis_server.url)  # no timeout set: django-redis's default
    store = RedisLLMCache(given, server_timeout=0.75).store
    kwargs = store.client.connection_pool.connection_kwargs  # type: ignore[attr-defined]
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.75, 0.75)
    bounded = redis.Redis(port=redis_server.port, socket_timeout=0.5, socket_connect_timeout=0.25, retry=None)
    assert RedisLLMCache(bounded).store.client is bounded  # type: ignore[attr-defined]  # already one short try


def test_a_given_client_with_longer_timeouts_or_retries_is_used_through_a_copy_without_them(
    redis_server: servers.Server,
) -> None:
    given = redis.Redis(port=redis_server.port, socket_timeout=3, socket_connect_timeout=0.25)  # retries 10 times
    client = RedisLLMCache(given, server_timeout=0.75).store.client  # type: ignore[attr-defined]
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.75, 0.25)
    assert client.connection_pool.make_connection().retry.get_retries() == 0
    assert RedisLLMCache(given, server_timeout=None).store.client is given  # type: ignore[attr-defined]


def test_a_sync_connect_callback_fails_naming_the_setting() -> None:
    client = redis.Redis(port=servers.free_port(), redis_connect_func=lambda connection: connection.on_connect())
    with pytest.raises(ClientSettingError, match=r"redis_connect_func=.* give both clients"):
        RedisCache(client)


def test_a_callback_is_fine_when_both_clients_are_given(redis_server: servers.Server) -> None:
    opened: list[str] = []

    def on_connect(connection: Any) -> None:
        opened.append("sync")
        connection.on_connect()

    client = redis.Redis(port=redis_server.port, redis_connect_func=on_connect)
    cache = RedisLLMCache(client, async_client=redis.asyncio.Redis(port=redis_server.port), namespace="both")
    assert_round_trips(cache)
    assert opened == ["sync"]


# Sentinel: a primary, a replica and a sentinel on loopback.


def test_a_sentinel_client_derives_an_async_client_on_the_same_service(
    sentinel: tuple[servers.Server, servers.Server],
) -> None:
    primary, watcher = sentinel
    manager = redis.sentinel.Sentinel([("127.0.0.1", watcher.port)], socket_timeout=1)
    cache = RedisCache(manager.master_for(SERVICE, socket_timeout=1))
    assert_round_trips(cache)
    assert redis.Redis(port=primary.port).exists(cache.store.prefix + entry_name("p-async")) == 1  # type: ignore[attr-defined]
    assert "sentinel service" in repr(cache)


def test_an_async_sentinel_client_derives_a_sync_client_on_the_same_service(
    sentinel: tuple[servers.Server, servers.Server],
) -> None:
    primary, watcher = sentinel
    manager = redis.asyncio.sentinel.Sentinel([("127.0.0.1", watcher.port)], socket_timeout=1)
    cache = AsyncRedisCache(manager.master_for(SERVICE, socket_timeout=1))
    assert_round_trips(cache)
    assert redis.Redis(port=primary.port).exists(cache.store.prefix + entry_name("p")) == 1  # type: ignore[attr-defined]


def test_a_django_redis_sentinel_alias_works_sync_and_async(sentinel: tuple[servers.Server, servers.Server]) -> None:
    primary, watcher = sentinel
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "llm": servers.sentinel_cache_settings(watcher, db=2),
    }
    with override_settings(CACHES=caches, LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": "sentinel"}}):
        cache = llm_caches["default"]
        cache.clear()
        assert_round_trips(cache)
        assert redis.Redis(port=primary.port, db=2).exists(cache.store.prefix + entry_name("p")) == 1  # type: ignore[attr-defined]


def entry_name(prompt: str) -> str:
    from llmcache_django.core.keys import entry_digest

    return entry_digest(prompt, LLM)


# Event loops: a given async client keeps working from every new loop.


def test_a_given_async_client_hits_from_a_second_asyncio_run(redis_server: servers.Server) -> None:
    cache = AsyncRedisCache(redis.asyncio.Redis(port=redis_server.port))
    cache.clear()
    asyncio.run(cache.aupdate("p", LLM, [chat_generation()]))
    assert asyncio.run(cache.alookup("p", LLM)) == [chat_generation()]
    assert asyncio.run(cache.alookup("p", LLM)) == [chat_generation()]
    assert cache.stats.errors == 0  # type: ignore[union-attr]


def test_a_given_async_client_hits_through_async_to_sync(redis_server: servers.Server) -> None:
    from langchain_core.language_models import FakeListChatModel

    client = redis.asyncio.Redis(port=redis_server.port)
    asyncio.run(client.ping())  # the user's own client, already bound to a loop that is now closed
    cache = AsyncRedisCache(client)
    cache.clear()
    model = FakeListChatModel(responses=["first", "second"], cache=cache)
    answers = [async_to_sync(model.ainvoke)("hello").content for _ in range(3)]  # like three async views
    assert answers == ["first", "first", "first"]
    assert cache.stats.errors == 0  # type: ignore[union-attr]


def test_a_custom_connection_class_is_kept_on_the_clients_of_other_event_loops(redis_server: servers.Server) -> None:
    class CountingConnection(redis.asyncio.connection.Connection):
        opened = 0

        def __init__(self, **kwargs: Any) -> None:
            CountingConnection.opened += 1
            super().__init__(**kwargs)

    pool = redis.asyncio.ConnectionPool(connection_class=CountingConnection, port=redis_server.port)
    with pytest.raises(ClientSettingError, match=r"connection_class .*CountingConnection has no known sync"):
        AsyncRedisCache(redis.asyncio.Redis(connection_pool=pool))  # it would need a sync twin
    both = RedisLLMCache(redis.Redis(port=redis_server.port), async_client=redis.asyncio.Redis(connection_pool=pool))
    asyncio.run(both.alookup("p", LLM))
    asyncio.run(both.alookup("p", LLM))
    assert CountingConnection.opened == 2  # one connection per loop, each of the user's class


def test_after_a_sentinel_failover_sync_and_async_calls_follow_the_new_primary(tmp_path: Path) -> None:
    primary, replica, watcher = servers.start_sentinel_group(tmp_path, SERVICE)
    try:
        manager = redis.sentinel.Sentinel([("127.0.0.1", watcher.port)], socket_timeout=1)
        cache = RedisCache(manager.master_for(SERVICE, socket_timeout=1, socket_connect_timeout=1))
        cache.outage_backoff = 0.05  # the write that meets the demoted primary is a skipped write
        new_primary = redis.Redis(port=replica.port)

        def fail_over() -> None:
            wait_for(lambda: start_failover(manager.sentinels[0]), "the sentinel to accept a failover")
            wait_for(lambda: manager.discover_master(SERVICE)[1] == replica.port, "the replica's promotion")
            # Until the sentinel demotes it (its INFO poll: about 10 s), the old primary still accepts
            # writes, and a connection to it has no reason to move; once it answers READONLY, they move.
            old_primary = redis.Redis(port=primary.port)
            wait_for(lambda: old_primary.role()[0] == b"slave", "the old primary's demotion", seconds=30)

        async def across_the_failover() -> bool:
            await cache.aupdate("before", LLM, text_generations("x"))  # connects this loop's client
            await asyncio.to_thread(fail_over)
            for _ in range(100):  # bounded: 100 x 0.1 s
                if await writes_land(cache, "async", new_primary):
                    return True
                await asyncio.sleep(0.1)
            return False

        cache.update("before", LLM, text_generations("x"))  # connects the sync client
        assert asyncio.run(across_the_failover())
        wait_for(lambda: sync_writes_land(cache, new_primary), "sync writes on the new primary")
        assert cache.lookup("async", LLM) == text_generations("after")
    finally:
        for server in (watcher, replica, primary):
            server.stop()


def start_failover(sentinel: redis.Redis) -> bool:
    try:
        return bool(sentinel.sentinel_failover(SERVICE))
    except redis.ResponseError as exc:  # NOGOODSLAVE until the sentinel has seen the replica in sync
        if "NOGOODSLAVE" not in str(exc):
            raise
        return False


def sync_writes_land(cache: LLMCache, new_primary: redis.Redis) -> bool:
    cache.update("sync", LLM, text_generations("after"))
    return bool(new_primary.exists(cache.store.prefix + entry_name("sync")))  # type: ignore[attr-defined]


async def writes_land(cache: LLMCache, prompt: str, new_primary: redis.Redis) -> bool:
    await cache.aupdate(prompt, LLM, text_generations("after"))
    return bool(new_primary.exists(cache.store.prefix + entry_name(prompt)))  # type: ignore[attr-defined]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    for _ in range(round(seconds * 10)):  # bounded: polls every 0.1 s
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")
