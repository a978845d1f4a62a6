"""The contract every cache kind keeps, beyond LangChain's standard suites.

Each upstream defect listed in DESIGN.md has a test here showing it is gone.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time

import orjson
import pytest

from llmcache_django.core import codec
from llmcache_django.core.cache import LLMCache
from tests.helpers import chat_generation, plant, stored_bytes, text_generations

LLM = "model=test temperature=0"


def test_prompts_that_concatenate_alike_never_share_a_key(llm_cache: LLMCache) -> None:
    llm_cache.update("ab", "c", text_generations("first"))
    assert llm_cache.lookup("a", "bc") is None
    assert llm_cache.lookup("ab", "c") == text_generations("first")


def test_overwrite_with_fewer_generations_replaces_the_whole_entry(llm_cache: LLMCache) -> None:
    llm_cache.update("p", LLM, text_generations("one", "two", "three"))
    llm_cache.update("p", LLM, text_generations("only"))
    assert llm_cache.lookup("p", LLM) == text_generations("only")


def test_chat_generation_round_trips_with_tool_calls_and_usage(llm_cache: LLMCache) -> None:
    generations = [chat_generation("first"), chat_generation("second")]
    llm_cache.update("p", LLM, generations)
    found = llm_cache.lookup("p", LLM)
    assert found == generations
    assert found[0].message.tool_calls[0]["args"] == {"name": "Paris", "limit": 3}  # type: ignore[index, attr-defined]
    assert found[0].message.usage_metadata["total_tokens"] == 42  # type: ignore[index, attr-defined]


async def test_async_round_trip_matches_sync(llm_cache: LLMCache) -> None:
    await llm_cache.aupdate("p", LLM, [chat_generation()])
    # Sync code from an async test runs in a thread, as Django requires for the database.
    assert await asyncio.to_thread(llm_cache.lookup, "p", LLM) == [chat_generation()]
    assert await llm_cache.alookup("p", LLM) == [chat_generation()]


def test_clear_accepts_the_community_keyword_arguments(llm_cache: LLMCache) -> None:
    llm_cache.update("p", LLM, text_generations("x"))
    llm_cache.clear(asynchronous=True)
    assert llm_cache.lookup("p", LLM) is None
    llm_cache.update("p", LLM, text_generations("x"))
    llm_cache.clear(delay=0, noreply=False)
    assert llm_cache.lookup("p", LLM) is None


async def test_both_clear_twins_remove_the_same_entries_and_report_the_same_count(llm_cache: LLMCache) -> None:
    from llmcache_django.signals import llm_cache_cleared

    counts: list[int | None] = []

    def on_cleared(sender: LLMCache, count: int | None, **kwargs: object) -> None:
        counts.append(count)

    llm_cache_cleared.connect(on_cleared)
    try:
        for clear in (lambda: asyncio.to_thread(llm_cache.clear_namespace), llm_cache.aclear_namespace):
            for prompt in ("a", "b", "c"):
                await llm_cache.aupdate(prompt, LLM, text_generations(prompt))
            returned = await clear()
            assert [await llm_cache.alookup(prompt, LLM) for prompt in ("a", "b", "c")] == [None, None, None]
            assert counts[-1] == returned
    finally:
        llm_cache_cleared.disconnect(on_cleared)
    assert counts[0] == counts[1] and counts[0] in (3, None)  # None: a backend that cannot count


def test_a_foreign_value_under_our_key_is_a_miss_with_a_warning(
    llm_cache: LLMCache, caplog: pytest.LogCaptureFixture
) -> None:
    plant(llm_cache, "p", LLM, b'{"0": "a value written by langchain-community"}')
    with caplog.at_level(logging.WARNING, logger="llmcache_django"):
        assert llm_cache.lookup("p", LLM) is None
    assert "foreign value" in caplog.text
    assert llm_cache.stats is not None and llm_cache.stats.errors == 1


@pytest.mark.parametrize(
    "value",
    [b"LC1j{not json", b"LC1j" + b'{"p": "p", "l": "x"}', b"LC1s\x00\x01garbage", b"LC1j" + b"\xff\xfe"],
    ids=["corrupt-json", "missing-fields", "bad-zstd", "not-utf8"],
)
def test_corrupt_or_truncated_values_are_misses(llm_cache: LLMCache, value: bytes) -> None:
    plant(llm_cache, "p", LLM, value)
    assert llm_cache.lookup("p", LLM) is None


def test_a_decompression_bomb_is_a_miss(llm_cache: LLMCache, monkeypatch: pytest.MonkeyPatch) -> None:
    import zstandard

    monkeypatch.setattr(codec, "MAX_DECOMPRESSED_BYTES", 1024 * 1024)
    bomb = zstandard.ZstdCompressor().compress(b"{" + b" " * (4 * 1024 * 1024) + b"}")
    plant(llm_cache, "p", LLM, codec.MAGIC_ZSTD + bomb)
    assert llm_cache.lookup("p", LLM) is None


def test_a_value_for_another_prompt_is_not_served(llm_cache: LLMCache) -> None:
    llm_cache.update("other prompt", LLM, text_generations("wrong"))
    value = stored_bytes(llm_cache, "other prompt", LLM)
    assert value is not None
    plant(llm_cache, "p", LLM, value)
    assert llm_cache.lookup("p", LLM) is None


class Exploit:
    ran = False

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("from tests.test_contract import Exploit; Exploit.ran = True",))


def test_a_planted_pickle_is_never_executed(llm_cache: LLMCache) -> None:
    plant(llm_cache, "p", LLM, pickle.dumps(Exploit()))
    assert llm_cache.lookup("p", LLM) is None
    assert Exploit.ran is False


@pytest.mark.parametrize(
    "generation",
    [
        {"t": "ChatGeneration", "k": "os.system", "m": {"content": "x"}},
        {"t": "subprocess.Popen", "x": "ls"},
        {"t": "ChatGeneration", "k": "ai", "m": {"content": 12345}},
    ],
    ids=["message-type", "generation-type", "invalid-field"],
)
def test_a_type_outside_the_allow_list_is_a_miss(llm_cache: LLMCache, generation: dict[str, object]) -> None:
    entry = {"p": "p", "m": "model", "h": "0" * 16, "c": time.time(), "g": [generation]}
    plant(llm_cache, "p", LLM, b"LC1j" + orjson.dumps(entry))
    assert llm_cache.lookup("p", LLM) is None


def test_an_unsupported_generation_type_is_skipped_not_raised(
    llm_cache: LLMCache, caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_core.outputs import Generation

    class CustomGeneration(Generation):
        pass

    with caplog.at_level(logging.WARNING, logger="llmcache_django"):
        llm_cache.update("p", LLM, [CustomGeneration(text="x")])
    assert llm_cache.lookup("p", LLM) is None
    assert "not an allow-listed" in caplog.text


def test_a_large_answer_is_stored_compressed_and_round_trips(llm_cache: LLMCache) -> None:
    answer = text_generations("The quick brown fox. " * 20_000)  # ~420 KB of text
    llm_cache.update("p", LLM, answer)
    value = stored_bytes(llm_cache, "p", LLM)
    assert value is not None and len(value) < 100_000
    assert llm_cache.lookup("p", LLM) == answer


def test_ttl_zero_means_do_not_cache(make_llm_cache, cache_kind: str) -> None:  # type: ignore[no-untyped-def]
    cache = make_llm_cache(cache_kind, TTL=0) if cache_kind.startswith("alias-") else make_llm_cache(cache_kind, ttl=0)
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) is None


def test_stats_count_hits_misses_writes_and_tokens_saved(llm_cache: LLMCache) -> None:
    assert llm_cache.lookup("p", LLM) is None
    time.sleep(0.02)  # the model at work between the miss and the write
    llm_cache.update("p", LLM, [chat_generation()])
    llm_cache.lookup("p", LLM)
    llm_cache.lookup("p", LLM)
    stats = llm_cache.stats.snapshot()  # type: ignore[union-attr]
    assert (stats["hits"], stats["misses"], stats["writes"], stats["errors"]) == (2, 1, 1, 0)
    assert stats["tokens_saved"] == 84
    assert stats["hit_ratio"] == pytest.approx(2 / 3)
    assert 0.04 <= stats["seconds_saved"] < 10  # each hit saved the ~20 ms the model took


def test_signals_report_hits_and_misses(llm_cache: LLMCache) -> None:
    from llmcache_django.signals import llm_cache_cleared, llm_cache_hit, llm_cache_miss

    seen: list[tuple[str, str]] = []

    def on_hit(sender: LLMCache, prompt: str, **kwargs: object) -> None:
        seen.append(("hit", prompt))

    def on_miss(sender: LLMCache, prompt: str, **kwargs: object) -> None:
        seen.append(("miss", prompt))

    def on_cleared(sender: LLMCache, count: int | None, **kwargs: object) -> None:
        seen.append(("cleared", str(sender is llm_cache)))

    llm_cache_hit.connect(on_hit)
    llm_cache_miss.connect(on_miss)
    llm_cache_cleared.connect(on_cleared)
    try:
        llm_cache.lookup("p", LLM)
        llm_cache.update("p", LLM, text_generations("x"))
        llm_cache.lookup("p", LLM)
        llm_cache.clear()
    finally:
        llm_cache_hit.disconnect(on_hit)
        llm_cache_miss.disconnect(on_miss)
        llm_cache_cleared.disconnect(on_cleared)
    assert seen == [("miss", "p"), ("hit", "p"), ("cleared", "True")]


async def test_many_concurrent_async_lookups_all_hit_without_errors(llm_cache: LLMCache) -> None:
    await llm_cache.aupdate("p", LLM, [chat_generation()])
    results = await asyncio.gather(*(llm_cache.alookup("p", LLM) for _ in range(500)))
    assert all(result == [chat_generation()] for result in results)
    assert llm_cache.stats.errors == 0  # type: ignore[union-attr]


def test_a_failing_signal_receiver_never_breaks_the_lookup(
    llm_cache: LLMCache, caplog: pytest.LogCaptureFixture
) -> None:
    from llmcache_django.signals import llm_cache_hit

    def broken(**kwargs: object) -> None:
        raise RuntimeError("receiver bug")

    llm_cache.update("p", LLM, text_generations("x"))
    llm_cache_hit.connect(broken)
    try:
        with caplog.at_level(logging.WARNING, logger="llmcache_django"):
            assert llm_cache.lookup("p", LLM) == text_generations("x")
    finally:
        llm_cache_hit.disconnect(broken)
    assert "receiver bug" in caplog.text
