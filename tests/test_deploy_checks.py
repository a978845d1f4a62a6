"""``check --deploy`` warnings (``llmcache_django.W1xx``): one test per id, and only under ``--deploy``."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from llmcache_django.ops.deploy_checks import check_llm_caches_for_production

REDIS = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/1"}
MEMCACHED = {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": "127.0.0.1:11211"}
DATABASE = {
    "BACKEND": "django.core.cache.backends.db.DatabaseCache",
    "LOCATION": "llm_cache_table",
    "OPTIONS": {"MAX_ENTRIES": 100_000},
}
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def messages(llm: dict[str, Any], **llm_caches: dict[str, Any]) -> list[tuple[str, str]]:
    """``(id, message)`` of every deploy warning for ``CACHES["llm"] = llm`` and ``LLM_CACHES``."""
    config = llm_caches or {"default": {"CACHE": "llm", "TTL": 3600}}
    with override_settings(CACHES={"default": LOCMEM, "llm": llm}, LLM_CACHES=config):
        return [(message.id or "", message.msg) for message in check_llm_caches_for_production()]


def ids(llm: dict[str, Any], **llm_caches: dict[str, Any]) -> list[str]:
    return [message_id for message_id, _ in messages(llm, **llm_caches)]


@pytest.mark.parametrize("llm", [REDIS, MEMCACHED, DATABASE], ids=["redis", "memcached", "database"])
def test_production_settings_raise_no_warning(llm: dict[str, Any]) -> None:
    assert ids(llm) == []


@pytest.mark.parametrize("llm", [REDIS, MEMCACHED, DATABASE], ids=["redis", "memcached", "database"])
def test_entries_that_never_expire_are_a_warning(llm: dict[str, Any]) -> None:
    ((message_id, text),) = messages(llm, default={"CACHE": "llm", "TTL": None})
    assert message_id == "llmcache_django.W101"
    assert text.startswith("LLM_CACHES['default']['TTL'] is None: LLM cache entries never expire")


def test_no_ttl_and_a_cache_timeout_of_none_is_the_same_warning() -> None:
    ((message_id, text),) = messages({**MEMCACHED, "TIMEOUT": None}, default={"CACHE": "llm"})
    assert message_id == "llmcache_django.W101"
    assert "sets no TTL and CACHES['llm']['TIMEOUT'] is None" in text
    assert "memcached only evicts them when its memory is full" in text


def test_stats_off_with_the_admin_installed_is_a_warning() -> None:
    config = {"default": {"CACHE": "llm", "TTL": 60, "OPTIONS": {"STATS": False}}}
    assert ids(REDIS, **config) == ["llmcache_django.W102"]
    apps_without_admin = ["django.contrib.auth", "django.contrib.contenttypes", "llmcache_django"]
    with override_settings(INSTALLED_APPS=apps_without_admin):
        assert ids(REDIS, **config) == []


def test_entries_larger_than_memcached_stores_by_default_are_a_warning() -> None:
    config = {"default": {"CACHE": "llm", "TTL": 60, "OPTIONS": {"MAX_ENTRY_BYTES": 4 * 1024 * 1024}}}
    assert ids(MEMCACHED, **config) == ["llmcache_django.W103"]
    assert ids(REDIS, **config) == []  # Redis strings hold up to 512 MB


def test_server_calls_without_any_time_bound_are_a_warning() -> None:
    unbounded = {"default": {"CACHE": "llm", "TTL": 60, "OPTIONS": {"SERVER_TIMEOUT": None}}}
    ((message_id, text),) = messages(REDIS, **unbounded)
    assert message_id == "llmcache_django.W104"
    assert "CACHES['llm'] sets no 'SOCKET_TIMEOUT'" in text
    assert ids(MEMCACHED, **unbounded) == ["llmcache_django.W104"]
    assert ids({**MEMCACHED, "OPTIONS": {"timeout": 1}}, **unbounded) == []
    assert ids({**REDIS, "OPTIONS": {"SOCKET_TIMEOUT": 1}}, **unbounded) == []


def test_a_database_cache_left_at_300_entries_is_a_warning() -> None:
    ((message_id, text),) = messages({**DATABASE, "OPTIONS": {}})
    assert message_id == "llmcache_django.W105"
    assert "Django's default of 300 applies" in text


def test_two_aliases_under_the_same_keys_are_a_warning() -> None:
    shared = {"CACHE": "llm", "TTL": 60}
    ((message_id, text),) = messages(REDIS, default=shared, summaries=shared)
    assert message_id == "llmcache_django.W106"
    assert text.startswith("LLM_CACHES 'default', 'summaries' keep their entries under the same keys")
    assert ids(REDIS, default=shared, summaries={**shared, "NAMESPACE": "summaries"}) == []


def test_broken_aliases_are_left_to_the_regular_checks() -> None:
    assert ids(REDIS, default={"CACHE": "missing", "TTL": None}) == []


def test_only_check_deploy_runs_them() -> None:
    unsafe = {"CACHES": {"default": LOCMEM, "llm": REDIS}, "LLM_CACHES": {"default": {"CACHE": "llm", "TTL": None}}}
    with override_settings(**unsafe):
        out = StringIO()
        call_command("check", stdout=out)
        assert "W101" not in out.getvalue()
        call_command("check", "--deploy", stdout=out, stderr=out)
        assert "llmcache_django.W101" in out.getvalue()
