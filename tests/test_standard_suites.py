"""LangChain's own cache test suites, against every class and every mapped backend."""

from __future__ import annotations

import pytest
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from llmcache_django.core.cache import LLMCache


class TestSyncStandardSuite(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, llm_cache: LLMCache) -> BaseCache:
        return llm_cache


class TestAsyncStandardSuite(AsyncCacheTestSuite):
    @pytest.fixture
    def cache(self, llm_cache: LLMCache) -> BaseCache:
        return llm_cache
