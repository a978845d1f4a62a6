"""Small builders shared by the tests: sample generations and raw access to stored values."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest


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
