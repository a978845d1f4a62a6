"""Small builders shared by the tests: sample generations and raw access to stored values."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from llmcache_django.cache import LLMCache
from llmcache_django.keys import entry_digest


def chat_generation(text: str = "Paris.") -> ChatGeneration:
    """A chat answer with everything a real provider returns: tools, usage, metadata, blocks."""
    message = AIMessage(
        content=[{"type": "text", "text": text}],
        tool_calls=[{"name": "lookup_city", "args": {"name": "Paris", "limit": 3}, "id": "call_1"}],
        invalid_tool_calls=[{"name": "broken", "args": "{not json", "id": "call_2", "error": "bad json"}],
        additional_kwargs={"refusal": None},
        response_metadata={"model_name": "gpt-test", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 12, "output_tokens": 30, "total_tokens": 42},
        id="run-1",
    )
    return ChatGeneration(message=message, generation_info={"finish_reason": "stop", "logprobs": None})


def text_generations(*texts: str) -> list[Generation]:
    return [Generation(text=text, generation_info={"index": index}) for index, text in enumerate(texts)]


def plant(cache: LLMCache, prompt: str, llm_string: str, value: bytes) -> None:
    """Store ``value`` under the entry key for ``(prompt, llm_string)``, bypassing the codec."""
    cache.store.set(entry_digest(prompt, llm_string), value, None)


def stored_bytes(cache: LLMCache, prompt: str, llm_string: str) -> bytes | None:
    """What the store holds for ``(prompt, llm_string)``, bypassing the codec."""
    return cache.store.get(entry_digest(prompt, llm_string))


def run_bounded(call: Callable[[], object], limit: float = 30.0) -> float:
    """Run ``call`` in a thread; fail (rather than hang the suite) if it is not back in ``limit`` s."""
    started, outcome = time.monotonic(), []
    worker = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    worker.start()
    worker.join(limit)
    assert outcome, f"the call was still blocked after {limit} s"
    return time.monotonic() - started


def wait_until(condition: Callable[[], object], seconds: float = 10.0, what: str = "the condition") -> None:
    """Poll ``condition`` until it is true; fail (rather than hang or race) after ``seconds``.

    The deadline is generous on purpose: it only bounds a test that would otherwise hang, it
    never measures speed.
    """
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not come true within {seconds} s"
        time.sleep(0.005)


async def async_wait_until(condition: Callable[[], object], seconds: float = 10.0, what: str = "the condition") -> None:
    """:func:`wait_until` for a coroutine: polls without blocking the event loop."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not come true within {seconds} s"
        await asyncio.sleep(0.005)


#: Where single-flight code waits for a leader: an in-process flight, or polling the lease.
WAITING_FOR_A_LEADER = {"wait", "await_end", "_poll", "_apoll"}


def waiting_for_a_leader(frame: FrameType) -> bool:
    """Whether ``frame`` is single-flight code waiting for another caller's answer."""
    return frame.f_globals.get("__name__") == "llmcache_django.single_flight" and (
        frame.f_code.co_name in WAITING_FOR_A_LEADER
    )


def running(*functions: Callable[..., object]) -> Callable[[FrameType], bool]:
    """A frame test: ``frame`` runs one of ``functions`` (e.g. a gated model's ``_call``)."""
    codes = {function.__code__ for function in functions}  # type: ignore[attr-defined]
    return lambda frame: frame.f_code in codes


def threads_waiting_for_a_leader() -> int:
    """How many threads of this process are in single-flight code, waiting for a leader's answer."""
    count = 0
    for frame in sys._current_frames().values():
        while frame is not None and not waiting_for_a_leader(frame):
            frame = frame.f_back
        count += frame is not None
    return count


def threads_parked(threads: Iterable[threading.Thread], *where: Callable[[FrameType], bool]) -> bool:
    """Whether every one of ``threads`` has ended or is, somewhere in its stack, in a frame one
    of ``where`` accepts (e.g. waiting for a leader, or in a model waiting for its gate)."""
    frames = sys._current_frames()
    for thread in threads:
        if not thread.is_alive():
            continue
        frame = frames.get(thread.ident or -1)
        while frame is not None and not any(test(frame) for test in where):
            frame = frame.f_back
        if frame is None:
            return False
    return True


def tasks_waiting_for_a_leader() -> int:
    """How many tasks of the running loop are suspended in single-flight code, waiting for a
    leader's answer (all of them: LangChain runs each prompt of a call in a task of its own)."""
    tasks = asyncio.all_tasks()
    return sum(1 for task in tasks if not task.done() and any(map(waiting_for_a_leader, _awaited_frames(task))))


def _awaited_frames(task: asyncio.Task[object]) -> Iterable[FrameType]:
    """The frames of a suspended task's chain of coroutines, outermost first."""
    awaitable: object = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            yield frame
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
