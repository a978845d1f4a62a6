"""Single-flight knows the call that leads a flight by what it is — a LangChain run, a task, a
``cached()`` stream — not by where its frames live: a user's own ``BaseCache`` in between
still coalesces, a failed leader still releases its waiters at once, and a pool thread that
read a chunk of a stream still waits for other prompts' answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage

from llmcache_django import cached
from llmcache_django.core.cache import LLMCache
from tests.test_single_flight import GatedChat, gated_model, make

BOUND = 20.0
#: Well under the bound: a waiter released when its leader ended, not when the bound passed.
RELEASED_WITHIN = 10.0
CALLERS = 8
#: How long a test gives a broken single-flight to let a waiter go to the model (it does within
#: 50 ms); a correct one never does, so this is how long such a test holds its leader.
CHANCE_TO_MISBEHAVE = 1.0


class ForwardingCache(BaseCache):
    """The thin wrapper users write first: a ``BaseCache`` that forwards to an LLM cache."""

    def __init__(self, inner: LLMCache) -> None:
        self.inner = inner

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self.inner.lookup(prompt, llm_string)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.inner.update(prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        self.inner.clear(**kwargs)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await self.inner.alookup(prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await self.inner.aupdate(prompt, llm_string, return_val)


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll ``predicate`` until it holds or ``seconds`` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def waiting(cache: LLMCache) -> int:
    assert cache.single_flight is not None
    return cache.single_flight.waiting()


def ask_in_threads(ask: Callable[[], Any], count: int) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            results[index] = ask()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(BOUND + 10)
        assert not thread.is_alive(), "a caller never finished"


@pytest.mark.parametrize("kind", ["redis", "memcached", "alias-locmem"])
def test_eight_threads_through_a_users_own_cache_wrapper_make_one_model_call(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make(kind, make_llm_cache, bound=BOUND)
    model = gated_model(ForwardingCache(cache))  # type: ignore[arg-type]
    threads, results = ask_in_threads(lambda: model.invoke("one prompt").content, CALLERS)
    assert wait_for(lambda: model.calls["count"] + waiting(cache) == CALLERS, 10)
    # The leader is in the model, past the wrapper's lookup: its waiters must keep waiting.
    went_to_the_model = wait_for(lambda: model.calls["count"] > 1, CHANCE_TO_MISBEHAVE)
    model.gate.set()
    join_all(threads)

    assert not went_to_the_model
    assert results == ["the answer"] * CALLERS
    assert model.calls["count"] == 1
    assert cache.stats is not None and cache.stats.coalesced == CALLERS - 1


@pytest.mark.parametrize("kind", ["redis", "alias-locmem"])
def test_eight_tasks_through_a_users_own_cache_wrapper_make_one_model_call(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make(kind, make_llm_cache, bound=BOUND)
    model = gated_model(ForwardingCache(cache))  # type: ignore[arg-type]

    async def burst() -> tuple[list[Any], bool]:
        asks = [asyncio.ensure_future(model.ainvoke("one async prompt")) for _ in range(CALLERS)]
        deadline = time.monotonic() + 10
        while model.calls["count"] + waiting(cache) < CALLERS and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        deadline = time.monotonic() + CHANCE_TO_MISBEHAVE
        while model.calls["count"] == 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        went_to_the_model = model.calls["count"] > 1
        model.gate.set()
        return [message.content for message in await asyncio.gather(*asks)], went_to_the_model

    answers, went_to_the_model = asyncio.run(burst())
    assert not went_to_the_model
    assert answers == ["the answer"] * CALLERS
    assert model.calls["count"] == 1


@pytest.mark.parametrize("kind", ["redis", "alias-locmem"])
def test_a_leader_raising_behind_a_users_wrapper_releases_its_waiters_at_once(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make(kind, make_llm_cache, bound=BOUND)
    model = gated_model(ForwardingCache(cache), fail_first=True)  # type: ignore[arg-type]
    threads, results = ask_in_threads(lambda: model.invoke("a failing prompt").content, CALLERS)
    assert wait_for(lambda: model.calls["count"] + waiting(cache) == CALLERS, 10)
    opened = time.monotonic()
    model.gate.set()
    join_all(threads)
    seconds = time.monotonic() - opened
    print(f"{kind}: the waiters of a leader that raised behind a wrapper answered within {seconds * 1000:.0f} ms")

    assert sum(isinstance(result, RuntimeError) for result in results) == 1
    assert results.count("the answer") == CALLERS - 1
    assert model.calls["count"] == CALLERS  # each waiter called the model itself ...
    assert seconds < RELEASED_WITHIN  # ... when the leader's run failed, not when the 20 s bound passed


class ReadOnlyCache(ForwardingCache):
    """A wrapper that reads through but never writes (a user's "no-store" mode)."""

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        pass


def test_a_chat_run_that_ends_without_an_update_releases_its_waiters_at_once(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = make("redis", make_llm_cache, bound=BOUND)
    model = gated_model(ReadOnlyCache(cache))  # type: ignore[arg-type]
    threads, results = ask_in_threads(lambda: model.invoke("never stored").content, CALLERS)
    assert wait_for(lambda: model.calls["count"] + waiting(cache) == CALLERS, 10)
    opened = time.monotonic()
    model.gate.set()
    join_all(threads)
    seconds = time.monotonic() - opened

    assert results == ["the answer"] * CALLERS
    assert model.calls["count"] == CALLERS  # nothing was stored: each waiter called the model ...
    assert seconds < RELEASED_WITHIN  # ... once the leader's run ended, not when the bound passed


class GatedLLM(FakeListLLM):
    """A text-completion model that counts its calls, waits for a gate, and fails its first call."""

    gate: Any = None
    calls: Any = None

    def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        with self.calls["lock"]:
            self.calls["count"] += 1
            first = self.calls["count"] == 1
        self.gate.wait(10)
        if first:
            raise RuntimeError("the provider failed")
        return f"answer to {prompt}"

    async def _acall(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self._call, prompt)


def test_a_text_completion_leader_raising_releases_its_waiters_at_once(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    # A text-completion model looks its prompt up before its run starts: the flight is tied to
    # the run that starts next in the same context.
    cache = make("redis", make_llm_cache, bound=BOUND)
    llm = GatedLLM(
        responses=["unused"], cache=cache, gate=threading.Event(), calls={"count": 0, "lock": threading.Lock()}
    )
    threads, results = ask_in_threads(lambda: llm.invoke("complete this"), CALLERS)
    assert wait_for(lambda: llm.calls["count"] + waiting(cache) == CALLERS, 10)
    opened = time.monotonic()
    llm.gate.set()
    join_all(threads)
    seconds = time.monotonic() - opened

    assert sum(isinstance(result, RuntimeError) for result in results) == 1
    assert results.count("answer to complete this") == CALLERS - 1
    assert llm.calls["count"] == CALLERS
    assert seconds < RELEASED_WITHIN


def test_a_text_completion_leader_raising_in_a_task_releases_its_waiting_tasks_at_once(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = make("redis", make_llm_cache, bound=BOUND)
    llm = GatedLLM(
        responses=["unused"], cache=cache, gate=threading.Event(), calls={"count": 0, "lock": threading.Lock()}
    )

    async def burst() -> tuple[list[Any], float]:
        asks = [asyncio.ensure_future(llm.ainvoke("complete this async")) for _ in range(CALLERS)]
        deadline = time.monotonic() + 10
        while llm.calls["count"] + waiting(cache) < CALLERS and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        opened = time.monotonic()
        llm.gate.set()
        results = await asyncio.gather(*asks, return_exceptions=True)
        return list(results), time.monotonic() - opened

    results, seconds = asyncio.run(burst())
    assert sum(isinstance(result, RuntimeError) for result in results) == 1
    assert results.count("answer to complete this async") == CALLERS - 1
    assert llm.calls["count"] == CALLERS
    assert seconds < RELEASED_WITHIN


def test_a_cancelled_ainvoke_leader_releases_its_waiters_at_once(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make("redis", make_llm_cache, bound=BOUND)
    model = gated_model(cache)

    async def burst() -> tuple[list[Any], float]:
        leader = asyncio.ensure_future(model.ainvoke("a cancelled question"))
        while model.calls["count"] == 0:
            await asyncio.sleep(0.005)
        waiters = [asyncio.ensure_future(model.ainvoke("a cancelled question")) for _ in range(CALLERS - 1)]
        while waiting(cache) < CALLERS - 1:
            await asyncio.sleep(0.005)
        cancelled = time.monotonic()
        leader.cancel()  # its model call goes on in a worker thread, and never updates
        model.gate.set()
        answers = [message.content for message in await asyncio.gather(*waiters)]
        return answers, time.monotonic() - cancelled

    answers, seconds = asyncio.run(burst())
    assert answers == ["the answer"] * (CALLERS - 1)
    assert model.calls["count"] >= 2  # the waiters were released: the cancelled leader never wrote
    assert seconds < RELEASED_WITHIN


class WordStream(GenericFakeChatModel):
    """Streams its answer word by word; counts its calls."""

    calls: Any = None

    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(1)
        return super()._stream(*args, **kwargs)


def test_a_pool_thread_that_read_a_chunk_of_a_stream_still_waits_for_other_prompts(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    # A sync streaming view read chunk by chunk on a shared pool: the thread that read the
    # first chunk of an unfinished stream goes on to serve another request.
    cache = make("redis", make_llm_cache, bound=BOUND)
    streaming = WordStream(messages=iter([AIMessage(content="one two three four five")]), calls=[])
    streamed = cached(streaming, cache=cache)
    asked = gated_model(cache)
    leader = threading.Thread(target=asked.invoke, args=("the other prompt",), daemon=True)
    leader.start()
    assert wait_for(lambda: asked.calls["count"] == 1, 10)
    with ThreadPoolExecutor(max_workers=1) as pool:  # one thread, so the same one does both
        stream = streamed.stream("the streamed prompt")
        chunks = [pool.submit(next, stream).result(10)]
        invoke = pool.submit(asked.invoke, "the other prompt")
        assert wait_for(lambda: waiting(cache) == 1 or asked.calls["count"] > 1, 10)
        asked.gate.set()
        answer = invoke.result(30)
        chunks += pool.submit(list, stream).result(30)
    leader.join(30)

    assert answer.content == "the answer"
    assert "".join(str(chunk.content) for chunk in chunks) == "one two three four five"
    assert asked.calls["count"] == 1  # the pool thread waited for the other prompt's answer
    assert len(streaming.calls) == 1


def test_streams_and_invokes_interleaved_on_a_small_pool_make_one_model_call_per_prompt(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = make("redis", make_llm_cache, bound=BOUND)
    texts = [f"answer number {index} comes in five words" for index in range(3)]
    streaming = WordStream(messages=iter([AIMessage(content=text) for text in texts]), calls=[])
    streamed = cached(streaming, cache=cache)
    asked: GatedChat = gated_model(cache)
    prompts = [f"invoked prompt {index}" for index in range(3)]
    leaders: list[threading.Thread] = []
    for prompt in prompts:  # other requests, on other threads, are in the model for these prompts
        leaders.append(threading.Thread(target=asked.invoke, args=(prompt,), daemon=True))
        leaders[-1].start()
    assert wait_for(lambda: asked.calls["count"] == len(prompts), 10)
    with ThreadPoolExecutor(max_workers=3) as pool:
        streams = [streamed.stream(f"streamed prompt {index}") for index in range(3)]
        firsts = [pool.submit(next, stream) for stream in streams]
        invokes = [pool.submit(asked.invoke, prompt) for prompt in prompts * 3]
        # Each pool thread holds a stream between two chunks, and waits for (or queues) an invoke.
        assert wait_for(lambda: waiting(cache) + _queued(invokes) == len(invokes) or asked.calls["count"] > 3, 10)
        asked.gate.set()
        answers = [invoke.result(30).content for invoke in invokes]
        rests = [pool.submit(list, stream).result(30) for stream in streams]
    join_all(leaders)

    assert answers == ["the answer"] * len(invokes)
    assert asked.calls["count"] == len(prompts)
    assert len(streaming.calls) == len(streams)
    streamed_texts = [
        first.result().content + "".join(str(c.content) for c in rest)
        for first, rest in zip(firsts, rests, strict=True)
    ]
    assert sorted(streamed_texts) == texts


def _queued(futures: list[Any]) -> int:
    return sum(not future.running() and not future.done() for future in futures)


def test_pool_threads_all_waiting_for_a_stream_whose_next_read_is_queued_behind_them_go_on(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = make("redis", make_llm_cache, bound=BOUND)
    streaming = WordStream(messages=iter([AIMessage(content="one two three four five")] * 3), calls=[])
    model = cached(streaming, cache=cache)
    with ThreadPoolExecutor(max_workers=2) as pool:
        stream = model.stream("a prompt streamed on a pool")
        first = pool.submit(next, stream).result(10)  # the stream leads its flight, parked between chunks
        started = time.monotonic()
        invokes = [pool.submit(model.invoke, "a prompt streamed on a pool") for _ in range(2)]
        rest = pool.submit(list, stream)  # queued behind the two waiting invokes
        answers = [invoke.result(BOUND + 10).content for invoke in invokes]
        chunks = [first, *rest.result(BOUND + 10)]
    seconds = time.monotonic() - started
    print(f"pool of 2, both threads waiting for a parked stream: done in {seconds * 1000:.0f} ms")

    assert answers == ["one two three four five"] * 2
    assert "".join(str(chunk.content) for chunk in chunks) == "one two three four five"
    assert seconds < RELEASED_WITHIN  # the waiters went on without the stream, not after the 20 s bound
