"""Scopes: erasure by ``clear_scope``/``aclear_scope`` and ``clear_llm_cache --scope`` on every cache kind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from llmcache_django import llm_cache_control
from llmcache_django.core.cache import LLMCache
from tests.conftest import kind_param
from tests.helpers import text_generations

LLM = "model=test temperature=0"
PROMPTS = ("first question", "second question")
SCOPES = (None, "user:42", "user:43")


def fill(cache: LLMCache) -> None:
    """Two entries in each of :data:`SCOPES`, each answer naming its scope."""
    for scope in SCOPES:
        with llm_cache_control(scope=scope):
            for prompt in PROMPTS:
                cache.update(prompt, LLM, text_generations(f"{prompt} for {scope}"))


def found(cache: LLMCache, scope: str | None) -> list[object]:
    with llm_cache_control(scope=scope):
        return [cache.lookup(prompt, LLM) for prompt in PROMPTS]


def expected(scope: str | None) -> list[object]:
    return [text_generations(f"{prompt} for {scope}") for prompt in PROMPTS]


def test_clear_scope_erases_that_scope_and_nothing_else(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    count = llm_cache.clear_scope("user:42")
    assert found(llm_cache, "user:42") == [None, None]
    assert found(llm_cache, "user:43") == expected("user:43")
    assert found(llm_cache, None) == expected(None)
    assert count == (2 if llm_cache.can_list else None)
    if llm_cache.can_list:
        assert llm_cache.count_entries() == 4
    with llm_cache_control(scope="user:42"):  # the scope is usable again at once
        llm_cache.update(PROMPTS[0], LLM, text_generations("again"))
        assert llm_cache.lookup(PROMPTS[0], LLM) == text_generations("again")


async def test_aclear_scope_erases_that_scope_and_nothing_else(llm_cache: LLMCache) -> None:
    await asyncio.to_thread(fill, llm_cache)
    await llm_cache.aclear_scope("user:43")
    assert await asyncio.to_thread(found, llm_cache, "user:43") == [None, None]
    assert await asyncio.to_thread(found, llm_cache, "user:42") == expected("user:42")
    assert await asyncio.to_thread(found, llm_cache, None) == expected(None)


def test_clearing_the_namespace_clears_every_scope(llm_cache: LLMCache) -> None:
    fill(llm_cache)
    llm_cache.clear()
    assert [found(llm_cache, scope) for scope in SCOPES] == [[None, None]] * 3


@pytest.mark.parametrize("scope", ["", "user\n42", "x" * 201])
def test_a_bad_scope_to_erase_raises_naming_what_a_scope_is(
    scope: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache("alias-locmem")
    with pytest.raises(ValueError, match="printable string of 1 to 200"):
        cache.clear_scope(scope)


@pytest.mark.parametrize(
    "kind", [kind_param(kind) for kind in ("alias-django-redis", "alias-pymemcache", "alias-database", "alias-locmem")]
)
def test_the_command_erases_one_scope(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    fill(cache)
    out = StringIO()
    call_command("clear_llm_cache", "--scope", "user:42", "--dry-run", stdout=out)
    counted = "2 entries" if cache.can_list else "all entries of scope 'user:42'"
    assert out.getvalue() == f"Would clear {counted} from LLM cache 'default'.\n"
    assert found(cache, "user:42") == expected("user:42")
    out = StringIO()
    call_command("clear_llm_cache", "--scope", "user:42", "--noinput", stdout=out)
    assert out.getvalue().startswith("Cleared ")
    assert found(cache, "user:42") == [None, None]
    assert found(cache, "user:43") == expected("user:43")
    assert found(cache, None) == expected(None)


def test_the_command_refuses_a_bad_scope(make_llm_cache: Callable[..., LLMCache]) -> None:
    make_llm_cache("alias-locmem")
    with pytest.raises(CommandError, match="--scope 'a\\\\tb' is invalid"):
        call_command("clear_llm_cache", "--scope", "a\tb", "--noinput")


def test_the_entries_of_one_scope_can_be_listed(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("redis")
    fill(cache)
    listed = sorted(info.prompt for info in cache.entries(scope="user:42"))
    assert listed == sorted(PROMPTS)
    assert cache.count_entries(scope="user:43") == 2


def test_a_cache_that_cannot_list_its_keys_erases_a_scope_by_its_generation(tmp_path: Path) -> None:
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "llm": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)},
    }
    with override_settings(CACHES=caches, LLM_CACHES={"default": {"CACHE": "llm"}}):
        from llmcache_django import llm_caches

        cache = llm_caches["default"]
        assert not cache.can_list
        fill(cache)
        assert cache.clear_scope("user:42") is None
        assert found(cache, "user:42") == [None, None]
        assert found(cache, "user:43") == expected("user:43")
        assert found(cache, None) == expected(None)


def test_memcached_entries_its_listing_misses_are_erased_too(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("memcached")
    fill(cache)
    cache.store.can_list = False  # as when memcached's key dump leaves some keys out
    cache.clear_scope("user:42")
    assert found(cache, "user:42") == [None, None]
    assert found(cache, "user:43") == expected("user:43")
