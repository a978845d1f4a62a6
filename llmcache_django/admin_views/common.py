"""What every admin page shares: rendering, permission checks, the cache lookup, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from llmcache_django.backends.handler import llm_caches
from llmcache_django.models import LLMCache as LLMCacheRecord

if TYPE_CHECKING:
    from langchain_core.outputs import Generation

    from llmcache_django.admin import LLMCacheAdmin
    from llmcache_django.core.cache import LLMCache
    from llmcache_django.core.listing import EntryInfo


def render_page(
    model_admin: LLMCacheAdmin, request: HttpRequest, template: str, title: str, **context: Any
) -> TemplateResponse:
    """Render ``admin/llmcache_django/<template>`` inside the admin's chrome."""
    opts = model_admin.opts
    return TemplateResponse(
        request,
        f"admin/llmcache_django/{template}",
        {
            **model_admin.admin_site.each_context(request),
            "opts": opts,
            "app_label": opts.app_label,
            "title": title,
            "has_clear_permission": model_admin.has_clear_permission(request),
            **context,
        },
    )


def require_view(model_admin: LLMCacheAdmin, request: HttpRequest) -> None:
    """Raise ``PermissionDenied`` (403) unless the user may look at the LLM caches."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def require_clear(model_admin: LLMCacheAdmin, request: HttpRequest) -> None:
    """Raise ``PermissionDenied`` (403) unless the user may delete entries."""
    if not model_admin.has_clear_permission(request):
        raise PermissionDenied


class ServerUnavailable(Exception):
    """Reading a cache's server failed; the page shows ``text`` instead of a 500."""

    def __init__(self, cache: LLMCache, text: str) -> None:
        super().__init__(text)
        self.cache = cache
        self.text = text


def error_text(exc: BaseException) -> str:
    """``"ConnectionError: <message>"``, never an empty message (the class's docstring stands in)."""
    doc = (type(exc).__doc__ or "").strip().splitlines()
    message = str(exc).strip() or (doc[0] if doc else "") or "no message"
    return f"{type(exc).__name__}: {message}"


def server_error_text(cache: LLMCache, exc: BaseException) -> str:
    """What failed, where: the alias, the server(s) and the exception, never an empty message."""
    return f"LLM cache {cache.alias!r} on {cache.store.describe()}: {error_text(exc)}"


@contextmanager
def reading(cache: LLMCache) -> Iterator[None]:
    """Turn any failure to read ``cache``'s server into :class:`ServerUnavailable`."""
    try:
        yield
    except Http404:
        raise
    except Exception as exc:
        raise ServerUnavailable(cache, server_error_text(cache, exc)) from exc


def cache_or_404(alias: str) -> LLMCache:
    """The LLM cache for ``alias``, or a 404 when ``LLM_CACHES`` has no such alias."""
    if alias not in llm_caches:
        raise Http404(f"LLM_CACHES has no alias {alias!r}.")
    return llm_caches[alias]


def entry_or_404(alias: str, name: str) -> tuple[LLMCache, EntryInfo, list[Generation]]:
    """The cache, the entry ``name`` and its generations, or a 404 when it is gone."""
    cache = cache_or_404(alias)
    with reading(cache):
        found = cache.get_entry(name)
    if found is None and cache.store.unreachable_nodes():
        down = ", ".join(cache.store.unreachable_nodes())
        raise ServerUnavailable(
            cache,
            f"LLM cache {alias!r} on {cache.store.describe()}: node {down} is not answering, so its entries cannot be read.",
        )
    if found is None:
        raise Http404(f"LLM cache {alias!r} has no entry {name!r} (it may have expired or been cleared).")
    return cache, found[0], found[1]


def admin_url(model_admin: LLMCacheAdmin, page: str, *args: str, query: dict[str, str] | None = None) -> str:
    """The URL of one of this section's pages (``changelist``, ``entries``, ``clear``, ...)."""
    opts = model_admin.opts
    url = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_{page}", args=args, current_app=model_admin.admin_site.name
    )
    params = {key: value for key, value in (query or {}).items() if value}
    return f"{url}?{urlencode(params)}" if params else url


def log_deletion(request: HttpRequest, alias: str, message: str, *, what: str = "", flag: int = DELETION) -> None:
    """Record in the admin's ``LogEntry`` table who did what to ``alias``; ``what`` (e.g.
    "model 'gpt-4o' of LLM cache 'default'") is what "Recent actions" lists."""
    record = LLMCacheRecord(alias=alias)
    record.label = what
    user_id = cast(int, request.user.pk)  # admin views only run for a logged-in user
    if hasattr(LogEntry.objects, "log_actions"):  # Django >= 5.1
        LogEntry.objects.log_actions(user_id, [record], flag, change_message=message, single_object=True)
        return
    content_type = ContentType.objects.get_for_model(LLMCacheRecord, for_concrete_model=False)
    # Django < 5.1 has only log_action() (the stubs follow the newest Django).
    LogEntry.objects.log_action(  # type: ignore[attr-defined]
        user_id, content_type.pk, alias, str(record), flag, change_message=message
    )


def count_text(count: int | None) -> str:
    """``"1 entry"``, ``"3 entries"``, or ``"an unknown number of entries"``."""
    if count is None:
        return "an unknown number of entries"
    return f"{count} entry" if count == 1 else f"{count} entries"


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``"< 1 ms"``, ``"420 ms"``, ``"4.2 s"``, ``"12 s"``, ``"5 min"``,
    ``"2 h 5 min"``, ``"3 d 4 h"``."""
    if seconds is None:
        return "—"
    if seconds < 0.001:
        return "< 1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, hours = int(seconds // 60), int(seconds // 3600)
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    days = int(seconds // 86400)
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def age_text(seconds: float) -> str:
    """How long ago: ``"just now"`` under a minute, then ``"5 min ago"``, ``"2 h 5 min ago"``..."""
    return "just now" if seconds < 60 else f"{format_seconds(seconds)} ago"
