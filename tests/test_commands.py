"""``manage.py clear_llm_cache`` and ``llm_cache_stats``, on real Redis, memcached and the database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from llmcache_django.core.cache import LLMCache
from tests.conftest import kind_param
from tests.helpers import text_generations
from tests.test_operations import CLAUDE, GPT, fill

KINDS = [kind_param(kind) for kind in ("alias-django-redis", "alias-pymemcache", "alias-database")]


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


@pytest.fixture(params=KINDS)
def filled(request: pytest.FixtureRequest, make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    cache = make_llm_cache(request.param)
    fill(cache)
    return cache


def test_clears_the_default_alias_at_verbosity_1(filled: LLMCache) -> None:
    assert run("clear_llm_cache", "--noinput") == "Cleared 3 entries from LLM cache 'default'.\n"
    assert filled.count_entries() == 0


def test_verbosity_0_prints_nothing(filled: LLMCache) -> None:
    assert run("clear_llm_cache", "--noinput", verbosity=0) == ""
    assert filled.count_entries() == 0


def test_verbosity_2_names_the_location_and_filters(filled: LLMCache) -> None:
    output = run("clear_llm_cache", "--noinput", "--model", "gpt-4o", verbosity=2)
    first, second = output.splitlines()
    assert first == f"LLM cache 'default': {filled.store.describe()}, namespace {filled.namespace!r} (model 'gpt-4o')"  # type: ignore[attr-defined]
    assert second == "Cleared 2 entries from LLM cache 'default'."


def test_model_filter_keeps_other_models(filled: LLMCache) -> None:
    run("clear_llm_cache", "--noinput", "--model", "gpt-4o")
    assert filled.lookup("Write a haiku", CLAUDE) == text_generations("Leaves fall")
    assert filled.count_entries() == 1


def test_older_than_keeps_fresh_entries(filled: LLMCache) -> None:
    assert run("clear_llm_cache", "--noinput", "--older-than", "7d") == "Cleared 0 entries from LLM cache 'default'.\n"
    assert filled.count_entries() == 3


def test_dry_run_deletes_nothing(filled: LLMCache) -> None:
    assert (
        run("clear_llm_cache", "--dry-run", "--model", "gpt-4o") == "Would clear 2 entries from LLM cache 'default'.\n"
    )
    assert run("clear_llm_cache", "--dry-run") == "Would clear 3 entries from LLM cache 'default'.\n"
    assert filled.count_entries() == 3


def test_json_output_parses(filled: LLMCache) -> None:
    (result,) = json.loads(run("clear_llm_cache", "--noinput", "--json", "--older-than", "0"))
    assert result["alias"] == "default"
    assert result["count"] == 3
    assert result["older_than"] == 0
    assert result["dry_run"] is False


@pytest.mark.parametrize(
    "flags",
    [(), ("--model", "gpt-4o"), ("--older-than", "0"), ("--dry-run",), ("--all",)],
    ids=["whole", "model", "older-than", "dry-run", "all"],
)
def test_unrelated_keys_survive_every_variant(filled: LLMCache, flags: tuple[str, ...]) -> None:
    from django.core.cache import caches

    caches["llm"].set("session:abc", "still here")
    caches["llm"].set(f"{filled.namespace}-other:x", "a look-alike namespace")
    run("clear_llm_cache", "--noinput", *flags)
    assert caches["llm"].get("session:abc") == "still here"
    assert caches["llm"].get(f"{filled.namespace}-other:x") == "a look-alike namespace"


def test_unknown_alias_is_a_command_error(filled: LLMCache) -> None:
    with pytest.raises(CommandError, match="Unknown LLM cache alias 'nope'; LLM_CACHES defines 'default'"):
        run("clear_llm_cache", "nope", "--noinput")


def test_unknown_alias_exits_non_zero_from_the_shell() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "django", "clear_llm_cache", "nope", "--noinput", "--settings", "tests.settings"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Unknown LLM cache alias 'nope'" in result.stderr


def test_bad_age_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="--older-than 'soon' is not an age"):
        run("clear_llm_cache", "--noinput", "--older-than", "soon")


@pytest.mark.parametrize("blank", ["", " ", "\t"], ids=["empty", "space", "tab"])
@pytest.mark.parametrize("option", ["--older-than", "--model"])
def test_an_empty_or_blank_filter_is_an_error_that_deletes_nothing(filled: LLMCache, option: str, blank: str) -> None:
    # `--older-than "$AGE"` with AGE unset must not widen a clear to the whole cache.
    with pytest.raises(CommandError, match=re.escape(f"{option} {blank!r} is empty;")):
        run("clear_llm_cache", "--noinput", option, blank)
    assert filled.count_entries() == 3


def test_an_empty_filter_exits_non_zero_from_the_shell() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "clear_llm_cache",
            "--older-than",
            "",
            "--noinput",
            "--settings",
            "tests.settings",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "--older-than '' is empty" in result.stderr


def test_a_dry_run_on_a_dead_server_says_counting_failed_not_clearing() -> None:
    from tests import servers

    dead = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{servers.free_port()}/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
    }
    with override_settings(CACHES={"default": dead}, LLM_CACHES={"default": {}}), pytest.raises(CommandError) as raised:
        run("clear_llm_cache", "--dry-run")
    assert "counting entries failed: ConnectionError" in str(raised.value)
    assert "clearing" not in str(raised.value)


def test_unreachable_server_is_one_clear_line() -> None:
    from tests import servers

    port = servers.free_port()
    dead = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
    }
    with override_settings(CACHES={"default": dead}, LLM_CACHES={"default": {}}), pytest.raises(CommandError) as raised:
        run("clear_llm_cache", "--noinput")
    assert str(raised.value).startswith("LLM cache 'default' (redis 127.0.0.1:")
    assert "clearing failed: ConnectionError" in str(raised.value)


def test_a_filter_the_backend_cannot_apply_is_a_command_error(tmp_path: Any) -> None:
    file_cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    with override_settings(CACHES={"default": file_cache}, LLM_CACHES={"default": {}}):
        with pytest.raises(CommandError, match="cannot list its entries"):
            run("clear_llm_cache", "--noinput", "--model", "gpt-4o")
        assert (
            run("clear_llm_cache", "--noinput")
            == "Cleared all entries from LLM cache 'default' (this backend cannot count them).\n"
        )


def test_all_clears_every_alias(make_llm_cache: Callable[..., LLMCache], redis_server: Any) -> None:
    redis_alias = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_server.url}
    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "all-aliases"}
    with override_settings(
        CACHES={"default": locmem, "r": redis_alias},
        LLM_CACHES={"default": {}, "second": {"CACHE": "r", "NAMESPACE": "second"}},
    ):
        from llmcache_django import llm_caches

        for alias in ("default", "second"):
            llm_caches[alias].clear()
            llm_caches[alias].update("p", GPT, text_generations("x"))
        output = run("clear_llm_cache", "--all", "--noinput")
    assert output == "Cleared 1 entry from LLM cache 'default'.\nCleared 1 entry from LLM cache 'second'.\n"


def test_interactive_confirmation_shows_what_goes_and_can_cancel(
    filled: LLMCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "no")
    assert run("clear_llm_cache", "--model", "gpt-4o").splitlines()[-1] == "Cancelled; nothing was deleted."
    assert filled.count_entries() == 3
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    output = run("clear_llm_cache", "--model", "gpt-4o")
    assert output.splitlines() == [
        f"This will delete 2 entries (model 'gpt-4o') from LLM cache 'default' on {filled.store.describe()}.",
        "Cleared 2 entries from LLM cache 'default'.",
    ]
    assert prompts == ["Type 'yes' to continue, or anything else to cancel: "]


def shell(*args: str, stdin: str | None) -> subprocess.CompletedProcess[str]:
    """``manage.py`` from a shell with ``stdin`` piped in (``None``: no standard input at all)."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args, "--settings", "tests.shell_settings"],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def database_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database (and cache table) in a file, for ``manage.py`` run from a shell."""
    monkeypatch.setenv("LLMCACHE_TEST_DB", str(tmp_path / "cache.sqlite3"))
    assert shell("createcachetable", stdin=None).returncode == 0


