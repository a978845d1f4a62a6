"""The README's benchmark figures, generated from ``benchmarks/results/results.json``.

The README marks each generated part: a table between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` lines, a figure in a sentence as ``<!-- bench:NAME -->value<!-- /bench -->``.
``python -m benchmarks.readme_figures`` rewrites them from the latest results (``make
readme-figures``, after ``make bench``); ``--check`` exits 1 when the README disagrees with
them, which the test suite runs, so the README and the results cannot drift apart.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "results.json"
README = ROOT / "README.md"
BLOCK_RE = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.DOTALL)
INLINE_RE = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->)(?P<body>[^<\n]*)(<!-- /bench -->)")
Results = dict[str, Any]
TIMES = "\u00d7"  # as benchmarks.targets writes it (that module needs the [bench] extra)


def us(value: float) -> str:
    """Microseconds for people: ``225 µs``, ``97.4 µs``."""
    return f"{value:,.0f} µs" if value >= 100 else f"{value:.1f} µs"


def ms(value: float) -> str:
    """Milliseconds for people: ``1.23 ms``, ``35.3 ms``."""
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def median(results: Results, backend: str, payload: str, op: str, contender: str) -> float:
    """Median microseconds of one cell of the latency (or end-to-end) table."""
    measurements = results["measurements"]
    for row in measurements["latencies"] + measurements["end_to_end"]:
        if (row["backend"], row["payload"], row["op"], row["contender"]) == (backend, payload, op, contender):
            return float(row["summary"]["median_us"])
    raise KeyError((backend, payload, op, contender))


def _latency_row(results: Results, label: str, backend: str, payload: str, op: str) -> list[str]:
    return [label, *(us(median(results, backend, payload, op, who)) for who in ("ours", "upstream", "raw"))]


def _concurrency_cell(results: Results, contender: str) -> str:
    (row,) = [t for t in results["measurements"]["throughputs"] if t["level"] == 5000 and t["contender"] == contender]
    errors = f"{row['errors'] / row['calls']:.0%} errors" if row["errors"] else "0 errors"
    return f"{row['hits_per_s']:,.0f} hits/s, {errors}"


def headline(results: Results) -> str:
    """The table at the top of "Benchmarks": ours, langchain-community's, the raw client."""
    m = results["measurements"]
    (chat,) = [s for s in m["stored"] if (s["backend"], s["payload"]) == ("Redis sync", "chat")]
    ours_bytes, upstream_bytes = chat["ours"]["stored_bytes"], chat["upstream"]["stored_bytes"]
    replayed, bare = m["streaming"]["streams"][0], m["streaming"]["streams"][1]
    rows = [
        _latency_row(results, "Redis hit", "Redis sync", "chat", "hit"),
        _latency_row(results, "Redis update", "Redis sync", "chat", "update"),
        _latency_row(results, "Redis hit, 100 KB answer", "Redis sync", "large", "hit"),
        _latency_row(results, "Memcached hit", "Memcached", "chat", "hit"),
        _latency_row(results, "Memcached update", "Memcached", "chat", "update"),
        ["5,000 concurrent `alookup`s", *(_concurrency_cell(results, who) for who in ("ours", "upstream", "raw"))],
        [
            "bytes per chat entry (Redis)",
            f"{ours_bytes:,} B ({ours_bytes / upstream_bytes:.0%})",
            f"{upstream_bytes:,} B",
            "—",
        ],
        [
            "`FakeListChatModel.invoke` on a hit",
            us(median(results, "Redis sync", "chat", "invoke", "ours")),
            us(median(results, "Redis sync", "chat", "invoke", "upstream")),
            f"(no cache: {us(median(results, 'Redis sync', 'chat', 'invoke', 'no cache'))})",
        ],
        ["stats on vs off, Redis hit", f"{stats_overhead(results):+.1f} %", "—", "—"],
        [
            f"{m['streaming']['tokens']:,}-token stream, first / last chunk",
            f"replayed: {ms(replayed['first_ms'])} / {ms(replayed['last_ms'])}",
            "—",
            f"(live fake model: {ms(bare['first_ms'])} / {ms(bare['last_ms'])})",
        ],
    ]
    return table(["", "llmcache_django", "langchain-community", "raw client"], rows)


def stats_overhead(results: Results) -> float:
    """Percent a hit costs more with stats on."""
    stats = results["measurements"]["stats"]
    return 100 * (stats["with_stats"]["median_us"] / stats["without_stats"]["median_us"] - 1)


