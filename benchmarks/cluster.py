"""`python -m benchmarks.cluster`: a Redis Cluster row: hit and update latency vs a single
Redis, and cluster hit throughput from 1 and 3 processes."""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Any

import redis
import redis.cluster
from langchain_core.outputs import Generation

from llmcache_django import RedisLLMCache
from tests.cluster_servers import start_cluster
from tests.servers import start_redis

LLM = "[('model_name', 'bench')]"
ANSWER = [Generation(text="A cached answer of a sentence or two, as an LLM might give. " * 3)]
PROMPTS = [f"benchmark prompt {number}" for number in range(64)]


def median_us(call: Any, rounds: int) -> float:
    """The median of ``rounds`` timed calls, in µs (after a warm-up of 50)."""
    for prompt in PROMPTS[:50]:
        call(prompt)
    times = []
    for number in range(rounds):
        prompt = PROMPTS[number % len(PROMPTS)]
        started = time.perf_counter_ns()
        call(prompt)
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1000


def latencies(cache: RedisLLMCache, rounds: int) -> tuple[float, float]:
    """(hit, update) median µs on ``cache``."""
    for prompt in PROMPTS:
        cache.update(prompt, LLM, ANSWER)
    hit = median_us(lambda prompt: cache.lookup(prompt, LLM), rounds)
    update = median_us(lambda prompt: cache.update(prompt, LLM, ANSWER), rounds)
    return hit, update


def _hits_for(url: str, seconds: float, results: Any) -> None:
    cache = RedisLLMCache(redis.cluster.RedisCluster.from_url(url), namespace="bench", stats=False)
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        cache.lookup(PROMPTS[done % len(PROMPTS)], LLM)
        done += 1
    results.put(done)


def throughput(url: str, processes: int, seconds: float) -> float:
    """Cluster hits per second from ``processes`` processes together."""
    results: Any = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_hits_for, args=(url, seconds, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    total = sum(results.get(timeout=seconds + 30) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds


def main() -> None:
    """Print the cluster row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args, _ = parser.parse_known_args()
    rounds, seconds = (200, 1.0) if args.quick else (3000, 3.0)
    single, cluster = start_redis(), start_cluster()
    try:
        single_cache = RedisLLMCache(redis.Redis.from_url(single.url), namespace="bench", stats=False)
        cluster_cache = RedisLLMCache(
            redis.cluster.RedisCluster.from_url(cluster.urls[0]), namespace="bench", stats=False
        )
        single_hit, single_update = latencies(single_cache, rounds)
        cluster_hit, cluster_update = latencies(cluster_cache, rounds)
        one, three = throughput(cluster.urls[0], 1, seconds), throughput(cluster.urls[0], 3, seconds)
    finally:
        single.stop()
        cluster.stop()
    print("| Redis | hit µs | update µs | hits/s, 1 process | hits/s, 3 processes |")
    print("|---|---|---|---|---|")
    print(f"| single node | {single_hit:.0f} | {single_update:.0f} | | |")
    ratio = cluster_hit / single_hit
    print(
        f"| cluster (3 primaries) | {cluster_hit:.0f} ({ratio:.2f}x) | {cluster_update:.0f} | {one:.0f} | {three:.0f} |"
    )
    print(f"cluster hit target (within 1.2x of a single-node hit): {'met' if ratio <= 1.2 else 'missed'}")


if __name__ == "__main__":
    main()
