"""Single-flight for streams through ``cached(model)``: a burst of identical ``stream()`` /
``astream()`` calls makes one model call, and a leader whose stream raises or is closed
early releases its waiters at once (not after the wait bound)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk

from llmcache_django import cached
from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.replay import MARKER_KEY
from tests.streaming_models import ModelFailedError, StreamingTextLLM

KINDS = ["redis", "memcached", "alias-locmem"]
QUESTION = "How do I cache streamed LLM answers in Django?"
ANSWER = "Wrap the model in cached(model): the first stream is recorded, the next ones are replayed from the cache."
USAGE = {"input_tokens": 11, "output_tokens": 15, "total_tokens": 26}
#: The wait bound of these tests: a waiter that waited it out would take 20 s, one released at once well under 5 s.
BOUND = 20.0
RELEASED_WITHIN = 5.0
THREADS = 20


class Answers:
    """The answers of a gated model: each ``next()`` is one model call, counted, which
    waits until the test opens :attr:`gate` (so a burst is truly concurrent)."""

    def __init__(self, text: str = ANSWER) -> None:
        self.text = text
        self.gate = threading.Event()
        self.count = 0
        self.failed_at: float | None = None
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[AIMessage]:
        return self

    def __next__(self) -> AIMessage:
        with self._lock:
            self.count += 1
            number = self.count
        if not self.gate.wait(10):
            raise TimeoutError("the test never opened the gate")
        return AIMessage(content=self.text, id=f"answer-{number}", usage_metadata=USAGE)  # type: ignore[arg-type]


class GatedChat(GenericFakeChatModel):
    """``GenericFakeChatModel`` on :class:`Answers`; the first model call's stream can
    break off after ``fail_first_after`` chunks (a provider dropping the connection)."""

    answers: Any = None
    fail_first_after: int | None = None

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for number, chunk in enumerate(super()._stream(messages, stop, run_manager, **kwargs)):
            if number == self.fail_first_after and chunk.message.id == "answer-1":
                self.answers.failed_at = time.monotonic()
                raise ModelFailedError(f"stream broke off after {number} chunks")
            yield chunk


def gated_chat(**fields: Any) -> GatedChat:
    answers = Answers()
    return GatedChat(messages=answers, answers=answers, **fields)


def single_flight_cache(kind: str, make_llm_cache: Callable[..., LLMCache], bound: float = BOUND) -> LLMCache:
    if kind.startswith("alias-"):
        return make_llm_cache(kind, OPTIONS={"SINGLE_FLIGHT": bound})
    return make_llm_cache(kind, single_flight=bound)


def cached_on(kind: str, bare: Any, cache: LLMCache) -> Any:
    """``cached(bare)`` as the README shows it: the default alias, or ``cache=`` for a standalone cache."""
    return cached(bare) if kind.startswith("alias-") else cached(bare, cache=cache)


def add_up(chunks: list[Any]) -> Any:
    return chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]


def marker(chunks: list[AIMessageChunk]) -> dict[str, Any]:
    return dict(add_up(chunks).response_metadata[MARKER_KEY])


def waiting_in_single_flight(threads: list[threading.Thread]) -> int:
    """How many of ``threads`` are inside single-flight code now (waiting for a leader)."""
    frames = sys._current_frames()
    count = 0
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        while frame is not None:
            if frame.f_globals.get("__name__") == "llmcache_django.core.single_flight":
                count += 1
                break
            frame = frame.f_back
    return count


def wait_for_waiters(threads: list[threading.Thread], expected: int, seconds: float = 5.0) -> float:
    """Until ``expected`` of ``threads`` wait in single-flight (or ``seconds`` pass); how long it took."""
    started = time.monotonic()
    while waiting_in_single_flight(threads) < expected and time.monotonic() - started < seconds:
        time.sleep(0.005)
    return time.monotonic() - started


def wait_until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


class Caller(threading.Thread):
    """A thread that runs ``call()`` and keeps its result (or exception) and when it ended."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as exc:
            self.error = exc
        self.finished_at = time.monotonic()


