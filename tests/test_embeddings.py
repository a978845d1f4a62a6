"""Embeddings caching and the ByteStore on every store kind, with a real LangChain Embeddings."""

from __future__ import annotations

import struct
import time
import uuid
from array import array
from typing import Any

import pytest
import redis
from django.test import override_settings
from langchain_core.embeddings import DeterministicFakeEmbedding
from pydantic import Field

from llmcache_django import CacheByteStore, cached_embeddings
from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.embeddings import CachedEmbeddings, encode_vector
from llmcache_django.integrations.vectors import vector_info
from llmcache_django.langgraph import LangGraphCache
from tests import servers
from tests.builders import build_direct_cache
from tests.helpers import text_generations
from tests.test_langgraph import two_locmem_settings

LLM_STRING = "fake-llm---[('_type', 'fake')]"


class CountingEmbeddings(DeterministicFakeEmbedding):
    """A deterministic embeddings model that records every batch it is asked for."""

    batches: list[list[str]] = Field(default_factory=list)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        return super().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.batches.append([text])
        return super().embed_query(text)


def float32(vector: list[float]) -> list[float]:
    return array("f", vector).tolist()


def texts(start: int, stop: int) -> list[str]:
    return [f"document number {index}" for index in range(start, stop)]


@pytest.fixture
def model() -> CountingEmbeddings:
    return CountingEmbeddings(size=16)


@pytest.fixture
def embedder(llm_cache: LLMCache, model: CountingEmbeddings) -> CachedEmbeddings:
    cached = cached_embeddings(model, cache=llm_cache)
    cached.clear()  # the compat kinds share one namespace across tests
    return cached


def test_reindexing_embeds_only_the_new_texts(embedder: CachedEmbeddings, model: CountingEmbeddings) -> None:
    first = embedder.embed_documents(texts(0, 100))
    assert model.batches == [texts(0, 100)]
    second = embedder.embed_documents(texts(50, 150) + texts(0, 50))
    assert model.batches == [texts(0, 100), texts(100, 150)]
    reference = CountingEmbeddings(size=16)
    assert second == [
        float32(vector) for vector in reference.embed_documents(texts(50, 100))
    ] + reference.embed_documents(texts(100, 150)) + [
        float32(vector) for vector in reference.embed_documents(texts(0, 50))
    ]
    assert first == reference.embed_documents(texts(0, 100))
    stats = embedder.side.stats
    assert stats is not None and (stats.hits, stats.misses, stats.writes) == (100, 150, 150)


async def test_async_reindexing_embeds_only_the_new_texts(
    embedder: CachedEmbeddings, model: CountingEmbeddings
) -> None:
    await embedder.aembed_documents(texts(0, 100))
    vectors = await embedder.aembed_documents(texts(0, 150))
    assert model.batches == [texts(0, 100), texts(100, 150)]
    assert vectors[:100] == [float32(vector) for vector in model.embed_documents(texts(0, 100))]
    assert len(vectors) == 150 and all(len(vector) == 16 for vector in vectors)


def test_two_models_never_share_a_vector(llm_cache: LLMCache, embedder: CachedEmbeddings) -> None:
    embedder.embed_documents(texts(0, 10))
    other_model = CountingEmbeddings(size=8)
    other = cached_embeddings(other_model, cache=llm_cache)
    vectors = other.embed_documents(texts(0, 10))
    assert other_model.batches == [texts(0, 10)]
    assert all(len(vector) == 8 for vector in vectors)


def test_a_text_repeated_in_one_batch_is_embedded_once(embedder: CachedEmbeddings, model: CountingEmbeddings) -> None:
    vectors = embedder.embed_documents(["a", "b", "a"])
    assert model.batches == [["a", "b"]]
    assert vectors[0] == vectors[2]


