"""``llm_caches``, the backend mapping and the global install."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_redis.cache import RedisCache as DjangoRedisCache
from langchain_core.globals import get_llm_cache
from langchain_core.outputs import Generation

from llmcache_django import DjangoLLMCache, MemcachedLLMCache, RedisLLMCache, llm_caches
from llmcache_django.backends.handler import default_llm_cache
from tests import servers


def test_one_object_per_alias_rebuilt_when_settings_change() -> None:
    first = llm_caches["default"]
    assert llm_caches["default"] is first
    with override_settings(LLM_CACHES={"default": {"CACHE": "db", "TTL": 5}}):
        assert llm_caches["default"] is not first
        assert llm_caches["default"].ttl == 5
    assert llm_caches["default"].ttl == 3600


@pytest.mark.parametrize(
    ("backend", "cls"),
    [
        ("django_redis.cache.RedisCache", RedisLLMCache),
        ("django.core.cache.backends.redis.RedisCache", RedisLLMCache),
        ("django.core.cache.backends.memcached.PyMemcacheCache", MemcachedLLMCache),
        ("django.core.cache.backends.db.DatabaseCache", DjangoLLMCache),
        ("django.core.cache.backends.locmem.LocMemCache", DjangoLLMCache),
        ("django.core.cache.backends.filebased.FileBasedCache", DjangoLLMCache),
    ],
)
def test_backend_maps_to_its_cache_class_without_connecting(backend: str, cls: type) -> None:
    port = servers.free_port()  # nothing listens: building must not connect
    location = {
        "django_redis.cache.RedisCache": f"redis://127.0.0.1:{port}/0",
        "django.core.cache.backends.redis.RedisCache": f"redis://127.0.0.1:{port}/0",
        "django.core.cache.backends.memcached.PyMemcacheCache": f"127.0.0.1:{port}",
    }.get(backend, "/tmp/llmcache-tests")
    with override_settings(CACHES={"default": {"BACKEND": backend, "LOCATION": location}}, LLM_CACHES={"default": {}}):
        assert type(llm_caches["default"]) is cls


class SiteRedisCache(DjangoRedisCache):
    """A project's own subclass of django-redis's backend, as many projects have."""


def test_a_subclass_of_a_registered_backend_is_stored_like_it(redis_server: servers.Server) -> None:
    # Through Django's cache API it would pickle, and not lease across processes.
    alias = {"BACKEND": "tests.test_handler.SiteRedisCache", "LOCATION": redis_server.url}
    with override_settings(CACHES={"default": alias}, LLM_CACHES={"default": {"NAMESPACE": "subclass"}}):
        cache = llm_caches["default"]
        assert type(cache) is RedisLLMCache
        cache.update("p", "llm", [Generation(text="x")])
        assert cache.lookup("p", "llm") == [Generation(text="x")]
        cache.clear()


def test_an_alias_may_name_its_store_explicitly(redis_server: servers.Server) -> None:
    alias = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_server.url}
    options = {"OPTIONS": {"STORE": "llmcache_django.backends.registry.LOCMEM"}}  # through Django's cache API
    with override_settings(CACHES={"default": alias}, LLM_CACHES={"default": options}):
        assert type(llm_caches["default"]) is DjangoLLMCache


def test_unknown_alias_is_a_clear_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="'nope' is not in LLM_CACHES"):
        llm_caches["nope"]


def test_settings_mistake_is_improperly_configured_naming_the_setting() -> None:
    with (
        override_settings(LLM_CACHES={"default": {"CACHE": "missing"}}),
        pytest.raises(ImproperlyConfigured, match=r"LLM_CACHES\['default'\]\['CACHE'\] = 'missing' is not in CACHES"),
    ):
        llm_caches["default"]


def test_ready_installs_the_default_alias_as_the_global_cache() -> None:
    assert get_llm_cache() is default_llm_cache
    with override_settings(LLM_CACHE_SET_GLOBAL=False):
        assert get_llm_cache() is None
    assert get_llm_cache() is default_llm_cache


def test_memcached_alias_never_unpickles_what_it_reads(memcached_server: servers.Server) -> None:
    from django.core.cache import caches

    from llmcache_django.core.keys import entry_digest
    from tests.test_contract import Exploit

    cache_settings = {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": memcached_server.location,
    }
    with override_settings(CACHES={"default": cache_settings}, LLM_CACHES={"default": {"NAMESPACE": "pickled"}}):
        # Django's own memcached client pickles; plant a pickle exactly under our entry key.
        caches["default"].set(f"pickled:{entry_digest('p', 'llm')}", Exploit())
        assert llm_caches["default"].lookup("p", "llm") is None
    assert Exploit.ran is False
