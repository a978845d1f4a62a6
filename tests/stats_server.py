"""A Django site served by uvicorn in a subprocess, for the stats-at-shutdown tests.

Environment: ``LLMCACHE_TEST_CACHE`` (a ``CACHES`` entry as JSON, the LLM cache's alias),
``LLMCACHE_TEST_NAMESPACE``, ``LLMCACHE_TEST_FLUSH_SECONDS`` (the flush interval: a long one
leaves only the shutdown paths to share the counts) and ``LLMCACHE_TEST_LIFESPAN`` (``1``:
the application is wrapped in :func:`~llmcache_django.asgi.with_cache_lifespan`).

``GET /ask/async?q=...`` and ``/ask/sync?q=...`` ask a real LangChain chat model through
LangChain's global cache (the ``default`` LLM cache) from an async and a sync view;
``/ask/gated?q=...`` asks one whose call creates the file ``LLMCACHE_TEST_GATE + ".in"``
and answers once the file ``LLMCACHE_TEST_GATE`` exists.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="llmcache-django-tests-only",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["llmcache_django"],
    ROOT_URLCONF=__name__,
    DATABASES={},
    CACHES={
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "llm": json.loads(os.environ["LLMCACHE_TEST_CACHE"]),
    },
    LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": os.environ["LLMCACHE_TEST_NAMESPACE"]}},
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from langchain_core.language_models import FakeListChatModel  # noqa: E402

from llmcache_django.asgi import with_cache_lifespan  # noqa: E402
from llmcache_django.core import stats  # noqa: E402

stats.FLUSH_SECONDS = float(os.environ.get("LLMCACHE_TEST_FLUSH_SECONDS", stats.FLUSH_SECONDS))
model = FakeListChatModel(responses=["an answer"])


class GatedChat(FakeListChatModel):
    """A model call that is still running until the test opens the gate (the simulated latency)."""

    def _call(self, *args: Any, **kwargs: Any) -> str:
        gate = Path(os.environ["LLMCACHE_TEST_GATE"])
        Path(f"{gate}.in").touch()
        while not gate.exists():
            time.sleep(0.01)
        return super()._call(*args, **kwargs)


gated_model = GatedChat(responses=["a late answer"])


async def ask_async(request: HttpRequest) -> HttpResponse:
    return HttpResponse((await model.ainvoke(request.GET["q"])).content)


def ask_sync(request: HttpRequest) -> HttpResponse:
    return HttpResponse(model.invoke(request.GET["q"]).content)


async def ask_gated(request: HttpRequest) -> HttpResponse:
    return HttpResponse((await gated_model.ainvoke(request.GET["q"])).content)


urlpatterns = [path("ask/async", ask_async), path("ask/sync", ask_sync), path("ask/gated", ask_gated)]
django_application = get_asgi_application()
application = (
    with_cache_lifespan(django_application) if os.environ.get("LLMCACHE_TEST_LIFESPAN") else django_application
)
