"""chart.png: the run at a glance (needs matplotlib, part of the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.measurements import Measurements
from benchmarks.report import BACKENDS

CONTENDERS = ("ours", "upstream", "raw")
COLOURS = {"ours": "#2a9d8f", "upstream": "#e76f51", "raw": "#8d99ae"}


def grouped_bars(axes: Any, groups: list[str], series: dict[str, list[float]]) -> None:
    """Side-by-side bars, one colour per contender."""
    width = 0.8 / len(series)
    for index, (name, values) in enumerate(series.items()):
        offsets = [g + (index - (len(series) - 1) / 2) * width for g in range(len(groups))]
        axes.bar(offsets, values, width, label=name, color=COLOURS.get(name))
    axes.set_xticks(range(len(groups)), groups, fontsize=8)
    axes.legend(fontsize=8)


def chat_latency(axes: Any, m: Measurements) -> None:
    groups = [f"{b}\n{op}" for b in BACKENDS for op in ("hit", "update")]
    series = {c: [m.median(b, "chat", op, c) for b in BACKENDS for op in ("hit", "update")] for c in CONTENDERS}
    grouped_bars(axes, groups, series)
    axes.set_title("~1.5 KB chat generation: median µs per call", fontsize=10)


def hit_by_payload(axes: Any, m: Measurements) -> None:
    names = ["short", "chat", "three", "large"]
    series = {c: [m.median("Redis sync", p, "hit", c) for p in names] for c in CONTENDERS}
    grouped_bars(axes, names, series)
    axes.set_yscale("log")
    axes.set_title("Redis sync lookup hit by payload: median µs (log)", fontsize=10)


def concurrency(axes: Any, m: Measurements) -> None:
    levels = sorted({t.level for t in m.throughputs})
    series = {c: [m.throughput(level, c).hits_per_s for level in levels] for c in CONTENDERS}
    grouped_bars(axes, [f"{level:,}" for level in levels], series)
    axes.set_title("concurrent alookups: successful hits/s", fontsize=10)


def storage(axes: Any, m: Measurements) -> None:
    rows = [s for s in m.stored if s.backend != "Redis async"]
    groups = [f"{'Redis' if s.backend.startswith('Redis') else 'Memc.'}\n{s.payload}" for s in rows]
    series = {
        "ours": [float(s.ours.stored_bytes) for s in rows],
        "upstream": [float(s.upstream.stored_bytes) for s in rows],
    }
    grouped_bars(axes, groups, series)
    axes.set_yscale("log")
    axes.set_title("bytes per entry (log)", fontsize=10)


def write(m: Measurements, path: Path) -> bool:
    """Draw the four panels into `path`; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, grid = plt.subplots(2, 2, figsize=(13, 9))
    for draw, axes in zip((chat_latency, hit_by_payload, concurrency, storage), grid.flat, strict=True):
        draw(axes, m)
    figure.suptitle(f"llmcache_django vs langchain-community — {m.machine.get('cpu', '')}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
