"""LangGraph node caching on every store kind: a real StateGraph with CachePolicy nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from hashlib import sha256
from typing import Any, TypedDict

import pytest
import redis
from asgiref.sync import sync_to_async
from django.test import override_settings
from langgraph.graph import END, START, StateGraph
from langgraph.types import CachePolicy

from llmcache_django import llm_caches
from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.node_entries import decode_envelope, encode_envelope, entry_name
from llmcache_django.langgraph import LangGraphCache
from tests import servers
from tests.builders import build_direct_cache
from tests.helpers import text_generations, wait_until
from tests.test_single_flight_database import database_llm_cache, file_database  # noqa: F401  (fixtures)

LLM_STRING = "fake-llm---[('_type', 'fake')]"


class State(TypedDict, total=False):
    text: str
    upper: str
    reversed: str


def build_graph(cache: LangGraphCache, calls: Counter[str], *, ttl: int | None = None, on_upper: Any = None) -> Any:
    """``upper`` then ``reverse``, both cached; each counts its runs in ``calls``."""

    def upper(state: State) -> State:
        calls["upper"] += 1
        if on_upper is not None:
            on_upper()
        return {"upper": state["text"].upper()}

    def reverse(state: State) -> State:
        calls["reverse"] += 1
        return {"reversed": state["text"][::-1]}

    builder = StateGraph(State)
    builder.add_node("upper", upper, cache_policy=CachePolicy(ttl=ttl))
    builder.add_node("reverse", reverse, cache_policy=CachePolicy())
    builder.add_edge(START, "upper")
    builder.add_edge("upper", "reverse")
    builder.add_edge("reverse", END)
    return builder.compile(cache=cache)


@pytest.fixture
def llm_cache(cache_kind: str, make_llm_cache: Callable[..., LLMCache], request: pytest.FixtureRequest) -> LLMCache:
    """An empty LLM cache of each kind; the database cache's table in a SQLite file.

    LangGraph writes a node's entry from a worker thread while the next node is looked up: the
    suite's in-memory SQLite (shared cache) fails one of them at once with "table is locked",
    where a database file (or any server database) makes the writer wait its turn.
    """
    if cache_kind == "alias-database":
        return request.getfixturevalue("database_llm_cache")(False)  # type: ignore[no-any-return]
    return make_llm_cache(cache_kind)


@pytest.fixture
def graph_cache(llm_cache: LLMCache) -> LangGraphCache:
    cache: LangGraphCache = LangGraphCache(cache=llm_cache)
    cache.clear()  # the compat kinds share one namespace across tests
    return cache


def test_a_cached_node_runs_once_per_input(graph_cache: LangGraphCache) -> None:
    calls: Counter[str] = Counter()
    graph = build_graph(graph_cache, calls)
    first = graph.invoke({"text": "paris"})
    second = graph.invoke({"text": "paris"})
    assert first == second == {"text": "paris", "upper": "PARIS", "reversed": "sirap"}
    assert calls == {"upper": 1, "reverse": 1}
    assert graph.invoke({"text": "rome"})["upper"] == "ROME"
    assert calls == {"upper": 2, "reverse": 2}


async def test_ainvoke_reads_and_writes_the_same_entries(graph_cache: LangGraphCache) -> None:
    calls: Counter[str] = Counter()
    graph = build_graph(graph_cache, calls)
    first = await graph.ainvoke({"text": "oslo"})
    second = await graph.ainvoke({"text": "oslo"})
    assert first == second
    assert calls == {"upper": 1, "reverse": 1}
    await sync_to_async(graph.invoke)({"text": "oslo"})  # sync sees what async wrote
    assert calls == {"upper": 1, "reverse": 1}
    await graph.ainvoke({"text": "bern"})
    assert calls == {"upper": 2, "reverse": 2}


def test_clearing_one_node_reruns_it_and_keeps_the_other(graph_cache: LangGraphCache) -> None:
    calls: Counter[str] = Counter()
    graph = build_graph(graph_cache, calls)
    graph.invoke({"text": "lima"})
    graph.clear_cache(nodes=["upper"])
    graph.invoke({"text": "lima"})
    assert calls == {"upper": 2, "reverse": 1}


async def test_aclear_of_one_node_reruns_it_and_keeps_the_other(graph_cache: LangGraphCache) -> None:
    calls: Counter[str] = Counter()
    graph = build_graph(graph_cache, calls)
    await graph.ainvoke({"text": "quito"})
    await graph.aclear_cache(nodes=["reverse"])
    await graph.ainvoke({"text": "quito"})
    assert calls == {"upper": 1, "reverse": 2}


def test_a_node_entry_expires_after_its_policy_ttl(graph_cache: LangGraphCache) -> None:
    calls: Counter[str] = Counter()
    graph = build_graph(graph_cache, calls, ttl=1)
    graph.invoke({"text": "kyiv"})  # whether a second run falls within the second is up to the machine: not asserted
    deadline = time.monotonic() + 30
    while calls["upper"] == 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        graph.invoke({"text": "kyiv"})
    assert calls["upper"] == 2
    assert calls["reverse"] == 1  # no TTL of its own: the alias's (none) applies


def test_many_entries_written_at_once_keep_each_their_ttl(graph_cache: LangGraphCache) -> None:
    short = {(("ns", "short"), f"k{index}"): (index, 1) for index in range(3)}
    kept = {(("ns", "kept"), f"k{index}"): (index, None) for index in range(3)}
    graph_cache.set({**short, **kept})  # two TTLs in one call: one write per TTL
    assert graph_cache.get([*short, *kept]) == {key: value for key, (value, _ttl) in {**short, **kept}.items()}
    wait_until(lambda: not graph_cache.get(list(short)), 30, "the one-second entries to expire")
    assert graph_cache.get(list(kept)) == {key: value for key, (value, _ttl) in kept.items()}


async def test_many_entries_written_at_once_async_keep_each_their_ttl(graph_cache: LangGraphCache) -> None:
    short = {(("ns", "short"), f"k{index}"): (index, 1) for index in range(3)}
    kept = {(("ns", "kept"), f"k{index}"): (index, None) for index in range(3)}
    await graph_cache.aset({**short, **kept})
    assert await graph_cache.aget([*short, *kept]) == {key: value for key, (value, _ttl) in {**short, **kept}.items()}
    deadline = time.monotonic() + 30
    while await graph_cache.aget(list(short)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await graph_cache.aget(list(short)) == {}
    assert await graph_cache.aget(list(kept)) == {key: value for key, (value, _ttl) in kept.items()}


def test_entry_names_and_headers_are_those_earlier_versions_wrote(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names and headers are built without json.dumps per call: byte for byte what it writes,
    so entries stored before still read."""
    monkeypatch.setattr(time, "time", lambda: 1733345678.123456)
    namespaces = [(), ("a",), ("__pregel_ns_writes", "node"), ("é\u2028", "\ud800x", '"q\\')]
    for namespace in namespaces:
        for key in ("", "k", "ключ\n", '\\"'):
            body = json.dumps([list(namespace), key], separators=(",", ":")).encode("utf-8", "surrogatepass")
            assert entry_name((namespace, key)) == sha256(b"llmcache-langgraph-v1\x00" + body).hexdigest()
            for ttl in (None, 60, 0.5):
                header = {"ns": list(namespace), "key": key, "type": "msgpack", "created": time.time()}
                if ttl is not None:
                    header["expires"] = time.time() + ttl
                written = json.dumps(header, separators=(",", ":")).encode() + b"\n" + b"pay\nload"
                assert encode_envelope(namespace, key, "msgpack", b"pay\nload", ttl) == written


