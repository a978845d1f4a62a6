"""A PyMemcacheCache alias with three LOCATIONs: one server dies, a clear misses it, it comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from llmcache_django import llm_caches
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest
from llmcache_django.stores.base import PartialClearError
from llmcache_django.stores.memcached_pool import MemcachedPoolStore
from tests import servers
from tests.helpers import text_generations
from tests.partition import Partition

LLM = "fake-list-llm"
MEMCACHED = "django.core.cache.backends.memcached.PyMemcacheCache"
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
#: Quick dead-node handling so a test sees a node come back within a second.
ADMIN = "admin:llmcache_django_llmcache"
QUICK = {"retry_timeout": 0.1, "dead_timeout": 0.5, "timeout": 0.5, "connect_timeout": 0.5}


@pytest.fixture
def pool() -> Iterator[list[servers.Server]]:
    """Three memcached servers of this test's own, so one can be killed, paused or restarted."""
    started = [servers.start_memcached() for _ in range(3)]
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@contextmanager
def pool_alias(pool: list[Any], **options: Any) -> Iterator[LLMCache]:
    caches = {
        "default": LOCMEM,
        "llm": {"BACKEND": MEMCACHED, "LOCATION": [s.location for s in pool], "OPTIONS": options},
    }
    with override_settings(CACHES=caches, LLM_CACHES={"default": {"CACHE": "llm", "TTL": None}}):
        cache = llm_caches["default"]
        cache.clear()
        yield cache


def node_of(cache: LLMCache, prompt: str) -> str:
    """The server that holds ``prompt``'s entry while every server is up."""
    store = cache.store
    assert isinstance(store, MemcachedPoolStore)
    return str(store.hash_client.hasher.get_node(store.key(entry_digest(prompt, LLM))))


def filled(cache: LLMCache, count: int = 30) -> dict[str, str]:
    """``count`` entries, ``prompt -> server``."""
    prompts = {f"question {index}": "" for index in range(count)}
    for prompt in prompts:
        cache.update(prompt, LLM, text_generations(f"answer to {prompt}"))
        prompts[prompt] = node_of(cache, prompt)
    assert len(set(prompts.values())) == 3  # every server holds some
    return prompts


def restart(pool: list[servers.Server], index: int) -> None:
    old = pool[index]
    assert old.process is not None
    old.stop()
    pool[index] = servers.Server(old.name, old.port).start(list(old.process.args))  # type: ignore[arg-type]


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.05)


def test_an_alias_with_several_locations_gets_a_pool_store_with_dead_node_defaults(
    pool: list[servers.Server],
) -> None:
    with pool_alias(pool) as cache:
        client = cache.store.hash_client  # type: ignore[attr-defined]
        assert isinstance(cache.store, MemcachedPoolStore)
        settings = (client.retry_attempts, client.retry_timeout, client.dead_timeout, client.ignore_exc)
        assert settings == (2, 1, 10, False)


def test_the_alias_options_override_the_dead_node_defaults(pool: list[servers.Server]) -> None:
    with pool_alias(pool, retry_attempts=3, dead_timeout=30, ignore_exc=True) as cache:
        client = cache.store.hash_client  # type: ignore[attr-defined]
        assert (client.retry_attempts, client.dead_timeout, client.ignore_exc) == (3, 30, True)


@pytest.mark.parametrize("ignore_exc", [False, True])
def test_one_dead_node_of_three_keeps_the_others_hitting_and_never_pauses_the_pool(
    pool: list[servers.Server], ignore_exc: bool
) -> None:
    with pool_alias(pool, ignore_exc=ignore_exc, **QUICK) as cache:
        prompts = filled(cache)
        pool[1].stop()
        for _ in range(3):
            results = {prompt: cache.lookup(prompt, LLM) is not None for prompt in prompts}
            assert not cache.store.paused_until  # the whole pool is never left alone for one node
        assert all(hit for prompt, hit in results.items() if prompts[prompt] != pool[1].location)
        assert not any(hit for prompt, hit in results.items() if prompts[prompt] == pool[1].location)
        assert pool[1].location in cache.store.unreachable_nodes()


