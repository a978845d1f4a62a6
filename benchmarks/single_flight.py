"""Single-flight figures: ``python -m benchmarks.single_flight`` (starts its own redis-server).

100 concurrent identical misses on a fake model with 200 ms latency, ours with SINGLE_FLIGHT
against the same cache without it (every miss calls the model, as langchain-community's do); and the cost single-flight adds to a hit and a miss.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import redis  # noqa: E402
from langchain_core.language_models import FakeListChatModel  # noqa: E402

from llmcache_django import RedisLLMCache  # noqa: E402
from tests import servers  # noqa: E402

LATENCY = 0.2


class SlowChat(FakeListChatModel):
    """200 ms per call, counting calls."""

    calls: Any = None

    def _call(self, *args: Any, **kwargs: Any) -> str:
        with self.calls["lock"]:
            self.calls["count"] += 1
        time.sleep(LATENCY)
        return "the answer"


def burst(cache: Any, callers: int = 100) -> tuple[int, float, list[float]]:
    model = SlowChat(responses=["x"], cache=cache, calls={"count": 0, "lock": threading.Lock()})
    finished: list[float] = []
    start = threading.Barrier(callers + 1)

    def ask() -> None:
        start.wait()
        model.invoke("the popular prompt")
        finished.append(time.perf_counter())

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    done = sorted(finished)
    beyond_leader = [moment - done[0] for moment in done[1:]]
    return model.calls["count"], done[-1] - began, beyond_leader


def per_call(function: Any, repeat: int = 3000) -> float:
    started = time.perf_counter()
    for index in range(repeat):
        function(index)
    return (time.perf_counter() - started) / repeat


def main() -> None:
    server = servers.start_redis()
    try:
        client = redis.Redis(port=server.port)
        ours = RedisLLMCache(client, namespace=f"b{uuid.uuid4().hex[:6]}", single_flight=True)
        calls, wall, beyond = burst(ours)
        quantiles = statistics.quantiles(beyond, n=100)
        print(
            f"ours (SINGLE_FLIGHT): {calls} model call(s), burst {wall * 1000:.0f} ms, waiters beyond the leader "
            f"p50 {quantiles[49] * 1000:.2f} ms p99 {quantiles[98] * 1000:.2f} ms"
        )
        # Without single-flight every miss calls the model, as langchain-community's caches do.
        calls, wall, _ = burst(RedisLLMCache(client, namespace=f"u{uuid.uuid4().hex[:6]}"))
        print(f"without single-flight: {calls} model call(s), burst {wall * 1000:.0f} ms")
        plain = RedisLLMCache(client, namespace=f"p{uuid.uuid4().hex[:6]}")
        flighted = RedisLLMCache(client, namespace=f"f{uuid.uuid4().hex[:6]}", single_flight=True)
        from langchain_core.outputs import Generation

        for cache in (plain, flighted):
            cache.update("hit", "llm", [Generation(text="a")])
        hit = [
            min(per_call(lambda _i, c=cache: c.lookup("hit", "llm")) for _ in range(5)) for cache in (plain, flighted)
        ]
        miss = [
            per_call(
                lambda i, c=cache: (
                    c.lookup(f"m{i}{id(c)}", "llm"),
                    c.update(f"m{i}{id(c)}", "llm", [Generation(text="a")]),
                ),
                1000,
            )
            for cache in (plain, flighted)
        ]
        print(
            f"hit:  {hit[0] * 1e6:.1f} µs plain, {hit[1] * 1e6:.1f} µs with single-flight ({(hit[1] / hit[0] - 1) * 100:+.1f} %)"
        )
        print(
            f"miss+update: {miss[0] * 1e6:.1f} µs plain, {miss[1] * 1e6:.1f} µs with single-flight ({(miss[1] / miss[0] - 1) * 100:+.1f} %)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