def test_node_and_llm_entries_never_clear_each_other(llm_cache: LLMCache, graph_cache: LangGraphCache) -> None:
    calls: Counter[str] = Counter()
    graph = build_graph(graph_cache, calls)
    graph.invoke({"text": "riga"})
    llm_cache.update("prompt", LLM_STRING, text_generations("answer"))
    graph_cache.clear()
    assert llm_cache.lookup("prompt", LLM_STRING) == text_generations("answer")
    graph.invoke({"text": "riga"})
    assert calls == {"upper": 2, "reverse": 2}
    llm_cache.clear()
    assert llm_cache.lookup("prompt", LLM_STRING) is None
    graph.invoke({"text": "riga"})
    assert calls == {"upper": 2, "reverse": 2}


def test_many_keys_are_read_in_one_call_and_missing_ones_left_out(graph_cache: LangGraphCache) -> None:
    ns = ("__pregel_ns_writes", "tests", "node")
    graph_cache.set({(ns, "a"): ({"v": 1}, None), (ns, "b"): ([1, 2, 3], 60)})
    assert graph_cache.get([(ns, "a"), (ns, "b"), (ns, "c")]) == {(ns, "a"): {"v": 1}, (ns, "b"): [1, 2, 3]}
    assert graph_cache.get([]) == {}
    header, _payload = decode_envelope(graph_cache.side.store.get(entry_name((ns, "b"))) or b"")
    assert header["expires"] - header["created"] == 60  # the pair's TTL, as the store's expiry too