def test_keys_of_the_dead_node_are_cached_on_the_others_until_it_is_back(pool: list[servers.Server]) -> None:
    with pool_alias(pool, **{**QUICK, "dead_timeout": 60}) as cache:
        prompts = filled(cache)
        lost = [prompt for prompt, node in prompts.items() if node == pool[2].location]
        pool[2].stop()
        dead = cache.store.hash_client._dead_clients  # type: ignore[attr-defined]
        wait_for(lambda: cache.lookup(lost[0], LLM) is None and ("127.0.0.1", pool[2].port) in dead)
        for prompt in lost:
            cache.update(prompt, LLM, text_generations("again"))
        assert all(cache.lookup(prompt, LLM) == text_generations("again") for prompt in lost)


def test_a_node_that_comes_back_is_used_again(pool: list[servers.Server]) -> None:
    with pool_alias(pool, **QUICK) as cache:
        prompts = filled(cache)
        lost = [prompt for prompt, node in prompts.items() if node == pool[0].location]
        pool[0].stop()
        for prompt in prompts:
            cache.lookup(prompt, LLM)
        restart(pool, 0)  # empty: a restarted memcached keeps nothing

        def refilled_there() -> bool:
            for prompt in lost:
                if cache.lookup(prompt, LLM) is None:
                    cache.update(prompt, LLM, text_generations("back"))
            return not cache.store.unreachable_nodes() and all(cache.lookup(p, LLM) for p in lost)

        wait_for(refilled_there)
        assert cache.store.nodes()[0].entries == len(lost)


def test_losing_the_node_with_the_first_generation_key_is_neither_stale_nor_an_error_storm(
    pool: list[servers.Server],
) -> None:
    with pool_alias(pool, **QUICK) as cache:
        prompts = filled(cache)
        store = cache.store
        assert isinstance(store, MemcachedPoolStore)
        pool[0].stop()
        errors_before = cache.stats.errors if cache.stats else 0  # type: ignore[attr-defined]
        for _ in range(5):
            for prompt in prompts:
                cache.lookup(prompt, LLM)
        errors = (cache.stats.errors if cache.stats else 0) - errors_before  # type: ignore[attr-defined]
        assert errors <= 3  # the failure and the retry, not one per lookup
        alive = [prompt for prompt, node in prompts.items() if node != pool[0].location]
        assert all(cache.lookup(prompt, LLM) for prompt in alive)


@pytest.fixture
def partition(pool: list[servers.Server]) -> Iterator[Partition]:
    """The second server of ``pool`` behind a relay whose network can be cut."""
    relay = Partition(pool[1])
    yield relay
    relay.cut()


def test_a_clear_while_a_node_is_cut_off_says_so_and_never_resurrects_its_entries(
    pool: list[servers.Server], partition: Partition
) -> None:
    with pool_alias([pool[0], partition, pool[2]], **QUICK) as cache:
        prompts = filled(cache)
        away = [prompt for prompt, node in prompts.items() if node == partition.location]
        partition.cut()  # the server keeps its entries and its old generation
        with pytest.raises(PartialClearError) as raised:
            cache.clear()
        assert raised.value.failed.keys() == {partition.location}
        assert raised.value.cleared == [pool[0].location, pool[2].location]
        assert raised.value.removed == len(prompts) - len(away)
        partition.heal()
        wait_for(lambda: not cache.store.unreachable_nodes() and _answers(cache, away[-1]))
        assert [prompt for prompt in prompts if cache.lookup(prompt, LLM) is not None] == []