def test_queries_are_cached_apart_from_documents(llm_cache: LLMCache, embedder: CachedEmbeddings, model: Any) -> None:
    embedder.embed_documents(["what is paris"])
    embedder.embed_query("what is paris")
    embedder.embed_query("what is paris")
    assert model.batches == [["what is paris"], ["what is paris"]]
    uncached = cached_embeddings(model, cache=llm_cache, queries=False)
    uncached.embed_query("what is paris")
    assert len(model.batches) == 3


async def test_async_queries_are_cached(embedder: CachedEmbeddings, model: CountingEmbeddings) -> None:
    first = await embedder.aembed_query("rome")
    second = await embedder.aembed_query("rome")
    assert model.batches == [["rome"]]
    assert second == float32(first)


def test_bad_input_is_a_clear_error_and_an_empty_list_no_call(
    embedder: CachedEmbeddings, model: CountingEmbeddings
) -> None:
    assert embedder.embed_documents([]) == []
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        embedder.embed_documents(["fine", 42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of str"):
        embedder.embed_documents("not a list")  # type: ignore[arg-type]
    assert model.batches == []


def test_a_planted_vector_of_the_wrong_length_is_a_miss(embedder: CachedEmbeddings, model: CountingEmbeddings) -> None:
    embedder.embed_documents(["known"])  # the process now knows the model's dimensions
    name = embedder._names(["planted"], "document")[0]
    embedder.side.store.set(name, encode_vector([1.0, 2.0, 3.0]), None)
    junk = embedder._names(["junk"], "document")[0]
    embedder.side.store.set(junk, b"[0.1, 0.2]", None)
    vectors = embedder.embed_documents(["planted", "junk"])
    assert model.batches[-1] == ["planted", "junk"]
    assert vectors == CountingEmbeddings(size=16).embed_documents(["planted", "junk"])


def test_a_wrong_length_vector_is_a_miss_before_the_model_is_known(
    llm_cache: LLMCache, embedder: CachedEmbeddings
) -> None:
    embedder.embed_documents(["one", "two"])
    fresh_model = CountingEmbeddings(size=16)
    fresh = cached_embeddings(fresh_model, cache=llm_cache)  # knows no dimensions yet
    name = fresh._names(["planted"], "document")[0]
    fresh.side.store.set(name, encode_vector([9.0] * 3), None)
    vectors = fresh.embed_documents(["one", "two", "planted"])
    assert fresh_model.batches == [["planted"]]
    assert vectors[2] == CountingEmbeddings(size=16).embed_documents(["planted"])[0]


def test_clears_of_each_kind_leave_the_others(llm_cache: LLMCache, embedder: CachedEmbeddings, model: Any) -> None:
    graph_cache: LangGraphCache = LangGraphCache(cache=llm_cache)
    node_key = (("node",), "k")
    graph_cache.set({node_key: ("value", None)})
    llm_cache.update("prompt", LLM_STRING, text_generations("answer"))
    embedder.embed_documents(["kept"])
    llm_cache.clear()
    graph_cache.clear()
    embedder.embed_documents(["kept"])
    assert model.batches == [["kept"]]
    llm_cache.update("prompt", LLM_STRING, text_generations("answer"))
    embedder.clear()
    assert llm_cache.lookup("prompt", LLM_STRING) == text_generations("answer")
    embedder.embed_documents(["kept"])
    assert model.batches == [["kept"], ["kept"]]


def test_a_dead_server_is_a_miss_and_the_model_answers() -> None:
    server = servers.start_redis()
    model = CountingEmbeddings(size=4)
    embedder = cached_embeddings(model, cache=build_direct_cache("redis", server.url, "dead", server_timeout=0.5))
    embedder.embed_documents(["a"])
    server.kill()
    try:
        assert embedder.embed_documents(["a", "b"]) == model.embed_documents(["a", "b"])
        assert embedder.side.stats is not None and embedder.side.stats.errors >= 1
    finally:
        server.stop()


# The ByteStore, for CacheBackedEmbeddings and other users of langchain_core.stores.BaseStore.


@pytest.fixture
def byte_store(llm_cache: LLMCache) -> CacheByteStore:
    store = CacheByteStore(cache=llm_cache)
    store.clear()
    return store


def test_byte_store_round_trips_many_values(byte_store: CacheByteStore) -> None:
    byte_store.mset([("model:a", b"\x00\x01"), ("model:b", b"vector b"), ("other:c", b"")])
    assert byte_store.mget(["model:a", "missing", "model:b", "other:c"]) == [b"\x00\x01", None, b"vector b", b""]
    byte_store.mdelete(["model:a"])
    assert byte_store.mget(["model:a"]) == [None]


async def test_byte_store_async_round_trip(byte_store: CacheByteStore) -> None:
    await byte_store.amset([("k1", b"one"), ("k2", b"two")])
    assert await byte_store.amget(["k2", "k1", "k3"]) == [b"two", b"one", None]


def test_byte_store_yields_keys_by_prefix(byte_store: CacheByteStore) -> None:
    assert byte_store.side.store.can_list  # every kind in the suite can list its entries
    byte_store.mset([("model:a", b"1"), ("model:b", b"2"), ("other:c", b"3")])
    assert sorted(byte_store.yield_keys(prefix="model:")) == ["model:a", "model:b"]
    assert sorted(byte_store.yield_keys()) == ["model:a", "model:b", "other:c"]


def test_byte_store_value_under_another_key_is_a_miss(byte_store: CacheByteStore) -> None:
    from llmcache_django.integrations.byte_store import encode_value, key_name

    byte_store.side.store.set(key_name("mine"), encode_value("theirs", b"x"), None)
    assert byte_store.mget(["mine"]) == [None]


def test_a_short_lived_process_shares_its_counts_when_it_exits(redis_server: servers.Server) -> None:
    import subprocess
    import sys

    from llmcache_django import RedisLLMCache
    from llmcache_django.integrations.side_cache import SideCache

    namespace = f"exit{uuid.uuid4().hex[:8]}"
    script = (
        "import django; from django.conf import settings; settings.configure(); django.setup(); "
        "import redis; from langchain_core.embeddings import DeterministicFakeEmbedding; "
        "from llmcache_django import RedisLLMCache, cached_embeddings; "
        f"cache = RedisLLMCache(redis.Redis(port={redis_server.port}), namespace={namespace!r}); "
        "embedder = cached_embeddings(DeterministicFakeEmbedding(size=4), cache=cache); "
        "texts = [f'text {i}' for i in range(10)]; embedder.embed_documents(texts); embedder.embed_documents(texts)"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    llm_cache = RedisLLMCache(redis.Redis(port=redis_server.port), namespace=namespace)
    stats = SideCache("embeddings", llm_cache).shared_stats()
    assert (stats["hits"], stats["misses"], stats["writes"]) == (10, 10, 10)


def test_an_idle_process_shares_its_embeddings_counts_from_the_flusher_thread(redis_server: servers.Server) -> None:
    import time

    from llmcache_django import RedisLLMCache
    from llmcache_django.core import flusher
    from llmcache_django.core.stats import COUNTERS

    llm_cache = RedisLLMCache(redis.Redis(port=redis_server.port), namespace=f"idle{uuid.uuid4().hex[:8]}")
    embedder = cached_embeddings(DeterministicFakeEmbedding(size=4), cache=llm_cache)
    embedder.embed_documents(texts(0, 5))
    embedder.embed_documents(texts(0, 5))
    flusher.ensure_running()

    def shared() -> tuple[int, int, int]:  # read as another process would: nothing of ours flushed first
        counts = embedder.side.store.read_counters(list(COUNTERS))
        return counts.get("hits", 0), counts.get("misses", 0), counts.get("writes", 0)

    deadline = time.monotonic() + 15
    while shared() != (5, 5, 5):
        assert time.monotonic() < deadline, f"embeddings counts not shared within 15 s: {shared()}"
        time.sleep(0.05)


def test_the_flusher_thread_outlives_a_cache_whose_flush_raises() -> None:
    import time

    from llmcache_django.core import flusher
    from llmcache_django.core.exit_flush import flush_at_exit
    from llmcache_django.core.stats import Stats

    class Broken:
        """A registered cache whose flush has a bug: it raises where the real ones log."""

        alias = "broken"

        def __init__(self) -> None:
            self.stats: Stats | None = Stats()
            self.stats.add("hits")  # pending, and never taken: due again on every tick
            self.attempts = 0

        def flush_stats(self) -> None:
            pass

        def flush_stats_quietly(self) -> None:
            self.attempts += 1
            raise RuntimeError("a bug in one cache")

    broken = Broken()
    flush_at_exit(broken)
    flusher.ensure_running()
    deadline = time.monotonic() + 15
    while broken.attempts < 2:  # tried again on a later tick: the thread did not end
        assert time.monotonic() < deadline, f"the flusher thread stopped after {broken.attempts} failing flush"
        time.sleep(0.05)


def test_alias_built_embeddings_and_byte_store_follow_settings_changes(model: CountingEmbeddings) -> None:
    settings_a = two_locmem_settings("a")
    settings_b = {**settings_a, "LLM_CACHES": {"default": {"CACHE": "b"}}}
    with override_settings(**settings_a):
        embedder = cached_embeddings(model, alias="default")
        byte_store = CacheByteStore("default")
        embedder.embed_documents(["one", "two"])
        byte_store.mset([("key", b"on a")])
        with override_settings(**settings_b):
            embedder.embed_documents(["one", "two"])  # nothing stored on "b" yet
            assert model.batches == [["one", "two"], ["one", "two"]]
            assert byte_store.mget(["key"]) == [None]
            byte_store.mset([("key", b"on b")])
        embedder.embed_documents(["one", "two"])  # back on "a": served
        assert len(model.batches) == 2
        assert byte_store.mget(["key"]) == [b"on a"]


def test_a_stored_vector_says_which_model_made_it_for_which_role_and_when(
    embedder: CachedEmbeddings, llm_cache: LLMCache
) -> None:
    embedder.embed_documents(["a text"])
    embedder.embed_query("a question")
    infos = sorted((vector_info(value) for _name, value in embedder.side.store.iter_values()), key=lambda i: i.role)
    assert [(info.identity, info.role, info.dimensions, info.dtype) for info in infos] == [
        (embedder.identity, "document", 16, "float32"),
        (embedder.identity, "query", 16, "float32"),
    ]
    assert all(info.created is not None and abs(time.time() - info.created) < 3600 for info in infos)


def test_a_vector_stored_in_the_first_format_is_still_served(
    embedder: CachedEmbeddings, model: CountingEmbeddings
) -> None:
    expected = embedder.embed_documents(["old text"])[0]
    [(name, _value)] = list(embedder.side.store.iter_values())
    first_format = struct.pack("<3scI", b"LE1", b"f", len(expected)) + array("f", expected).tobytes()
    embedder.side.store.set(name, first_format, None)
    assert vector_info(first_format).identity == ""
    assert embedder.embed_documents(["old text"]) == [float32(expected)]
    assert model.batches == [["old text"]]  # served, not embedded again


def test_a_very_long_identity_is_cut_in_the_header_and_still_keys_apart(llm_cache: LLMCache) -> None:
    model = CountingEmbeddings(size=4)
    first = cached_embeddings(model, cache=llm_cache, identity="m" * 70_000 + "1")
    second = cached_embeddings(model, cache=llm_cache, identity="m" * 70_000 + "2")
    first.clear()
    first.embed_documents(["text"])
    second.embed_documents(["text"])  # another identity: not served the first one's vector
    assert model.batches == [["text"], ["text"]]
    assert {vector_info(value).identity for _name, value in first.side.store.iter_values()} == {"m" * 1024}