def targets(results: Results) -> str:
    """Each target of the issue: what was wanted, what this run measured, met or missed."""
    rows = []
    for target in results["targets"]:
        sign = "≤" if target["at_most"] else "≥"
        measured = f"{target['measured']:.2f}{target['unit']}"
        rows.append(
            [
                target["name"],
                f"{sign} {target['limit']:g}{target['unit']}",
                measured,
                "met" if target["met"] else "**missed**",
            ]
        )
    return table(["target", "wanted", "measured", ""], rows)


def streams(results: Results) -> str:
    """Replayed, bare and recorded streams: first chunk, last chunk, chunks."""
    rows = [
        [stream["name"], ms(stream["first_ms"]), ms(stream["last_ms"]), f"{stream['chunks']:,}"]
        for stream in results["measurements"]["streaming"]["streams"]
    ]
    return table(["stream", "first chunk", "last chunk", "chunks"], rows)


def _streaming(results: Results, key: str) -> float:
    return float(results["measurements"]["streaming"][key])


def _single_flight(results: Results, phase: str, contender: str) -> str:
    return us(float(results["measurements"]["single_flight"][phase][contender]["median_us"]))


BLOCKS: dict[str, Callable[[Results], str]] = {"headline": headline, "targets": targets, "streams": streams}
INLINE: dict[str, Callable[[Results], str]] = {
    "date": lambda r: r["measurements"]["machine"]["date"],
    "machine": lambda r: (
        f"{r['measurements']['machine']['cpu']}, Python {r['measurements']['machine']['python']}, "
        f"redis-server {r['measurements']['machine']['redis']}, {r['measurements']['machine']['memcached']}"
    ),
    "redis-hit": lambda r: us(median(r, "Redis sync", "chat", "hit", "ours")),
    "redis-raw-get": lambda r: us(median(r, "Redis sync", "chat", "hit", "raw")),
    "memcached-raw-get": lambda r: us(median(r, "Memcached", "chat", "hit", "raw")),
    "memcached-hit": lambda r: us(median(r, "Memcached", "chat", "hit", "ours")),
    "pool-hit": lambda r: us(median(r, "Memcached 3 nodes", "chat", "hit", "ours")),
    "pool-upstream-hit": lambda r: us(median(r, "Memcached 3 nodes", "chat", "hit", "upstream")),
    "pool-update": lambda r: us(median(r, "Memcached 3 nodes", "chat", "update", "ours")),
    "pool-upstream-update": lambda r: us(median(r, "Memcached 3 nodes", "chat", "update", "upstream")),
    "pool-raw-get": lambda r: us(median(r, "Memcached 3 nodes", "chat", "hit", "raw")),
    "sf-hit-with": lambda r: _single_flight(r, "hit", "with single-flight"),
    "sf-hit-without": lambda r: _single_flight(r, "hit", "without"),
    "sf-miss-with": lambda r: _single_flight(r, "miss", "with single-flight"),
    "sf-miss-without": lambda r: _single_flight(r, "miss", "without"),
    "lookup-hit-ms": lambda r: ms(_streaming(r, "lookup_hit_ms")),
    "invoke-hit-ms": lambda r: ms(_streaming(r, "invoke_hit_ms")),
    "replay-first-ratio": lambda r: (
        f"{r['measurements']['streaming']['streams'][0]['first_ms'] / _streaming(r, 'lookup_hit_ms'):.1f} {TIMES}"
    ),
    "recording-overhead": lambda r: f"{100 * _streaming(r, 'recording_overhead'):.1f} %",
    "recording-work-ms": lambda r: ms(_streaming(r, "recording_work_ms")),
}


def render(readme: str, results: Results) -> str:
    """``readme`` with every marked figure regenerated from ``results``."""
    readme = BLOCK_RE.sub(lambda m: m[1] + BLOCKS[m["name"]](results) + m[4], readme)
    return INLINE_RE.sub(lambda m: m[1] + INLINE[m["name"]](results) + m[4], readme)


def main(argv: list[str]) -> int:
    results = json.loads(RESULTS.read_text())
    current = README.read_text()
    fresh = render(current, results)
    if "--check" in argv:
        if fresh != current:
            print("README.md's benchmark figures differ from benchmarks/results: run make readme-figures")
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
