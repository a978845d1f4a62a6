"""The "LLM cache" admin section: a dashboard, an entries browser, and confirmed clears."""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from llmcache_django import admin_views
from llmcache_django.models import LLMCache

VIEW_PERMISSION = "llmcache_django.view_llmcache"
CLEAR_PERMISSION = "llmcache_django.clear_llmcache"


@admin.register(LLMCache)
class LLMCacheAdmin(admin.ModelAdmin):
    """Shows every ``LLM_CACHES`` alias; there are no rows to add, change or delete.

    ``view_llmcache`` lets a user look; ``clear_llmcache`` lets them delete entries (and,
    like Django's change permission, implies view).
    """

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(VIEW_PERMISSION) or self.has_clear_permission(request)

    def has_clear_permission(self, request: HttpRequest) -> bool:
        """Whether the user may delete entries, one model's or a whole alias's."""
        return request.user.has_perm(CLEAR_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return admin_views.dashboard(self, request)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", self._admin_view(type(self).changelist_view), name=f"{name}_changelist"),
            path("<str:alias>/", self._admin_view(admin_views.entry_list), name=f"{name}_entries"),
            path("<str:alias>/clear/", self._admin_view(admin_views.clear), name=f"{name}_clear"),
            path(
                "<str:alias>/kind/<str:kind>/",
                self._admin_view(admin_views.kind_entry_list),
                name=f"{name}_kind_entries",
            ),
            path(
                "<str:alias>/kind/<str:kind>/clear/",
                self._admin_view(admin_views.kind_clear),
                name=f"{name}_kind_clear",
            ),
            path("<str:alias>/reset-stats/", self._admin_view(admin_views.reset_stats), name=f"{name}_reset_stats"),
            path("<str:alias>/entry/<str:name>/", self._admin_view(admin_views.entry_detail), name=f"{name}_entry"),
            path(
                "<str:alias>/entry/<str:name>/delete/",
                self._admin_view(admin_views.delete_entry),
                name=f"{name}_delete_entry",
            ),
        ]

    def _admin_view(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """``view(model_admin, request, ...)`` behind the admin site's login and CSRF checks."""

        def bound(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(self, request, *args, **kwargs)
            except admin_views.ServerUnavailable as exc:  # a page, not a 500, when the server is down
                return admin_views.unavailable(self, request, exc, kwargs.get("alias", ""))

        return self.admin_site.admin_view(update_wrapper(bound, view))
