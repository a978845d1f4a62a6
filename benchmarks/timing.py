"""Interleaved timing with time.perf_counter_ns: every contender sees the same drift."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

SyncCall = Callable[[], object]
AsyncCall = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Plan:
    """How many calls to time: `rounds` rotations of one `batch` per contender."""

    rounds: int
    batch: int
    warmup: int

    def scaled(self, factor: float) -> Plan:
        """The same plan with fewer rounds, for slow operations."""
        return Plan(max(2, int(self.rounds * factor)), self.batch, self.warmup)


@dataclass(frozen=True)
class Summary:
    """Median and p90 of one contender's per-call latencies, in microseconds."""

    median_us: float
    p90_us: float
    samples: int


def summarize(samples_ns: list[int]) -> Summary:
    """Reduce raw nanosecond samples to a Summary."""
    deciles = statistics.quantiles(samples_ns, n=10)
    return Summary(statistics.median(samples_ns) / 1000, deciles[-1] / 1000, len(samples_ns))


def time_calls(call: SyncCall, count: int) -> list[int]:
    """Latency of `count` consecutive calls, one sample each."""
    clock, samples = time.perf_counter_ns, []
    for _ in range(count):
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


async def atime_calls(call: AsyncCall, count: int) -> list[int]:
    """Latency of `count` consecutive awaited calls, one sample each."""
    clock, samples = time.perf_counter_ns, []
    for _ in range(count):
        start = clock()
        await call()
        samples.append(clock() - start)
    return samples


def rotation(names: list[str], round_index: int) -> list[str]:
    """Contender order for one round: rotate so nobody always goes first."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def interleaved(calls: Mapping[str, SyncCall], plan: Plan) -> dict[str, Summary]:
    """Time every call in rotating rounds and summarize each."""
    samples: dict[str, list[int]] = {name: [] for name in calls}
    for call in calls.values():
        time_calls(call, plan.warmup)
    gc.collect()
    for index in range(plan.rounds):
        for name in rotation(list(calls), index):
            samples[name] += time_calls(calls[name], plan.batch)
    return {name: summarize(values) for name, values in samples.items()}


async def ainterleaved(calls: Mapping[str, AsyncCall], plan: Plan) -> dict[str, Summary]:
    """Async twin of `interleaved`."""
    samples: dict[str, list[int]] = {name: [] for name in calls}
    for call in calls.values():
        await atime_calls(call, plan.warmup)
    gc.collect()
    for index in range(plan.rounds):
        for name in rotation(list(calls), index):
            samples[name] += await atime_calls(calls[name], plan.batch)
    return {name: summarize(values) for name, values in samples.items()}
