"""Streams through ``cached(...)`` on Redis: a 2,000-token answer replayed from the cache
against the live fake model, and what recording a miss adds to the live stream.

`python -m benchmarks.streaming` runs this part alone on a throw-away redis-server.
"""

from __future__ import annotations

import functools
import gc
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.load import dumps
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from benchmarks.fixtures import prose
from benchmarks.servers import HOST
from benchmarks.timing import Plan, interleaved, rotation
from llmcache_django import RedisLLMCache, cached
from llmcache_django.integrations.replay import recorded

TIMES = "\u00d7"  # as benchmarks.targets spells it

TOKENS = 2000
#: A live 2,000-chunk stream takes ~30 ms: fewer rounds than the per-call benchmarks.
PLAN = Plan(rounds=20, batch=3, warmup=3)
QUICK_PLAN = Plan(rounds=2, batch=1, warmup=1)
QUESTION = "Explain LLM caching in Django at length."
#: ~4 characters a token, as OpenAI's tokenizers average on English text.
ANSWER_TOKENS = [word + " " for word in prose(TOKENS * 8, seed=21).split(" ")][:TOKENS]


class TokenStreamModel(BaseChatModel):
    """The live fake model: streams a fixed answer one token a chunk, as fast as it is read."""

    tokens: list[str]

    @property
    def _llm_type(self) -> str:
        return "token-stream-fake"

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for token in self.tokens[:-1]:
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))
        usage = UsageMetadata(input_tokens=12, output_tokens=len(self.tokens), total_tokens=12 + len(self.tokens))
        yield ChatGenerationChunk(
            message=AIMessageChunk(content=self.tokens[-1], usage_metadata=usage, chunk_position="last")
        )

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages))


@dataclass(frozen=True)
class StreamTimes:
    """Median milliseconds to the first and to the last chunk of one way of streaming."""

    name: str
    first_ms: float
    last_ms: float
    chunks: int


@dataclass(frozen=True)
class StreamingResults:
    """The streaming part of a run."""

    tokens: int
    streams: list[StreamTimes]
    lookup_hit_ms: float
    invoke_hit_ms: float
    #: Median over rounds of (recorded stream / bare stream, timed back to back) - 1.
    recording_overhead: float
    #: What recording itself costs (key, miss lookup, passing the chunks on, aggregating,
    #: storing), timed on the chunks of one live stream without the model.
    recording_work_ms: float

    def times(self, name: str) -> StreamTimes:
        """One way of streaming."""
        return next(s for s in self.streams if s.name == name)

    @property
    def replay_first_vs_lookup(self) -> float:
        """Replay's time to first chunk over a plain ``lookup`` hit of the same entry."""
        return self.times("replayed (hit)").first_ms / self.lookup_hit_ms

    @property
    def recording_work_share(self) -> float:
        """The recording work as a fraction of the bare live stream."""
        return self.recording_work_ms / self.times("live, bare model").last_ms


def time_stream(stream: Callable[[], Iterator[Any]]) -> tuple[float, float, int]:
    """Milliseconds to the first and the last chunk of one stream, and how many chunks."""
    started = time.perf_counter()
    chunks = iter(stream())
    next(chunks)
    first = time.perf_counter() - started
    count = 1 + sum(1 for _ in chunks)
    return first * 1000, (time.perf_counter() - started) * 1000, count


Samples = dict[str, list[tuple[float, float, int]]]


def interleaved_streams(streams: dict[str, Callable[[], Iterator[Any]]], plan: Plan) -> Samples:
    """Time every way of streaming in rotating rounds (as `timing.interleaved` does calls)."""
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in streams}
    for stream in streams.values():
        for _ in range(plan.warmup):
            time_stream(stream)
    gc.collect()
    for index in range(plan.rounds):
        for name in rotation(list(streams), index):
            samples[name] += [time_stream(streams[name]) for _ in range(plan.batch)]
    return samples


def summaries(samples: Samples) -> list[StreamTimes]:
    """Median first and last chunk times of each way of streaming."""
    return [
        StreamTimes(name, statistics.median(s[0] for s in found), statistics.median(s[1] for s in found), found[-1][2])
        for name, found in samples.items()
    ]


