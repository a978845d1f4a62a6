"""The Performance issue's targets, checked against one run's medians."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.measurements import Measurements
from benchmarks.single_flight import FLIGHT

#: The multiplication sign, spelled out so the source stays ASCII-unambiguous.
TIMES = "\u00d7"
CHAT = "chat"
BURST = 5000


@dataclass(frozen=True)
class Target:
    """One ratio the issue asks for, and what this run measured."""

    name: str
    measured: float
    limit: float
    at_most: bool
    unit: str = TIMES

    @property
    def met(self) -> bool:
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit

    @property
    def wanted(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {self.limit:g}{self.unit}"

    @property
    def found(self) -> str:
        return f"{self.measured:.2f}{self.unit}"

    def line(self) -> str:
        """`PASS`/`MISS` line for the console."""
        return f"{'PASS' if self.met else 'MISS'}  {self.name}: {self.found} (want {self.wanted})"


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, infinite when the denominator is zero."""
    return numerator / denominator if denominator else float("inf")


def latency_targets(m: Measurements) -> list[Target]:
    """Hit and update ratios on the chat payload."""
    redis = {c: m.median("Redis sync", CHAT, "hit", c) for c in ("ours", "upstream", "raw")}
    mc = {c: m.median("Memcached", CHAT, "hit", c) for c in ("ours", "upstream", "raw")}
    update = {c: m.median("Redis sync", CHAT, "update", c) for c in ("ours", "upstream")}
    return [
        Target("Redis sync hit / raw GET", ratio(redis["ours"], redis["raw"]), 1.4, True),
        Target("RedisCache.lookup / our hit", ratio(redis["upstream"], redis["ours"]), 2.5, False),
        Target("RedisCache.update / our update", ratio(update["upstream"], update["ours"]), 3, False),
        Target("Memcached hit / raw get", ratio(mc["ours"], mc["raw"]), 1.4, True),
        Target("MemcachedCache.lookup / our hit", ratio(mc["upstream"], mc["ours"]), 1, False),
    ]


def concurrency_targets(m: Measurements) -> list[Target]:
    """Zero errors and 3 times AsyncRedisCache's throughput at 5,000 concurrent alookups."""
    ours, upstream = m.throughput(BURST, "ours"), m.throughput(BURST, "upstream")
    return [
        Target(f"{BURST:,} concurrent alookups: our errors", ours.errors, 0, True, ""),
        Target(
            f"{BURST:,} concurrent alookups: our hits/s / AsyncRedisCache's",
            ratio(ours.hits_per_s, upstream.hits_per_s),
            3,
            False,
        ),
    ]


def storage_targets(m: Measurements) -> list[Target]:
    """Bytes per chat entry against upstream, on each server."""
    found = []
    for backend in ("Redis sync", "Memcached"):
        stored = m.stored_for(backend, CHAT)
        share = ratio(stored.ours.stored_bytes, stored.upstream.stored_bytes) * 100
        name = f"{backend.split()[0]} bytes per chat entry / upstream's"
        found.append(Target(name, share, 55, True, " %"))
    return found


def stats_targets(m: Measurements) -> list[Target]:
    """Stats counters cost at most 5 % of a hit."""
    if m.stats is None:
        return []
    return [Target("stats overhead on a Redis hit", m.stats.overhead * 100, 5, True, " %")]


def streaming_targets(m: Measurements) -> list[Target]:
    """Replay's first chunk within 2 times a lookup hit; recording under 5 % of the stream."""
    if m.streaming is None:
        return []
    return [
        Target("replay first chunk / lookup hit", m.streaming.replay_first_vs_lookup, 2, True),
        Target("recording overhead on a live stream", m.streaming.recording_overhead * 100, 5, True, " %"),
    ]


def single_flight_targets(m: Measurements) -> list[Target]:
    """One model call per burst of identical misses; at most 5 % on a hit, one round trip on a miss."""
    if m.single_flight is None:
        return []
    found = m.single_flight
    burst = found.burst(FLIGHT)
    return [
        Target(f"single-flight: model calls per burst of {burst.callers}", max(burst.model_calls), 1, True, ""),
        Target("single-flight overhead on a Redis hit", found.hit_overhead * 100, 5, True, " %"),
        Target("single-flight extra round trips on a miss + update", found.extra_round_trips, 1, True, ""),
    ]


def evaluate(m: Measurements) -> list[Target]:
    """Every target of the issue, in its order."""
    return (
        latency_targets(m)
        + concurrency_targets(m)
        + storage_targets(m)
        + stats_targets(m)
        + streaming_targets(m)
        + single_flight_targets(m)
    )
