"""Per-call latency of lookup hit, lookup miss and update for every contender."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.contenders import Backend, CacheContender, Call
from benchmarks.entries import Entry, largest_new_entry
from benchmarks.fixtures import LLM_STRING, Payload
from benchmarks.timing import Plan, Summary, ainterleaved, interleaved

OPS = ("hit", "miss", "update")
LARGE_PAYLOAD_SCALE = 0.25


@dataclass(frozen=True)
class Latency:
    """Summary of one contender doing one operation on one payload and backend."""

    backend: str
    payload: str
    op: str
    contender: str
    summary: Summary


@dataclass(frozen=True)
class Stored:
    """What ours and upstream wrote for one payload on one backend."""

    backend: str
    payload: str
    ours: Entry
    upstream: Entry


def calls_for(backend: Backend, payload: Payload, op: str) -> dict[str, Call]:
    """Zero-argument calls doing `op` for each contender."""
    contenders = backend.contenders().items()
    if op == "hit":
        return {name: contender.hit(payload) for name, contender in contenders}
    if op == "miss":
        return {name: contender.miss() for name, contender in contenders}
    return {name: contender.update(payload) for name, contender in contenders}


def plan_for(payload: Payload, plan: Plan) -> Plan:
    """Fewer rounds for the 100 KB answer, whose calls are slow."""
    return plan.scaled(LARGE_PAYLOAD_SCALE) if payload.name == "large" else plan


def check_hit(contender: CacheContender, found: object, payload: Payload) -> None:
    """Refuse to time a 'hit' that does not return what was stored.

    Order is not compared: upstream's Redis hash returns fields in hash-table order once
    values outgrow a listpack, so its multi-generation hits can come back shuffled.
    """
    wanted = sorted(map(repr, payload.generations))
    if not isinstance(found, list) or sorted(map(repr, found)) != wanted:
        raise RuntimeError(f"{contender.cache!r} lookup of {payload.name!r} returned {found!r:.300}")


def prepare(backend: Backend, payload: Payload) -> Stored:
    """Store the payload with ours and upstream, teach the raw client our bytes."""
    entries = []
    for contender, inspector in backend.writers():
        with inspector.recording():
            before = inspector.keys()
            contender.cache.update(payload.prompt, LLM_STRING, payload.generations)
            # The hit also proves a fire-and-forget write has landed before we inspect it.
            check_hit(contender, contender.hit(payload)(), payload)
            entries.append(largest_new_entry(inspector, before))
    backend.raw.learn(payload, entries[0])
    return Stored(backend.name, payload.name, *entries)


async def aprepare(backend: Backend, payload: Payload) -> Stored:
    """Async twin of `prepare`."""
    entries = []
    for contender, inspector in backend.writers():
        with inspector.recording():
            before = inspector.keys()
            await contender.cache.aupdate(payload.prompt, LLM_STRING, payload.generations)
            # The hit also proves a fire-and-forget write has landed before we inspect it.
            check_hit(contender, await contender.hit(payload)(), payload)
            entries.append(largest_new_entry(inspector, before))
    backend.raw.learn(payload, entries[0])
    return Stored(backend.name, payload.name, *entries)


def rows(backend: Backend, payload: Payload, op: str, found: dict[str, Summary]) -> list[Latency]:
    """Flatten one interleaved measurement into Latency rows."""
    return [Latency(backend.name, payload.name, op, name, s) for name, s in found.items()]


def measure(backend: Backend, payloads: list[Payload], plan: Plan) -> tuple[list[Latency], list[Stored]]:
    """Every op on every payload for a sync backend."""
    latencies, stored = [], []
    for payload in payloads:
        stored.append(prepare(backend, payload))
        for op in OPS:
            found = interleaved(calls_for(backend, payload, op), plan_for(payload, plan))
            latencies += rows(backend, payload, op, found)
    return latencies, stored


async def ameasure(backend: Backend, payloads: list[Payload], plan: Plan) -> tuple[list[Latency], list[Stored]]:
    """Every op on every payload for an async backend."""
    latencies, stored = [], []
    for payload in payloads:
        stored.append(await aprepare(backend, payload))
        for op in OPS:
            calls = calls_for(backend, payload, op)
            found = await ainterleaved(calls, plan_for(payload, plan))
            latencies += rows(backend, payload, op, found)
    return latencies, stored
