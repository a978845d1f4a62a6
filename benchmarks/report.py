"""results.md (tables of medians and ratios) and results.json from one run."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks import single_flight, streaming
from benchmarks.cases import OPS
from benchmarks.fixtures import payloads
from benchmarks.measurements import Measurements
from benchmarks.targets import TIMES, Target, ratio

BACKENDS = ("Redis sync", "Redis async", "Memcached", "Memcached 3 nodes")
REPRODUCE = "Reproduce with `make bench` (or `python -m benchmarks.run` in a venv with `.[bench]`)."


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def us(value: float) -> str:
    """Microseconds, with a precision that suits their size."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def times(value: float) -> str:
    """A ratio, as `1.23` followed by a multiplication sign."""
    return f"{value:.2f}{TIMES}"


def machine_section(m: Measurements) -> list[str]:
    lines = [f"- **{name}**: {value}" for name, value in m.machine.items()]
    return [*lines, f"- **run time**: {m.seconds:.0f} s", ""]


def targets_section(targets: list[Target]) -> list[str]:
    rows = ([t.name, t.found, t.wanted, "PASS" if t.met else "**MISS**"] for t in targets)
    return ["## Targets", "", *table(["target", "measured", "wanted", ""], rows), ""]


def latency_rows(m: Measurements) -> Iterable[list[str]]:
    for backend in BACKENDS:
        for op in OPS:
            for payload in payloads():
                ours, up, raw = (m.median(backend, payload.name, op, c) for c in ("ours", "upstream", "raw"))
                yield [
                    backend,
                    op,
                    payload.label,
                    us(ours),
                    us(up),
                    us(raw),
                    times(ratio(ours, raw)),
                    times(ratio(up, ours)),
                ]


def latency_section(m: Measurements) -> list[str]:
    header = ["backend", "op", "payload", "ours µs", "upstream µs", "raw µs", "ours / raw", "upstream / ours"]
    intro = "Median per call; raw = the bare client GET/SET of exactly the bytes our cache stores."
    return ["## Latency", "", intro, "", *table(header, latency_rows(m)), ""]


def concurrency_section(m: Measurements) -> list[str]:
    rows = ([f"{t.level:,}", t.contender, f"{t.hits_per_s:,.0f}", f"{t.errors:,} / {t.calls:,}"] for t in m.throughputs)
    intro = "Concurrent `alookup` hits (chat payload) on default `redis.asyncio.Redis` clients."
    header = ["concurrent", "contender", "hits/s (median)", "errors / calls"]
    return ["## Async concurrency", "", intro, "", *table(header, rows), ""]


def storage_rows(m: Measurements) -> Iterable[list[str]]:
    for stored in m.stored:
        if stored.backend == "Redis async":
            continue
        ours, up = stored.ours, stored.upstream
        memory = f"{ours.server_bytes:,} / {up.server_bytes:,}" if ours.server_bytes else "—"
        share = f"{ratio(ours.stored_bytes, up.stored_bytes) * 100:.0f} %"
        yield [
            stored.backend.split()[0],
            stored.payload,
            f"{ours.stored_bytes:,}",
            f"{up.stored_bytes:,}",
            share,
            memory,
        ]


def storage_section(m: Measurements) -> list[str]:
    header = ["server", "payload", "ours B", "upstream B", "ours / upstream", "MEMORY USAGE ours / upstream"]
    intro = "Key + value bytes (+ hash field names for upstream's Redis hashes)."
    return ["## Bytes per entry", "", intro, "", *table(header, storage_rows(m)), ""]


def end_to_end_section(m: Measurements) -> list[str]:
    rows = []
    for backend in ("Redis sync", "Memcached", "Memcached 3 nodes"):
        ours, up, bare = (m.median(backend, "chat", "invoke", c) for c in ("ours", "upstream", "no cache"))
        rows.append([backend, us(ours), us(up), us(bare), times(ratio(up, ours))])
    header = ["cache", "ours µs", "upstream µs", "no cache µs", "upstream / ours"]
    intro = "`FakeListChatModel.invoke` answered from the cache (median per call)."
    return ["## End to end", "", intro, "", *table(header, rows), ""]


def stats_section(m: Measurements) -> list[str]:
    if m.stats is None:
        return []
    on, off = m.stats.with_stats.median_us, m.stats.without_stats.median_us
    line = (
        f"Redis sync hit, chat payload: {us(on)} µs with stats, {us(off)} µs without ({m.stats.overhead * 100:+.1f} %)."
    )
    return ["## Stats overhead", "", line, ""]


def directives_section(m: Measurements) -> list[str]:
    if m.directives is None:
        return []
    found = m.directives
    line = (
        f"Redis sync hit, chat payload: {us(found.hit.median_us)} µs; the per-call directive check "
        f"(`llm_cache_control`'s gate) {found.check.median_us:.3f} µs, {found.check_share * 100:.2f} % of a hit "
        f"(target ≤ 2 %); a hit in a scope {us(found.scoped_hit.median_us)} µs."
    )
    return ["## Per-call directives", "", line, ""]


def markdown(m: Measurements, targets: list[Target]) -> str:
    """The whole report."""
    sections = [
        ["# llmcache_django benchmarks", "", REPRODUCE, ""],
        machine_section(m),
        targets_section(targets),
        latency_section(m),
        concurrency_section(m),
        storage_section(m),
        end_to_end_section(m),
        stats_section(m),
        directives_section(m),
        streaming.report_lines(m.streaming) if m.streaming else [],
        single_flight.report_lines(m.single_flight) if m.single_flight else [],
    ]
    return "\n".join(line for section in sections for line in section)


def plain(value: Any) -> Any:
    """JSON-ready form of the measurement dataclasses (entry bytes left out)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace") if len(value) <= 256 else f"<{len(value)} bytes>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def write(m: Measurements, targets: list[Target], directory: Path) -> None:
    """Write results.md and results.json into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.md").write_text(markdown(m, targets), encoding="utf-8")
    found = {"measurements": plain(m), "targets": [{**plain(t), "met": t.met} for t in targets]}
    (directory / "results.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