@pytest.mark.usefixtures("database_file")
@pytest.mark.parametrize(("answer", "cleared"), [("no\n", False), ("yes\n", True)])
def test_a_piped_answer_is_read_like_a_typed_one(answer: str, cleared: bool) -> None:
    assert shell("shell", "-c", FILL_ONE, stdin=None).returncode == 0
    result = shell("clear_llm_cache", stdin=answer)
    assert result.returncode == 0, result.stderr
    assert ("Cleared 1 entry" in result.stdout) is cleared
    assert ("Cancelled; nothing was deleted." in result.stdout) is not cleared


@pytest.mark.usefixtures("database_file")
def test_no_standard_input_and_no_noinput_deletes_nothing_and_fails() -> None:
    result = shell("clear_llm_cache", stdin=None)
    assert result.returncode == 1
    assert "No answer on standard input, so nothing was deleted; pass --noinput" in result.stderr


FILL_ONE = (
    "from llmcache_django import llm_caches; from langchain_core.outputs import Generation; "
    "llm_caches['default'].update('p', 'model=x', [Generation(text='x')])"
)


def test_an_unknown_alias_with_all_is_still_an_error(filled: LLMCache) -> None:
    with pytest.raises(CommandError, match="Unknown LLM cache alias 'nosuch'"):
        run("clear_llm_cache", "nosuch", "--all", "--noinput")
    assert filled.count_entries() == 3


def test_an_unknown_model_names_the_models_there(filled: LLMCache) -> None:
    with pytest.raises(
        CommandError, match=r"has no entries of model 'nope'; its models: 'gpt-4o' \(2\), 'claude-3' \(1\)"
    ):
        run("clear_llm_cache", "--noinput", "--model", "nope")
    assert filled.count_entries() == 3


def test_a_model_named_as_its_class_finds_its_stored_name(make_llm_cache: Callable[..., LLMCache]) -> None:
    from langchain_core.language_models import FakeListChatModel

    cache = make_llm_cache("alias-locmem")
    FakeListChatModel(responses=["x"], cache=cache).invoke("hello")
    assert run("clear_llm_cache", "--noinput", "--model", "FakeListChatModel") == (
        "Cleared 1 entry from LLM cache 'default'.\n"
    )


def test_stats_command_prints_shared_counters(filled: LLMCache) -> None:
    filled.reset_stats()
    filled.lookup("Write a haiku", CLAUDE)
    filled.lookup("nothing", CLAUDE)
    assert run("llm_cache_stats") == (
        "default: 1 hit, 1 miss, 0 writes, 0 errors (50.0% hit ratio); saved 0 tokens and 0.0s of model time\n"
    )
    report = json.loads(run("llm_cache_stats", "--json", "--reset"))
    assert report["default"]["hits"] == 1
    assert json.loads(run("llm_cache_stats", "--json"))["default"]["hits"] == 0