def test_a_planted_or_foreign_value_is_a_miss(graph_cache: LangGraphCache) -> None:
    ns = ("node",)
    store = graph_cache.side.store
    store.set(entry_name((ns, "pickled")), b'{"ns":["node"],"key":"pickled","type":"pickle"}\ncos\nsystem\n.', None)
    store.set(entry_name((ns, "other")), b'{"ns":["node"],"key":"another","type":"json"}\n1', None)
    store.set(entry_name((ns, "junk")), b"\x80\x04not an entry", None)
    keys = [(ns, "pickled"), (ns, "other"), (ns, "junk")]
    assert graph_cache.get(keys) == {}
    assert graph_cache.side.stats is not None and graph_cache.side.stats.errors == 3


# A server killed mid-graph: the graph completes, the node just runs.


def _redis_cache(server: servers.Server) -> LLMCache:
    return build_direct_cache("redis", server.url, "killed", server_timeout=0.5)


def _memcached_cache(server: servers.Server) -> LLMCache:
    return build_direct_cache("memcached", server.location, "killed", server_timeout=0.5)


@pytest.mark.parametrize(
    "start, build", [(servers.start_redis, _redis_cache), (servers.start_memcached, _memcached_cache)]
)
def test_a_server_killed_mid_graph_leaves_the_graph_running(
    start: Callable[[], servers.Server], build: Callable[[servers.Server], LLMCache]
) -> None:
    server = start()
    try:
        cache: LangGraphCache = LangGraphCache(cache=build(server))
        calls: Counter[str] = Counter()
        graph = build_graph(cache, calls, on_upper=server.kill)
        assert graph.invoke({"text": "dead"}) == {"text": "dead", "upper": "DEAD", "reversed": "daed"}
        assert graph.invoke({"text": "dead"})["reversed"] == "daed"
        assert calls == {"upper": 2, "reverse": 2}  # nothing cached, every node ran
        assert cache.side.stats is not None and cache.side.stats.errors >= 1
    finally:
        server.stop()


async def test_a_server_killed_mid_graph_leaves_ainvoke_running() -> None:
    server = servers.start_redis()
    try:
        cache: LangGraphCache = LangGraphCache(cache=_redis_cache(server))
        calls: Counter[str] = Counter()
        graph = build_graph(cache, calls, on_upper=server.kill)
        assert (await graph.ainvoke({"text": "gone"}))["upper"] == "GONE"
        assert calls == {"upper": 1, "reverse": 1}
    finally:
        server.stop()


def test_an_oversize_value_under_a_node_key_is_a_miss(graph_cache: LangGraphCache) -> None:
    ns = ("node",)
    store = graph_cache.side.store
    graph_cache.set({(ns, "small"): ("fine", None)})
    planted = b'{"ns":["node"],"key":"big","type":"bytes"}\n' + b"x" * store.max_value_bytes
    with contextlib.suppress(Exception):  # a server refusing an item that large keeps nothing there
        store.set(entry_name((ns, "big")), planted, None)
    assert graph_cache.get([(ns, "big"), (ns, "small")]) == {(ns, "small"): "fine"}


