"""Streaming an answer to the page as Server-Sent Events: a `token` event per chunk, then
`done` with where the answer came from (the hit marker on the last chunk), the timings and
the tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Any

from asgiref.sync import sync_to_async
from langchain_core.messages import AIMessageChunk
from langchain_core.messages.utils import message_chunk_to_message

from example_project.demo.ask import Answer, answer_from, directed
from example_project.demo.chat import chat_model


@dataclass
class StreamTiming:
    """When a stream started, and how long its first chunk took."""

    started: float
    first_chunk: float | None = None
    chunks: int = 0

    def saw_chunk(self) -> None:
        """Count a chunk; the first one stops the time-to-first-chunk clock."""
        self.chunks += 1
        if self.first_chunk is None:
            self.first_chunk = perf_counter() - self.started


def answer_events(
    prompt: str, on_answer: Callable[[Answer], dict[str, Any]], *, refresh: bool = False
) -> Iterator[str]:
    """Stream the answer to `prompt` with `stream()`; `on_answer` adds to the `done` event."""
    timing, chunks = StreamTiming(perf_counter()), []
    for chunk in chat_model().stream(prompt, config=directed(refresh)):
        timing.saw_chunk()
        chunks.append(chunk)
        yield event("token", {"text": chunk.text})
    answer = _answer(chunks, timing)
    yield event("done", done_data(answer, timing, on_answer(answer)))


async def aanswer_events(
    prompt: str, on_answer: Callable[[Answer], Any], *, refresh: bool = False
) -> AsyncIterator[str]:
    """Stream the answer to `prompt` with `astream()`; `on_answer` is awaited."""
    timing, chunks = StreamTiming(perf_counter()), []
    async for chunk in chat_model().astream(prompt, config=directed(refresh)):
        timing.saw_chunk()
        chunks.append(chunk)
        yield event("token", {"text": chunk.text})
    answer = _answer(chunks, timing)
    yield event("done", done_data(answer, timing, await on_answer(answer)))


async def in_worker_threads(events: Iterator[str]) -> AsyncIterator[str]:
    """A sync stream served under ASGI chunk by chunk: Django would otherwise read a sync
    iterator to the end before sending anything."""
    take_next = sync_to_async(_next_or_end, thread_sensitive=False)
    while (item := await take_next(events)) is not None:
        yield item


def _next_or_end(events: Iterator[str]) -> str | None:
    return next(events, None)


def event(name: str, data: dict[str, Any]) -> str:
    """One Server-Sent Event."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def done_data(answer: Answer, timing: StreamTiming, extra: dict[str, Any]) -> dict[str, Any]:
    """What the page shows once the answer is complete."""
    first_chunk_ms = round((timing.first_chunk or 0) * 1000)
    return {**asdict(answer), "milliseconds": answer.milliseconds, "first_chunk_ms": first_chunk_ms,
            "chunks": timing.chunks, "tokens_saved_now": answer.tokens_saved, **extra}  # fmt: skip


def _answer(chunks: list[AIMessageChunk], timing: StreamTiming) -> Answer:
    message = message_chunk_to_message(chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0])
    return answer_from(message, perf_counter() - timing.started)
