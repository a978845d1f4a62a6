"""The dashboard's "Savings over time": per alias, the last 24 hours and 30 days as SVG bar charts.

Drawn on the server (no script, no CDN: the admin works offline). Each window has a chart of
lookups (hits over misses), one of tokens saved, one of model time saved and, with
``LLM_CACHE_PRICES``, one of cost saved; every bar's tooltip gives all of its hour's or day's
figures. A table beside them gives each window's totals, with a cost column only where a
price is configured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmcache_django.admin_views.common import format_seconds, server_error_text
from llmcache_django.backends.handler import llm_caches
from llmcache_django.ops.savings import Savings, SavingsPoint, savings_of

logger = logging.getLogger("llmcache_django")
#: The bars' drawing box: 100 wide, 40 high (the SVG stretches to its box; labels are HTML).
CHART_HEIGHT = 40.0
BAR_GAP = 0.18  # of a bar's slot


@dataclass
class Segment:
    """One coloured part of a bar (``kind`` is its CSS class suffix)."""

    kind: str
    y: float
    height: float


@dataclass
class Bar:
    """One hour or day: its slot on the x axis, its segments and its tooltip."""

    x: float
    width: float
    segments: list[Segment]
    title: str


@dataclass
class Chart:
    """A bar chart of one figure over one window."""

    name: str
    title: str
    top_label: str
    bars: list[Bar]
    first_label: str
    last_label: str


@dataclass
class WindowTotal:
    """One window's totals, as the table shows them."""

    window: str
    hits: int
    misses: int
    tokens_saved: str
    time_saved: str
    cost_saved: str


@dataclass
class SavingsSection:
    """One alias's savings over time, or why they cannot be shown."""

    alias: str
    hourly: list[Chart] = field(default_factory=list)
    daily: list[Chart] = field(default_factory=list)
    totals: list[WindowTotal] = field(default_factory=list)
    has_money: bool = False
    #: No lookup in the last 30 days: no charts, a line that says so.
    empty: bool = False
    error: str = ""


def savings_sections(aliases: list[str]) -> list[SavingsSection]:
    """A section per alias that keeps savings over time (stats on, a built-in store)."""
    sections = []
    for alias in aliases:
        try:
            cache = llm_caches[alias]
        except Exception:  # the dashboard's row already says what is wrong with the alias
            continue
        try:
            savings = savings_of(cache)
        except Exception as exc:  # one unreachable server must not take the dashboard down
            sections.append(SavingsSection(alias, error=server_error_text(cache, exc)))
            continue
        if savings is not None:
            sections.append(section_of(alias, savings))
    return sections


def section_of(alias: str, savings: Savings) -> SavingsSection:
    """The charts and totals of ``savings``."""
    return SavingsSection(
        alias=alias,
        hourly=charts_of(savings.hourly, lambda start: _utc(start, "%b %d %H:00"), "hour", savings.has_money),
        daily=charts_of(savings.daily, lambda start: _utc(start, "%b %d"), "day", savings.has_money),
        totals=[_total("Last 24 h", savings.total("hourly")), _total("Last 30 days", savings.total("daily"))],
        has_money=savings.has_money,
        empty=not any(point.hits or point.misses for point in savings.daily),
    )


def charts_of(points: list[SavingsPoint], label: Callable[[float], str], unit: str, money: bool) -> list[Chart]:
    """The lookups, tokens, time and (with prices) cost charts of ``points``."""
    titles = [_tooltip(point, label(point.start), unit) for point in points]
    first, last = label(points[0].start), label(points[-1].start)
    charts = [
        _chart("lookups", "Hits / misses", points, titles, first, last),
        _chart("tokens", "Tokens saved", points, titles, first, last),
        _chart("time", "Model time saved", points, titles, first, last),
    ]
    if money:
        charts.append(_chart("cost", "Cost saved", points, titles, first, last))
    return charts


def _chart(name: str, title: str, points: list[SavingsPoint], titles: list[str], first: str, last: str) -> Chart:
    values = [_stack(name, point) for point in points]
    top = max((sum(value for _, value in stack) for stack in values), default=0) or 1
    slot = 100 / len(points)
    bars = [
        Bar(x=index * slot + slot * BAR_GAP / 2, width=slot * (1 - BAR_GAP), segments=_segments(stack, top), title=tip)
        for index, (stack, tip) in enumerate(zip(values, titles, strict=True))
    ]
    return Chart(name, title, _amount(name, top if any(any(v for _, v in s) for s in values) else 0), bars, first, last)


def _stack(name: str, point: SavingsPoint) -> list[tuple[str, float]]:
    if name == "lookups":
        return [("hits", point.hits), ("misses", point.misses)]
    if name == "tokens":
        return [("tokens", point.tokens_saved)]
    if name == "time":
        return [("time", point.seconds_saved)]
    return [("cost", point.cost_saved or 0.0)]


def _segments(stack: list[tuple[str, float]], top: float) -> list[Segment]:
    segments, base = [], CHART_HEIGHT
    for kind, value in stack:
        height = CHART_HEIGHT * value / top
        if height:
            segments.append(Segment(kind, round(base - height, 3), round(height, 3)))
            base -= height
    return segments


def _amount(name: str, value: float) -> str:
    if name == "time":
        return format_seconds(value) if value else "0"
    if name == "cost":
        return cost_text(value)
    return f"{value:,.0f}"


def cost_text(value: float | None) -> str:
    """Money for people, in the unit of ``LLM_CACHE_PRICES`` (no currency is assumed)."""
    if value is None:
        return ""
    return f"{value:,.2f}" if value >= 1 else f"{value:.4f}"


def _tooltip(point: SavingsPoint, label: str, unit: str) -> str:
    hits = f"{point.hits} hit{'' if point.hits == 1 else 's'}"
    misses = f"{point.misses} miss{'' if point.misses == 1 else 'es'}"
    saved = f"{point.tokens_saved:,} tokens, {format_seconds(point.seconds_saved) if point.seconds_saved else '0 s'}"
    money = "" if point.cost_saved is None else f", cost {cost_text(point.cost_saved)}"
    return f"{label} ({unit} starting, UTC): {hits}, {misses}; saved {saved}{money}"


def _total(window: str, total: SavingsPoint) -> WindowTotal:
    return WindowTotal(
        window=window,
        hits=total.hits,
        misses=total.misses,
        tokens_saved=f"{total.tokens_saved:,}",
        time_saved=format_seconds(total.seconds_saved) if total.seconds_saved else "—",
        cost_saved=cost_text(total.cost_saved),
    )


def _utc(start: float, pattern: str) -> str:
    return time.strftime(pattern, time.gmtime(start))