async def test_a_server_that_runs_no_lua_still_caches_nodes() -> None:
    server = servers.start_redis("--rename-command", "EVALSHA", "", "--rename-command", "EVAL", "")
    try:
        cache: LangGraphCache = LangGraphCache(cache=_redis_cache(server))
        calls: Counter[str] = Counter()
        graph = build_graph(cache, calls)
        await sync_to_async(graph.invoke)({"text": "lua"})
        await sync_to_async(graph.invoke)({"text": "lua"})
        await graph.ainvoke({"text": "lua"})
        assert calls == {"upper": 1, "reverse": 1}
        many = {(("ns",), f"k{index}"): (f"v{index}", 60) for index in range(3)}
        cache.set(many)  # many keys in one command needs a script: the first such call finds out
        assert cache.get(list(many)) == {key: value for key, (value, _ttl) in many.items()}
        await cache.aset({(("ns",), "a1"): ("x", None), (("ns",), "a2"): ("y", None)})
        assert await cache.aget([(("ns",), "a1"), (("ns",), "a2")]) == {(("ns",), "a1"): "x", (("ns",), "a2"): "y"}
        assert cache.side.stats is not None and cache.side.stats.errors == 0
        assert cache.side.store._scripts is False  # type: ignore[attr-defined]
    finally:
        server.kill()


def two_locmem_settings(cache: str) -> dict[str, Any]:
    """Settings whose ``LLM_CACHES["default"]`` stores in the locmem alias ``cache`` ("a" or "b")."""
    run = uuid.uuid4().hex
    locmem = "django.core.cache.backends.locmem.LocMemCache"
    return {
        "CACHES": {
            "default": {"BACKEND": locmem},
            **{name: {"BACKEND": locmem, "LOCATION": f"{run}-{name}"} for name in "ab"},
        },
        "LLM_CACHES": {"default": {"CACHE": cache}},
    }


def test_an_alias_built_cache_follows_settings_changes_and_a_given_cache_stays() -> None:
    settings_a = two_locmem_settings("a")
    settings_b = {**settings_a, "LLM_CACHES": {"default": {"CACHE": "b"}}}
    calls: Counter[str] = Counter()
    with override_settings(**settings_a):
        by_alias: LangGraphCache = LangGraphCache("default")
        given: LangGraphCache = LangGraphCache(cache=llm_caches["default"])
        graph = build_graph(by_alias, calls)
        graph.invoke({"text": "oslo"})
        graph.invoke({"text": "oslo"})
        assert calls["upper"] == 1
        with override_settings(**settings_b):
            graph.invoke({"text": "oslo"})  # alias "b" stores elsewhere: nothing cached there yet
            assert calls["upper"] == 2
            assert by_alias.side.llm_cache is llm_caches["default"]
            assert given.side.llm_cache is not llm_caches["default"]
            graph.invoke({"text": "oslo"})
            assert calls["upper"] == 2
        graph.invoke({"text": "oslo"})  # back on "a", whose entry is still there
        assert calls["upper"] == 2
        assert by_alias.side.llm_cache is llm_caches["default"]


@pytest.mark.parametrize("lua", [True, False])
def test_many_node_entries_on_redis_get_the_ttl_asked_or_none(redis_server: servers.Server, lua: bool) -> None:
    """One write of many values (a Lua call, or a pipeline without Lua) sets each one's expiry."""
    cache: LangGraphCache = LangGraphCache(
        cache=build_direct_cache("redis", redis_server.url, f"t{uuid.uuid4().hex[:8]}")
    )
    store = cache.side.store
    store._scripts = lua  # type: ignore[attr-defined]
    timed = {(("ns",), f"t{index}"): (index, 60) for index in range(3)}
    forever = {(("ns",), f"f{index}"): (index, None) for index in range(3)}
    cache.set({**timed, **forever})
    client = redis.Redis.from_url(redis_server.url)
    ttls = {key: client.pttl(store.prefix + entry_name(key)) for key in [*timed, *forever]}  # type: ignore[attr-defined]
    assert all(0 < ttls[key] <= 60_000 for key in timed), ttls
    assert all(ttls[key] == -1 for key in forever), ttls  # the alias's TTL here: none
    assert cache.get([*timed, *forever]) == {key: value for key, (value, _ttl) in {**timed, **forever}.items()}
