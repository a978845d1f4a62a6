"""`python -m benchmarks.graph_embeddings`: LangGraph node-cache latency and embeddings sizes.

On one redis-server started for the run: ``LangGraphCache`` get/set of one and of ten keys
against ``langgraph.cache.redis.RedisCache`` (interleaved, same server, same values); then a
1536-dimension vector's stored bytes (with its header: model identity, role, time) against
the JSON ``CacheBackedEmbeddings`` writes, and the round trips a batch of 100 texts costs
``cached_embeddings`` (counted at the client).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

from benchmarks import servers
from benchmarks.timing import Plan, Summary, interleaved

DIMENSIONS = 1536
#: The model identity a stored vector carries (as ``model_identity`` writes it for OpenAI's model).
IDENTITY = json.dumps(
    {
        "class": "langchain_openai.embeddings.base.OpenAIEmbeddings",
        "dimensions": DIMENSIONS,
        "model": "text-embedding-3-small",
    },
    sort_keys=True,
    separators=(",", ":"),
)
PLAN = Plan(rounds=200, batch=10, warmup=100)


def main() -> None:
    settings.configure(INSTALLED_APPS=[], LLM_CACHE_SET_GLOBAL=False)
    django.setup()
    with servers.redis_server() as server:
        url = f"redis://{servers.HOST}:{server.port}/0"
        print(f"redis {server.version}; median / p90 µs, {PLAN.rounds * PLAN.batch} calls each, interleaved")
        for label, calls in node_cache_calls(url).items():
            figures = interleaved(calls, PLAN)
            print(f"{label:<12}" + "   ".join(f"{name} {_figure(figures[name])}" for name in calls))
        print(embeddings_figures(url))


def node_cache_calls(url: str) -> dict[str, dict[str, Callable[[], object]]]:
    """Per operation, the calls to compare: ours (one script; a pipeline, as on a cluster) and langgraph's."""
    import redis
    from langgraph.cache.redis import RedisCache

    from llmcache_django import RedisLLMCache
    from llmcache_django.langgraph import LangGraphCache

    ours: LangGraphCache[Any] = LangGraphCache(cache=RedisLLMCache(redis.Redis.from_url(url), namespace="bench"))
    piped: LangGraphCache[Any] = LangGraphCache(cache=RedisLLMCache(redis.Redis.from_url(url), namespace="bench"))
    piped.side.store.scripts_many_keys = False  # type: ignore[attr-defined]
    theirs: RedisCache[Any] = RedisCache(redis.Redis.from_url(url))
    value = {"messages": [{"role": "ai", "content": "x" * 500}]}
    keys = [(("__pregel_ns_writes", "node"), f"key-{index}") for index in range(10)]
    pairs = {key: (value, 600) for key in keys}
    for cache in (ours, theirs):
        cache.set(pairs)
    one = {keys[0]: (value, 600)}
    return {
        "get 1 key": {
            "ours": lambda: ours.get(keys[:1]),
            "ours piped": lambda: piped.get(keys[:1]),
            "langgraph": lambda: theirs.get(keys[:1]),
        },
        "get 10 keys": {
            "ours": lambda: ours.get(keys),
            "ours piped": lambda: piped.get(keys),
            "langgraph": lambda: theirs.get(keys),
        },
        "set 1 key": {"ours": lambda: ours.set(one), "langgraph": lambda: theirs.set(one)},
        "set 10 keys": {"ours": lambda: ours.set(pairs), "langgraph": lambda: theirs.set(pairs)},
    }


def embeddings_figures(url: str) -> str:
    """Bytes per stored vector, ours against JSON, and round trips per batch of 100 texts."""
    import redis
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from llmcache_django import RedisLLMCache, cached_embeddings
    from llmcache_django.integrations.embeddings import encode_vector

    rng = random.Random(1)
    vector = [float(f"{rng.gauss(0, 0.025):.10g}") for _ in range(DIMENSIONS)]  # an API's JSON precision
    ours_bytes, json_bytes = len(encode_vector(vector, identity=IDENTITY)), len(json.dumps(vector).encode())
    client = redis.Redis.from_url(url)
    embedder = cached_embeddings(DeterministicFakeEmbedding(size=64), cache=RedisLLMCache(client, namespace="emb"))
    texts = [f"document {index}" for index in range(100)]
    with _CountedRoundTrips() as count:
        embedder.embed_documents(texts)
        cold = count()
        embedder.embed_documents(texts)
        warm = count() - cold
    return (
        f"embeddings: {ours_bytes} bytes per {DIMENSIONS}-dim vector (float32) against {json_bytes} as JSON "
        f"({json_bytes / ours_bytes:.1f}x); a batch of 100 texts: {cold} round trips cold, {warm} warm"
    )


class _CountedRoundTrips:
    """Counts the requests redis-py sends (a pipeline is one)."""

    def __enter__(self) -> Callable[[], int]:
        import redis.connection

        self._original = original = redis.connection.AbstractConnection.send_packed_command
        self.sent = 0

        def counting(connection: Any, command: Any, check_health: bool = True) -> None:
            self.sent += 1
            original(connection, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        return lambda: self.sent

    def __exit__(self, *exc: object) -> None:
        import redis.connection

        redis.connection.AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


def _figure(summary: Summary) -> str:
    return f"{summary.median_us:6.1f} / {summary.p90_us:7.1f}"


if __name__ == "__main__":
    main()
