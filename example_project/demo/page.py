"""What the prompt page shows besides the answer: the cache, the model, the admin link."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from example_project.demo.chat import chat_model, model_label
from llmcache_django import llm_caches

ADMIN_URL_NAMES = ("admin:llmcache_django_llmcache_changelist", "admin:index")


def page_context(answer_context: dict[str, Any]) -> dict[str, Any]:
    """The template context: `answer_context` plus the cache and model descriptions."""
    cache = llm_caches["default"]
    return {
        **answer_context,
        "cache_class": type(cache).__name__,
        "cache_location": cache_location(),
        "stats": process_stats(),
        "model_label": model_label(chat_model()),
        "admin_url": admin_url(),
    }


def process_stats() -> dict[str, Any] | None:
    """This process's counters of the default LLM cache, or `None` when stats are off."""
    stats = llm_caches["default"].stats
    return stats.snapshot() if stats is not None else None


def cache_location() -> str:
    """Where the default LLM cache keeps its entries, as `CACHES` describes it."""
    alias = str(settings.LLM_CACHES.get("default", {}).get("CACHE", "default"))
    config = settings.CACHES[alias]
    backend = config["BACKEND"].rsplit(".", 1)[-1]
    return f"CACHES[{alias!r}]: {backend} at {config.get('LOCATION', '(local memory)')}"


def admin_url() -> str:
    """The admin's LLM cache page, or the admin index until that page exists."""
    for name in ADMIN_URL_NAMES:
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return "/admin/"