def paired_overhead(samples: Samples, name: str, baseline: str) -> float:
    """Median of ``name``'s last-chunk time over ``baseline``'s from the same round, minus 1:
    pairs timed back to back share the machine's load of the moment."""
    return statistics.median(a[1] / b[1] for a, b in zip(samples[name], samples[baseline], strict=True)) - 1


def recording_work(model: Any, bare: BaseChatModel, rounds: int) -> float:
    """Median milliseconds of what a recorded miss does besides running the model."""
    chunks = list(bare.stream(QUESTION))
    prompts = (f"{QUESTION} work #{n}" for n in itertools.count())

    def record() -> None:
        messages = [HumanMessage(content=next(prompts))]
        prompt, llm_string = model._cache_key(messages, None, {})
        if model.cache.lookup(prompt, llm_string) is None:
            for _chunk in recorded(iter(chunks), model.cache, prompt, llm_string):
                pass

    return median_ms(record, rounds)


def median_ms(call: Callable[[], object], rounds: int) -> float:
    """Median milliseconds of ``call`` after a few warm-up calls."""
    for _ in range(3):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def measure(port: int, db: int, plan: Plan) -> StreamingResults:
    """Replay vs the live model vs recording a miss, then `lookup` and `invoke` hits, on Redis."""
    client = redis.Redis(host=HOST, port=port, db=db)
    cache = RedisLLMCache(client, namespace="bench-stream")
    cache.clear()
    bare = TokenStreamModel(tokens=ANSWER_TOKENS, cache=False)
    model = cached(bare, cache=cache)
    list(model.stream(QUESTION))  # recorded: every replay below is a hit
    if not list(model.stream(QUESTION))[-1].response_metadata["llm_cache"]["hit"]:
        raise RuntimeError("the recorded stream was not replayed from the cache")
    prompts = (f"{QUESTION} #{n}" for n in itertools.count())  # a miss each time
    streams: dict[str, Callable[[], Iterator[Any]]] = {
        "replayed (hit)": functools.partial(model.stream, QUESTION),
        "live, bare model": functools.partial(bare.stream, QUESTION),
        "live, recorded (miss)": lambda: model.stream(next(prompts)),
    }
    samples = interleaved_streams(streams, plan)
    prompt, llm_string = dumps([HumanMessage(content=QUESTION)]), bare._get_llm_string()  # invoke's key
    calls: dict[str, Callable[[], object]] = {
        "lookup": functools.partial(cache.lookup, prompt, llm_string),
        "invoke": functools.partial(model.invoke, QUESTION),
    }
    hits = interleaved(calls, Plan(plan.rounds * 5, plan.batch, plan.warmup * 5))
    return StreamingResults(
        TOKENS,
        summaries(samples),
        hits["lookup"].median_us / 1000,
        hits["invoke"].median_us / 1000,
        paired_overhead(samples, "live, recorded (miss)", "live, bare model"),
        recording_work(model, bare, plan.rounds * plan.batch),
    )


def report_lines(results: StreamingResults) -> list[str]:
    """The streaming section of results.md."""
    rows = [f"| {s.name} | {s.first_ms:.3f} | {s.last_ms:.2f} | {s.chunks:,} |" for s in results.streams]
    return [
        "## Streaming",
        "",
        f"`cached(model).stream()` on Redis, a {results.tokens:,}-token answer (the live fake model yields one "
        "token a chunk, as fast as it is read). Medians.",
        "",
        "| stream | first chunk ms | last chunk ms | chunks |",
        "|---|---|---|---|",
        *rows,
        "",
        f"`lookup` hit of the same entry: {results.lookup_hit_ms:.3f} ms; `invoke` hit: {results.invoke_hit_ms:.3f} ms. "
        f"Replay's first chunk / lookup hit: {results.replay_first_vs_lookup:.2f}{TIMES}; recording overhead on a miss: "
        f"{results.recording_overhead * 100:+.1f} % of the bare stream (median of back-to-back pairs); the recording "
        f"work itself (key, miss lookup, passing {results.tokens:,} chunks on, aggregating, storing) takes "
        f"{results.recording_work_ms:.2f} ms, {results.recording_work_share * 100:.1f} % of the bare stream.",
        "",
    ]


def main() -> int:
    """Run this part alone and print its section."""
    from benchmarks import servers

    with servers.redis_server() as server:
        print("\n".join(report_lines(measure(server.port, 6, PLAN))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
