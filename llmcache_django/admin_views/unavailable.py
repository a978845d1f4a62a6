"""The page shown instead of a 500 when an alias's server cannot be read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse

from llmcache_django.admin_views.common import ServerUnavailable, admin_url, render_page

if TYPE_CHECKING:
    from llmcache_django.admin import LLMCacheAdmin


def unavailable(model_admin: LLMCacheAdmin, request: HttpRequest, error: ServerUnavailable, alias: str) -> HttpResponse:
    """Say which alias, which server and what failed, with the ways back."""
    return render_page(
        model_admin,
        request,
        "unavailable.html",
        f"LLM cache “{alias}” cannot be read",
        alias=alias,
        cache=error.cache,
        error=error.text,
        entries_url=admin_url(model_admin, "entries", alias) if alias else "",
        dashboard_url=admin_url(model_admin, "changelist"),
    )