def test_a_process_that_never_saw_the_node_away_does_not_serve_its_old_entries(
    pool: list[servers.Server], partition: Partition
) -> None:
    with pool_alias([pool[0], partition, pool[2]], **QUICK) as cache:
        prompts = filled(cache)
        away = [prompt for prompt, node in prompts.items() if node == partition.location]
        partition.cut()
        with pytest.raises(PartialClearError):
            cache.clear()
        partition.heal()
        llm_caches.reset()  # another process: its client never marked the node down
        other = llm_caches["default"]
        assert [prompt for prompt in away if other.lookup(prompt, LLM) is not None] == []
        assert _entries_still_on(partition, other) == len(away)  # there, but never served


def _entries_still_on(partition: Partition, cache: LLMCache) -> int:
    """Entries kept by the server behind ``partition`` (not deleted: it was cut off)."""
    states = {state.name: state for state in cache.store.nodes()}
    return int(states[partition.location].entries or 0)


def _answers(cache: LLMCache, prompt: str) -> bool:
    cache.update(prompt, LLM, text_generations("probe"))
    found = cache.lookup(prompt, LLM) is not None
    cache.store.delete(entry_digest(prompt, LLM))
    return found


@pytest.mark.parametrize("twin", ["clear", "aclear"])
def test_both_clear_twins_log_what_a_clear_missing_a_node_removed(
    pool: list[servers.Server], twin: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pool_alias(pool, **QUICK) as cache:
        prompts = filled(cache)
        on_dead = sum(node == pool[2].location for node in prompts.values())
        pool[2].stop()
        cache.store.paused_until = time.monotonic() + 60  # a clear lets the server be asked again
        with pytest.raises(PartialClearError) as raised:
            cache.clear() if twin == "clear" else asyncio.run(cache.aclear())
    assert (raised.value.removed, list(raised.value.failed)) == (len(prompts) - on_dead, [pool[2].location])
    assert f"LLM cache 'default' cleared in part: cleared {len(prompts) - on_dead} entries on" in caplog.text
    assert cache.store.paused_until == 0.0


def test_clear_llm_cache_says_which_server_could_not_be_cleared(pool: list[servers.Server]) -> None:
    with pool_alias(pool, **QUICK) as cache:
        prompts = filled(cache)
        on_dead = sum(node == pool[2].location for node in prompts.values())
        pool[2].stop()
        with pytest.raises(CommandError) as raised:
            call_command("clear_llm_cache", "--noinput", stdout=StringIO())
    message = str(raised.value)
    assert message.startswith(
        f"LLM cache 'default': cleared {len(prompts) - on_dead} entries on {pool[0].location}, {pool[1].location}; "
        f"could not reach {pool[2].location} (ConnectionRefusedError: "
    )
    assert message.endswith(
        "the entries there were not deleted. They are not served when the server is back "
        "(its generation is older than the clear), and go as they expire or are evicted."
    )


@pytest.mark.django_db
def test_the_dashboard_shows_each_server_with_its_entries_items_and_bytes(
    pool: list[servers.Server], admin_client: Any
) -> None:
    with pool_alias(pool) as cache:
        prompts = filled(cache)
        pool[1].stop()
        text = admin_client.get(reverse(f"{ADMIN}_changelist")).content.decode()
        states = {state.name: state for state in cache.store.nodes()}
    for server in (pool[0], pool[2]):
        state = states[server.location]
        assert state.error is None and state.entries == sum(node == server.location for node in prompts.values())
        assert state.keys >= state.entries and state.bytes_used > 0
        assert f'data-node="{server.location}"' in text
        assert f'llmcache-node-entries">{state.entries}<' in text
    assert f"down: memcached node {pool[1].location}: ConnectionRefusedError" in text


@pytest.mark.django_db
def test_clearing_a_pool_with_a_dead_node_in_the_admin_says_what_was_not_cleared(
    pool: list[servers.Server], admin_client: Any
) -> None:
    with pool_alias(pool) as cache:
        filled(cache)
        pool[0].stop()
        response = admin_client.post(reverse(f"{ADMIN}_clear", args=["default"]), follow=True)
    text = response.content.decode()
    assert f"could not reach {pool[0].location} (ConnectionRefusedError" in text
    assert f"on {pool[1].location}, {pool[2].location}" in text