def run_all(callers: list[Caller]) -> None:
    for caller in callers:
        caller.join(BOUND + 10)
        assert not caller.is_alive(), "a caller never finished"


def released_after(callers: list[Caller], since: float) -> list[float]:
    return sorted(caller.finished_at - since for caller in callers)


def figures(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds) * 1000:.1f} ms, max {max(seconds) * 1000:.1f} ms"


# Threads


@pytest.mark.parametrize("kind", KINDS)
def test_twenty_threads_streaming_the_same_prompt_make_one_model_call(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat()
    model = cached_on(kind, bare, cache)
    callers = [Caller(lambda: list(model.stream(QUESTION))) for _ in range(THREADS)]
    for caller in callers:
        caller.start()
    wait_until(lambda: bare.answers.count == 1)
    joined = wait_for_waiters(callers, THREADS - 1)
    opened = time.monotonic()
    bare.answers.gate.set()
    run_all(callers)
    seconds = released_after(callers, opened)
    print(
        f"{kind}: {THREADS - 1} waiters joined in {joined * 1000:.0f} ms; all streams done {figures(seconds)} after the gate"
    )

    assert [caller.error for caller in callers] == [None] * THREADS
    assert [add_up(caller.result).content for caller in callers] == [ANSWER] * THREADS
    assert bare.answers.count == 1
    hits = sorted(marker(caller.result)["hit"] for caller in callers)
    assert hits == [False] + [True] * (THREADS - 1)  # the waiters' streams are replays of the leader's answer
    assert all(len(caller.result) > 1 for caller in callers)  # streamed in chunks, not one message
    assert cache.stats is not None
    assert (cache.stats.coalesced, cache.stats.hits, cache.stats.misses, cache.stats.writes) == (THREADS - 1, 0, 1, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_a_leader_stream_that_raises_mid_way_releases_its_waiters_at_once(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat(fail_first_after=4)
    model = cached_on(kind, bare, cache)
    received: list[Any] = []

    def lead() -> list[Any]:
        for chunk in model.stream(QUESTION):
            received.append(chunk)
        return received

    leader = Caller(lead)
    leader.start()
    wait_until(lambda: bare.answers.count == 1)
    waiters = [Caller(lambda: list(model.stream(QUESTION))) for _ in range(THREADS - 1)]
    for waiter in waiters:
        waiter.start()
    wait_for_waiters(waiters, THREADS - 1)
    bare.answers.gate.set()
    run_all([leader, *waiters])
    assert bare.answers.failed_at is not None
    seconds = released_after(waiters, bare.answers.failed_at)
    print(
        f"{kind}: the leader's stream raised; its {len(waiters)} waiters had their own answers {figures(seconds)} later"
    )

    assert isinstance(leader.error, ModelFailedError)
    assert len(received) == 4  # the leader saw part of the answer, then the exception
    assert [waiter.error for waiter in waiters] == [None] * len(waiters)
    assert [add_up(waiter.result).content for waiter in waiters] == [ANSWER] * len(waiters)
    assert max(seconds) < RELEASED_WITHIN  # not held for the 20 s bound
    assert bare.answers.count == THREADS  # each waiter called the model itself
    assert cache.stats is not None and cache.stats.coalesced == 0


@pytest.mark.parametrize("how", ["break", "close"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_leader_stream_closed_early_releases_its_waiters_at_once(
    kind: str, how: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat()
    model = cached_on(kind, bare, cache)
    closed_at: list[float] = []
    finished = threading.Event()

    def lead() -> int:
        taken = 0
        if how == "break":
            for _chunk in model.stream(QUESTION):
                taken += 1
                if taken == 3:
                    closed_at.append(time.monotonic())
                    break  # the generator is dropped (and so closed) here
        else:
            stream = model.stream(QUESTION)
            for _ in range(3):
                next(stream)
                taken += 1
            closed_at.append(time.monotonic())
            stream.close()
        finished.wait(BOUND + 5)  # the leader's thread goes on with other work, its frames still on the stack
        return taken

    leader = Caller(lead)
    leader.start()
    wait_until(lambda: bare.answers.count == 1)
    waiters = [Caller(lambda: list(model.stream(QUESTION))) for _ in range(THREADS - 1)]
    for waiter in waiters:
        waiter.start()
    wait_for_waiters(waiters, THREADS - 1)
    bare.answers.gate.set()
    run_all(waiters)
    finished.set()
    seconds = released_after(waiters, closed_at[0])
    print(f"{kind}: the leader's stream was closed ({how}); its waiters had their own answers {figures(seconds)} later")

    assert [waiter.error for waiter in waiters] == [None] * len(waiters)
    assert [add_up(waiter.result).content for waiter in waiters] == [ANSWER] * len(waiters)
    assert max(seconds) < RELEASED_WITHIN
    assert bare.answers.count == THREADS
    assert all(marker(waiter.result)["hit"] is False for waiter in waiters)


@pytest.mark.parametrize("kind", ["redis", "alias-locmem"])
def test_one_caller_streams_while_others_invoke_the_same_prompt(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat()
    model = cached_on(kind, bare, cache)
    plain = bare.model_copy(update={"cache": cache})  # a bare model whose cache= is the same LLM cache
    streamer = Caller(lambda: list(model.stream(QUESTION)))
    streamer.start()
    wait_until(lambda: bare.answers.count == 1)
    invokers = [Caller(lambda: model.invoke(QUESTION)) for _ in range(10)]
    invokers += [Caller(lambda: plain.invoke(QUESTION)) for _ in range(9)]
    for invoker in invokers:
        invoker.start()
    wait_for_waiters(invokers, len(invokers))
    opened = time.monotonic()
    bare.answers.gate.set()
    run_all([streamer, *invokers])
    print(f"{kind}: 1 stream and 19 invoke() calls done {figures(released_after(invokers, opened))} after the gate")

    assert streamer.error is None and [invoker.error for invoker in invokers] == [None] * 19
    assert add_up(streamer.result).content == ANSWER
    assert [invoker.result.content for invoker in invokers] == [ANSWER] * 19
    assert bare.answers.count == 1
    assert all(invoker.result.response_metadata[MARKER_KEY]["hit"] is True for invoker in invokers[:10])
    assert cache.stats is not None and cache.stats.coalesced == 19


@pytest.mark.parametrize("kind", ["memcached", "alias-locmem"])
def test_one_caller_invokes_while_others_stream_the_same_prompt(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat()
    model = cached_on(kind, bare, cache)
    invoker = Caller(lambda: model.invoke(QUESTION))
    invoker.start()
    wait_until(lambda: bare.answers.count == 1)
    streamers = [Caller(lambda: list(model.stream(QUESTION))) for _ in range(THREADS - 1)]
    for streamer in streamers:
        streamer.start()
    wait_for_waiters(streamers, len(streamers))
    bare.answers.gate.set()
    run_all([invoker, *streamers])

    assert invoker.error is None and [streamer.error for streamer in streamers] == [None] * len(streamers)
    assert invoker.result.content == ANSWER
    assert invoker.result.usage_metadata["total_tokens"] == 26
    streamed = [add_up(streamer.result) for streamer in streamers]
    assert [message.content for message in streamed] == [ANSWER] * len(streamers)
    assert all(message.usage_metadata["total_tokens"] == 26 for message in streamed)  # the invoked answer, replayed
    assert all(message.response_metadata[MARKER_KEY]["hit"] is True for message in streamed)
    assert bare.answers.count == 1
    assert cache.stats is not None and cache.stats.coalesced == len(streamers)


def test_one_thread_interleaving_two_streams_of_one_prompt_does_not_wait_on_itself(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = single_flight_cache("redis", make_llm_cache)
    bare = gated_chat()
    bare.answers.gate.set()
    model = cached(bare, cache=cache)
    started = time.monotonic()
    first, second = model.stream(QUESTION), model.stream(QUESTION)
    chunks: tuple[list[Any], list[Any]] = ([next(first)], [next(second)])  # the first leads; the second must not wait
    chunks[0].extend(first)
    chunks[1].extend(second)
    seconds = time.monotonic() - started

    assert seconds < RELEASED_WITHIN
    assert [add_up(c).content for c in chunks] == [ANSWER, ANSWER]
    assert bare.answers.count == 2


class GatedTextLLM(StreamingTextLLM):
    """A text-completion model whose streams wait for the gate of :attr:`answers`."""

    answers: Any = None

    def _stream(self, prompt: str, *args: Any, **kwargs: Any) -> Iterator[GenerationChunk]:
        next(self.answers)  # counts the call and waits for the gate
        yield from super()._stream(prompt, *args, **kwargs)


def test_twenty_threads_streaming_a_text_completion_model_make_one_model_call(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = single_flight_cache("redis", make_llm_cache)
    bare = GatedTextLLM(answers=Answers())
    model = cached(bare, cache=cache)
    callers = [Caller(lambda: "".join(model.stream("Say the pangram."))) for _ in range(THREADS)]
    for caller in callers:
        caller.start()
    wait_until(lambda: bare.answers.count == 1)
    wait_for_waiters(callers, THREADS - 1)
    bare.answers.gate.set()
    run_all(callers)

    assert [caller.error for caller in callers] == [None] * THREADS
    assert [caller.result.strip() for caller in callers] == ["The quick brown fox jumps over the lazy dog."] * THREADS
    assert len(bare.calls) == 1
    assert cache.stats is not None and cache.stats.coalesced == THREADS - 1


# Asyncio tasks


async def consume(model: Any, taken: list[Any] | None = None) -> list[Any]:
    chunks = taken if taken is not None else []
    async for chunk in model.astream(QUESTION):
        chunks.append(chunk)
    return chunks


def waiting(cache: LLMCache) -> int:
    """How many callers wait on ``cache``'s flights now."""
    assert cache.single_flight is not None
    return cache.single_flight.waiting()


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


async def timed(awaitable: Any) -> tuple[Any, float]:
    """``awaitable``'s result (or exception) and when it ended."""
    try:
        result = await awaitable
    except BaseException as exc:
        result = exc
    return result, time.monotonic()


@pytest.mark.parametrize("kind", KINDS)
def test_twenty_tasks_astreaming_the_same_prompt_make_one_model_call(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat()
    model = cached_on(kind, bare, cache)

    async def burst() -> tuple[list[Any], float]:
        tasks = [asyncio.ensure_future(timed(consume(model))) for _ in range(THREADS)]
        await until(lambda: bare.answers.count == 1)
        await until(lambda: waiting(cache) == THREADS - 1)  # the other tasks miss and join the flight
        opened = time.monotonic()
        bare.answers.gate.set()
        return list(await asyncio.gather(*tasks)), opened

    results, opened = asyncio.run(burst())
    print(f"{kind}: {THREADS} astreams done {figures([end - opened for _, end in results])} after the gate")

    assert [add_up(chunks).content for chunks, _ in results] == [ANSWER] * THREADS
    assert sorted(marker(chunks)["hit"] for chunks, _ in results) == [False] + [True] * (THREADS - 1)
    assert bare.answers.count == 1
    assert cache.stats is not None
    assert (cache.stats.coalesced, cache.stats.hits, cache.stats.misses, cache.stats.writes) == (THREADS - 1, 0, 1, 1)


@pytest.mark.parametrize("how", ["raise", "break", "aclose", "cancel"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_leader_astream_that_fails_or_is_closed_early_releases_its_waiters_at_once(
    kind: str, how: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat(fail_first_after=4 if how == "raise" else None)
    model = cached_on(kind, bare, cache)
    ended_at: list[float] = []
    received: list[Any] = []

    async def lead() -> None:
        if how == "raise":
            await consume(model, received)
        elif how == "break":
            async for chunk in model.astream(QUESTION):
                received.append(chunk)
                if len(received) == 3:
                    ended_at.append(time.monotonic())
                    break  # the async generator is left to the loop to close
        elif how == "aclose":
            stream = model.astream(QUESTION)
            for _ in range(3):
                received.append(await stream.__anext__())
            ended_at.append(time.monotonic())
            await stream.aclose()
        else:
            async for chunk in model.astream(QUESTION):
                received.append(chunk)
                if len(received) == 3:
                    await asyncio.sleep(3600)  # cancelled here
        if how != "raise":
            await asyncio.sleep(BOUND + 5)  # the leader's task goes on with other work

    async def burst() -> tuple[list[Any], float]:
        leader = asyncio.ensure_future(lead())
        await until(lambda: bare.answers.count == 1)
        waiters = [asyncio.ensure_future(timed(consume(model))) for _ in range(THREADS - 1)]
        await until(lambda: waiting(cache) == THREADS - 1)  # they miss and join the leader's flight
        bare.answers.gate.set()
        if how == "cancel":
            await until(lambda: len(received) == 3)
            ended_at.append(time.monotonic())
            leader.cancel()
        results = list(await asyncio.gather(*waiters))
        if how == "raise":
            with pytest.raises(ModelFailedError):
                await leader
            ended_at.append(bare.answers.failed_at or 0.0)
        leader.cancel()
        return results, ended_at[0]

    results, ended = asyncio.run(burst())
    seconds = sorted(end - ended for _, end in results)
    print(f"{kind}: the leader's astream ended ({how}); its waiters had their own answers {figures(seconds)} later")

    assert [type(chunks) for chunks, _ in results] == [list] * (THREADS - 1)
    assert [add_up(chunks).content for chunks, _ in results] == [ANSWER] * (THREADS - 1)
    assert max(seconds) < RELEASED_WITHIN
    assert len(received) in (3, 4)
    assert bare.answers.count == THREADS
    assert cache.stats is not None and cache.stats.coalesced == 0


@pytest.mark.parametrize("close", [False, True], ids=["completes", "closed-early"])
@pytest.mark.parametrize("kind", ["redis", "alias-locmem"])
def test_a_thread_streams_while_tasks_of_an_event_loop_astream_the_same_prompt(
    kind: str, close: bool, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight_cache(kind, make_llm_cache)
    bare = gated_chat()
    model = cached_on(kind, bare, cache)
    closed_at: list[float] = []

    def lead() -> list[Any]:
        chunks = []
        for chunk in model.stream(QUESTION):
            chunks.append(chunk)
            if close and len(chunks) == 3:
                closed_at.append(time.monotonic())
                break
        return chunks

    leader = Caller(lead)
    leader.start()
    wait_until(lambda: bare.answers.count == 1)

    async def tasks() -> list[Any]:
        waiters = [asyncio.ensure_future(timed(consume(model))) for _ in range(10)]
        await until(lambda: waiting(cache) == 10)  # they join the thread's flight, woken across threads and loops
        bare.answers.gate.set()
        return list(await asyncio.gather(*waiters))

    results = asyncio.run(tasks())
    run_all([leader])
    if close:
        print(
            f"{kind}: thread leader closed early; tasks answered {figures([end - closed_at[0] for _, end in results])} later"
        )

    assert [add_up(chunks).content for chunks, _ in results] == [ANSWER] * 10
    if close:
        assert max(end - closed_at[0] for _, end in results) < RELEASED_WITHIN
        assert bare.answers.count == 11
        assert cache.stats is not None and cache.stats.coalesced == 0
    else:
        assert add_up(leader.result).content == ANSWER
        assert bare.answers.count == 1
        assert cache.stats is not None and cache.stats.coalesced == 10


def test_one_task_interleaving_two_astreams_of_one_prompt_does_not_wait_on_itself(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = single_flight_cache("redis", make_llm_cache)
    bare = gated_chat()
    bare.answers.gate.set()
    model = cached(bare, cache=cache)

    async def interleave() -> list[str]:
        first, second = model.astream(QUESTION), model.astream(QUESTION)
        chunks = [[await first.__anext__()], [await second.__anext__()]]
        chunks[0] += [chunk async for chunk in first]
        chunks[1] += [chunk async for chunk in second]
        return [add_up(c).content for c in chunks]

    started = time.monotonic()
    assert asyncio.run(interleave()) == [ANSWER, ANSWER]
    assert time.monotonic() - started < RELEASED_WITHIN
    assert bare.answers.count == 2
