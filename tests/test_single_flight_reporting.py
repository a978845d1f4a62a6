"""Coalesced calls (model calls single-flight saved) on the admin dashboard and in
``manage.py llm_cache_stats``: counted apart from hits, shown when there are some."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from llmcache_django import cached
from llmcache_django.core.cache import LLMCache
from tests.test_admin import _alias_row, client_for, html, make_staff, url
from tests.test_single_flight_streams import (
    ANSWER,
    QUESTION,
    Caller,
    gated_chat,
    run_all,
    wait_for_waiters,
    wait_until,
)

pytestmark = pytest.mark.django_db

KINDS = ["alias-locmem", "alias-django-redis", "alias-pymemcache"]
#: How long the gated model "takes" at least: what each coalesced call saves in model time.
MODEL_SECONDS = 0.05


@pytest.fixture
def viewer() -> User:
    """A staff user who may view the LLM cache section, and nothing more."""
    return make_staff("viewer", "view_llmcache")


def burst(cache: LLMCache, callers: int, *, stream: bool = False) -> int:
    """``callers`` threads ask the same question at once through a gated model on ``cache``;
    returns how many model calls they made."""
    bare = gated_chat()
    model = cached(bare)  # LLM_CACHES["default"]
    ask = (
        (lambda: model.invoke(QUESTION).content)
        if not stream
        else (lambda: "".join(c.content for c in model.stream(QUESTION)))
    )
    threads = [Caller(ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    wait_until(lambda: bare.answers.count >= 1)
    if cache.single_flight is not None:
        wait_for_waiters(threads, callers - 1)
    else:
        wait_until(lambda: bare.answers.count == callers)  # nobody waits: every caller is in the model
    time.sleep(MODEL_SECONDS)
    bare.answers.gate.set()
    run_all(threads)
    assert [thread.result for thread in threads] == [ANSWER] * callers
    return int(bare.answers.count)


def single_flight(kind: str, make_llm_cache: Callable[..., LLMCache], on: bool = True) -> LLMCache:
    return make_llm_cache(kind, OPTIONS={"SINGLE_FLIGHT": 20} if on else {})


def dashboard_row(user: User) -> str:
    response = client_for(user).get(url("changelist"))
    assert response.status_code == 200
    return _alias_row(html(response), "default")


def activity(row: str) -> str:
    match = re.search(r'<div class="llmcache-activity">(.*?)</div>', row, re.S)
    assert match, "no activity line in the dashboard row"
    return match.group(1).strip()


def stats_command(*args: str) -> str:
    out = StringIO()
    call_command("llm_cache_stats", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def stats_json() -> dict[str, Any]:
    return dict(json.loads(stats_command("--json"))["default"])


@pytest.mark.parametrize("kind", KINDS)
def test_the_dashboard_shows_the_calls_single_flight_coalesced_apart_from_hits(
    kind: str, make_llm_cache: Callable[..., LLMCache], viewer: User
) -> None:
    cache = single_flight(kind, make_llm_cache)
    assert burst(cache, 20) == 1
    row = dashboard_row(viewer)
    print(f"{kind}: dashboard activity {activity(row)!r}")

    assert activity(row) == "1 write · 0 errors · 19 coalesced calls"
    assert 'llmcache-key-hits">0 hits<' in row and 'llmcache-key-misses">1 miss<' in row  # not counted as hits
    assert 'llmcache-ratio-value">0%<' in row
    assert ">494<" in row  # tokens saved: 19 coalesced answers of 26 tokens each
    assert re.search(r'llmcache-count">\s*1\s*<', row)


@pytest.mark.parametrize("kind", KINDS)
def test_llm_cache_stats_shows_the_coalesced_calls_as_text_and_json(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = single_flight(kind, make_llm_cache)
    assert burst(cache, 20) == 1
    text = stats_command()
    print(f"{kind}: {text.strip()}")

    assert re.fullmatch(
        r"default: 0 hits, 1 miss, 19 coalesced calls, 1 write, 0 errors \(0\.0% hit ratio\); "
        r"saved 494 tokens and \d+\.\ds of model time\n",
        text,
    ), text
    report = stats_json()
    assert {name: report[name] for name in ("hits", "misses", "coalesced", "writes", "errors", "tokens_saved")} == {
        "hits": 0,
        "misses": 1,
        "coalesced": 19,
        "writes": 1,
        "errors": 0,
        "tokens_saved": 494,
    }
    assert report["hit_ratio"] == 0.0
    assert report["seconds_saved"] >= 19 * MODEL_SECONDS  # each coalesced call saved the leader's model time

    stats_command("--reset")
    assert "coalesced" not in stats_command()
    assert stats_json()["coalesced"] == 0


def test_coalesced_streams_are_reported_too(make_llm_cache: Callable[..., LLMCache], viewer: User) -> None:
    cache = single_flight("alias-django-redis", make_llm_cache)
    assert burst(cache, 12, stream=True) == 1

    assert activity(dashboard_row(viewer)) == "1 write · 0 errors · 11 coalesced calls"
    assert "0 hits, 1 miss, 11 coalesced calls, 1 write" in stats_command()
    assert stats_json()["coalesced"] == 11


def test_resetting_the_stats_in_the_admin_zeroes_the_coalesced_count(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = single_flight("alias-django-redis", make_llm_cache)
    assert burst(cache, 5) == 1
    janitor = make_staff("janitor", "clear_llmcache")
    assert "4 coalesced calls" in activity(dashboard_row(janitor))

    response = client_for(janitor).post(url("reset_stats", "default"))
    assert response.status_code == 302
    assert activity(dashboard_row(janitor)) == "0 writes · 0 errors"
    assert stats_json()["coalesced"] == 0


def test_one_coalesced_call_is_singular(make_llm_cache: Callable[..., LLMCache], viewer: User) -> None:
    cache = single_flight("alias-locmem", make_llm_cache)
    assert burst(cache, 2) == 1

    assert activity(dashboard_row(viewer)) == "1 write · 0 errors · 1 coalesced call"
    assert ", 1 coalesced call, " in stats_command()


@pytest.mark.parametrize("kind", ["alias-locmem", "alias-django-redis"])
def test_with_single_flight_off_nothing_is_coalesced_and_no_coalesced_count_is_shown(
    kind: str, make_llm_cache: Callable[..., LLMCache], viewer: User
) -> None:
    cache = single_flight(kind, make_llm_cache, on=False)
    assert cache.single_flight is None
    assert burst(cache, 20) == 20
    row = dashboard_row(viewer)

    assert activity(row) == "20 writes · 0 errors"
    assert "coalesced" not in row
    assert 'llmcache-key-misses">20 misses<' in row
    assert stats_command() == (
        "default: 0 hits, 20 misses, 20 writes, 0 errors (0.0% hit ratio); saved 0 tokens and 0.0s of model time\n"
    )
    assert stats_json()["coalesced"] == 0  # the JSON has every counter, zero included


def test_a_stats_reading_without_a_coalesced_counter_shows_none(
    monkeypatch: pytest.MonkeyPatch, make_llm_cache: Callable[..., LLMCache], viewer: User
) -> None:
    import llmcache_django.core.operations

    cache = single_flight("alias-locmem", make_llm_cache)
    assert burst(cache, 3) == 1
    without = tuple(name for name in llmcache_django.core.operations.COUNTERS if name != "coalesced")
    monkeypatch.setattr(llmcache_django.core.operations, "COUNTERS", without)  # shared stats read without it

    assert "coalesced" not in cache.shared_stats()
    row = dashboard_row(viewer)
    assert activity(row) == "1 write · 0 errors"
    assert "coalesced" not in stats_command()
    assert "coalesced" not in stats_json()
