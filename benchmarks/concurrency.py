"""Bursts of concurrent `alookup`s on default async clients: throughput and errors."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from benchmarks.contenders import Backend, Call
from benchmarks.fixtures import Payload
from benchmarks.timing import rotation

LEVELS = (1, 100, 5000)
CALLS_PER_ROUND = 5000


@dataclass(frozen=True)
class Throughput:
    """Hits per second (median over rounds) and failed lookups at one concurrency level."""

    level: int
    contender: str
    hits_per_s: float
    errors: int
    calls: int


@dataclass
class Tally:
    """Running count of one contender's bursts."""

    elapsed_ns: int = 0
    hits: int = 0
    calls: int = 0


def is_hit(result: object) -> bool:
    """A lookup that raised or came back empty is an error: the key is stored."""
    return bool(result) and not isinstance(result, BaseException)


async def burst(call: Call, level: int, tally: Tally) -> None:
    """Fire `level` lookups at once and wait for all of them."""
    start = time.perf_counter_ns()
    results = await asyncio.gather(*(call() for _ in range(level)), return_exceptions=True)
    tally.elapsed_ns += time.perf_counter_ns() - start
    tally.hits += sum(map(is_hit, results))
    tally.calls += level


async def one_round(backend: Backend, name: str, call: Call, level: int) -> Tally:
    """Warm the pool with one burst, time enough bursts, then drop the connections."""
    await burst(call, level, Tally())
    tally = Tally()
    for _ in range(max(1, CALLS_PER_ROUND // level)):
        await burst(call, level, tally)
    await backend.clients[name].connection_pool.disconnect()
    return tally


async def at_level(backend: Backend, payload: Payload, level: int, rounds: int) -> list[Throughput]:
    """Interleaved rounds of every contender at one concurrency level."""
    calls = {name: c.hit(payload) for name, c in backend.contenders().items()}
    tallies: dict[str, list[Tally]] = {name: [] for name in calls}
    for index in range(rounds):
        for name in rotation(list(calls), index):
            tallies[name].append(await one_round(backend, name, calls[name], level))
    return [summarize(level, name, found) for name, found in tallies.items()]


def summarize(level: int, name: str, tallies: list[Tally]) -> Throughput:
    """Median hits/s over rounds; every non-hit across rounds counts as an error."""
    rates = [t.hits / (t.elapsed_ns / 1e9) for t in tallies]
    calls = sum(t.calls for t in tallies)
    errors = calls - sum(t.hits for t in tallies)
    return Throughput(level, name, statistics.median(rates), errors, calls)


async def measure(backend: Backend, payload: Payload, rounds: int) -> list[Throughput]:
    """All levels, lowest first."""
    found: list[Throughput] = []
    for level in LEVELS:
        found += await at_level(backend, payload, level, rounds)
    return found
