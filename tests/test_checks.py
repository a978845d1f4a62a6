"""System checks: one test per id, and ``manage.py check`` on the test settings."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from llmcache_django.backends import registry
from llmcache_django.ops.checks import check_llm_caches

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
DATABASE = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "llmcache_tests_table"}


def check_ids(**overrides: Any) -> list[str]:
    with override_settings(**overrides):
        return [message.id for message in check_llm_caches()]  # type: ignore[misc]


def test_the_test_settings_pass_every_check() -> None:
    call_command("check", "--fail-level", "WARNING")


def test_llm_caches_must_be_a_dict() -> None:
    assert check_ids(LLM_CACHES=["default"]) == ["llmcache_django.E001"]


def test_each_alias_must_be_a_dict() -> None:
    assert check_ids(LLM_CACHES={"default": "llm"}) == ["llmcache_django.E001"]


def test_cache_alias_must_exist_in_caches() -> None:
    with override_settings(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"CACHE": "llm"}}):
        (message,) = check_llm_caches()
    assert message.id == "llmcache_django.E002"
    assert "LLM_CACHES['default']['CACHE'] = 'llm' is not in CACHES" in message.msg


@pytest.mark.parametrize("ttl", [-1, "3600", True, [1], float("inf"), float("nan"), 10**20, 10**12, 10**9])
def test_ttl_must_be_seconds_or_none(ttl: object) -> None:
    assert check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"TTL": ttl}}) == ["llmcache_django.E003"]


@pytest.mark.parametrize("ttl", [0, 60, 1.5, None, 10 * 365 * 24 * 3600])
def test_valid_ttls_pass(ttl: object) -> None:
    assert check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"TTL": ttl}}) == []


def test_unknown_alias_key_is_an_error() -> None:
    assert check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"TIMEOUT": 5}}) == ["llmcache_django.E004"]


def test_unknown_or_mistyped_option_is_an_error() -> None:
    ids = check_ids(
        CACHES={"default": DATABASE}, LLM_CACHES={"default": {"OPTIONS": {"COMPRESS": True, "STATS": "yes"}}}
    )
    assert ids == ["llmcache_django.E004", "llmcache_django.E004"]


@pytest.mark.parametrize("namespace", ["", "has space", "x" * 65, 7])
def test_namespace_must_be_key_safe(namespace: object) -> None:
    ids = check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"NAMESPACE": namespace}})
    assert ids == ["llmcache_django.E005"]


def test_global_install_needs_a_default_alias() -> None:
    ids = check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"other": {}})
    assert ids == ["llmcache_django.E006"]
    assert check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"other": {}}, LLM_CACHE_SET_GLOBAL=False) == []


#: A memcached spec whose library is not installed: what an alias on a missing library looks like.
MISSING_LIBRARY = dataclasses.replace(registry.PYMEMCACHE, library="no_such_memcached_library", extra="example[extra]")


def test_a_backend_whose_library_is_missing_is_an_error() -> None:
    memcached = {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": "127.0.0.1:11211"}
    alias = {"OPTIONS": {"STORE": "tests.test_checks.MISSING_LIBRARY"}}
    with override_settings(CACHES={"default": memcached}, LLM_CACHES={"default": alias}):
        (message,) = check_llm_caches()
    assert message.id == "llmcache_django.E007"
    assert "no_such_memcached_library is not installed" in message.msg
    assert message.hint == "pip install 'example[extra]'"


def test_a_store_option_that_names_no_spec_is_an_error() -> None:
    with override_settings(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"OPTIONS": {"STORE": "os.path"}}}):
        (message,) = check_llm_caches()
    assert message.id == "llmcache_django.E004"
    assert "'os.path' is a module, not a llmcache_django.backends.registry.BackendSpec" in message.msg


@pytest.mark.parametrize(
    "backend",
    [
        "django_redis.cache.RedisCache",
        "django.core.cache.backends.redis.RedisCache",
        "django_valkey.cache.ValkeyCache",
        "django_valkey.async_cache.cache.AsyncValkeyCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
        "django.core.cache.backends.db.DatabaseCache",
    ],
)
def test_single_flight_on_a_backend_that_leases_across_processes_is_not_warned_about(backend: str) -> None:
    # Valkey aliases got a false W011 when the leasing backends were listed apart from the stores.
    location = "127.0.0.1:11211" if "memcached" in backend else "redis://127.0.0.1:6379/0"
    cache = {"BACKEND": backend, "LOCATION": "llmcache_tests_table" if "db" in backend else location}
    alias = {"OPTIONS": {"SINGLE_FLIGHT": True}}
    assert check_ids(CACHES={"default": cache}, LLM_CACHES={"default": alias}) == []


@pytest.mark.parametrize(
    ("backend", "scheme"),
    [
        ("django_redis.cache.RedisCache", "redis"),
        ("django.core.cache.backends.redis.RedisCache", "redis"),
        ("django_valkey.cache.ValkeyCache", "valkey"),
        ("django_valkey.async_cache.cache.AsyncValkeyCache", "valkey"),
    ],
)
def test_a_redis_or_valkey_location_that_is_not_a_url_is_an_error(backend: str, scheme: str) -> None:
    broken = {"BACKEND": backend, "LOCATION": f"{scheme}://127.0.0.1:63a9/0"}
    with override_settings(CACHES={"default": broken}, LLM_CACHES={"default": {}}):
        (message,) = check_llm_caches()
    assert message.id == "llmcache_django.E008"
    assert f"'{scheme}://127.0.0.1:63a9/0' is not a {scheme.capitalize()} URL" in message.msg
    assert f"{scheme}://host:port/db" in str(message.hint)


MISSING_VALKEY = dataclasses.replace(registry.VALKEY, library="no_such_valkey_library")


def test_a_valkey_alias_without_django_valkey_installed_is_an_error() -> None:
    valkey = {"BACKEND": "django_valkey.cache.ValkeyCache", "LOCATION": "valkey://127.0.0.1:6379/0"}
    alias = {"OPTIONS": {"STORE": "tests.test_checks.MISSING_VALKEY"}}
    with override_settings(CACHES={"default": valkey}, LLM_CACHES={"default": alias}):
        (message,) = check_llm_caches()
    assert message.id == "llmcache_django.E007"
    assert message.hint == "pip install 'llmcache-django[valkey]'"


def test_a_redis_location_that_is_not_a_url_is_improperly_configured_not_a_value_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from llmcache_django import llm_caches

    broken = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:63a9/0"}
    message = r"LLM_CACHES\['default'\] cannot use CACHES\['default'\]"
    with (
        override_settings(CACHES={"default": broken}, LLM_CACHES={"default": {}}),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        llm_caches["default"]


def test_dummy_cache_warns_that_it_never_hits() -> None:
    dummy = {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    assert check_ids(CACHES={"default": dummy}, LLM_CACHES={"default": {}}) == ["llmcache_django.W001"]


def test_locmem_cache_warns_that_it_is_per_process() -> None:
    assert check_ids(CACHES={"default": LOCMEM}, LLM_CACHES={"default": {}}) == ["llmcache_django.W002"]


def test_manage_py_check_fails_on_a_settings_mistake() -> None:
    with override_settings(LLM_CACHES={"default": {"CACHE": "missing"}}), pytest.raises(SystemCheckError, match="E002"):
        call_command("check")
