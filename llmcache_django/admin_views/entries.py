"""The entries of one alias: a searchable, filterable, sortable list, and each entry in full."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse

from llmcache_django.admin_views.common import (
    ServerUnavailable,
    admin_url,
    age_text,
    cache_or_404,
    entry_or_404,
    format_seconds,
    reading,
    render_page,
    require_view,
)
from llmcache_django.admin_views.display import generation_view, pretty_llm_string, prompt_preview, prompt_text
from llmcache_django.core.control import scope_problem

if TYPE_CHECKING:
    from llmcache_django.admin import LLMCacheAdmin
    from llmcache_django.core.cache import LLMCache
    from llmcache_django.core.listing import EntryInfo

#: The list reads at most this many entries (after search) to sort them; search narrows it down.
LIST_LIMIT = 10_000
PER_PAGE = 50
#: ``?sort=`` value -> (attribute, largest first).
SORTS = {
    "newest": ("created", True),
    "oldest": ("created", False),
    "largest": ("size", True),
    "smallest": ("size", False),
}


@dataclass(frozen=True)
class EntryQuery:
    """What the user asked the list for: ``?q=``, ``?model=``, ``?scope=``, ``?sort=``."""

    search: str = ""
    model: str = ""
    sort: str = "newest"
    #: Only the entries of this scope (``user:42``); a value that is not a scope is dropped.
    scope: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> EntryQuery:
        sort = request.GET.get("sort", "newest")
        return cls(
            search=request.GET.get("q", "").strip(),
            model=request.GET.get("model", ""),
            sort=sort if sort in SORTS else "newest",
            scope=_scope(request.GET.get("scope", "").strip()),
        )

    def params(self, **changes: str) -> dict[str, str]:
        """This query as URL parameters, with ``changes`` applied (the default sort left out)."""
        params = {"q": self.search, "model": self.model, "scope": self.scope, "sort": self.sort, **changes}
        if params["sort"] == "newest":
            del params["sort"]
        return params


@dataclass(frozen=True)
class EntryRow:
    """One line of the entries list."""

    info: EntryInfo
    url: str
    prompt: str
    created_at: datetime
    age: str
    ttl_left: str


def entry_list(model_admin: LLMCacheAdmin, request: HttpRequest, alias: str) -> HttpResponse:
    """One alias's entries, paginated, searchable by prompt, filtered by model, sorted by age or size."""
    require_view(model_admin, request)
    cache = cache_or_404(alias)
    query = EntryQuery.from_request(request)
    context: dict[str, Any] = {"alias": alias, "cache": cache, "query": query, "can_list": cache.can_list}
    if cache.can_list:
        try:
            with reading(cache):
                context.update(_listing(model_admin, request, cache, query))
        except ServerUnavailable as exc:  # the rest of the page (search, clear, navigation) stays
            context["error"] = exc.text
    return render_page(model_admin, request, "entries.html", f"Entries of LLM cache “{alias}”", **context)


def entry_detail(model_admin: LLMCacheAdmin, request: HttpRequest, alias: str, name: str) -> HttpResponse:
    """One entry in full: prompt, ``llm_string``, every generation, TTL left."""
    require_view(model_admin, request)
    cache, info, generations = entry_or_404(alias, name)
    return render_page(
        model_admin,
        request,
        "entry.html",
        f"Entry {name[:12]}…",
        alias=alias,
        cache=cache,
        info=info,
        prompt=prompt_text(info.prompt),
        llm_string=pretty_llm_string(info.llm_string) if info.llm_string else "",
        generations=[generation_view(generation) for generation in generations],
        created_at=_as_datetime(info.created),
        age=age_text(info.age),
        ttl_left=ttl_left_text(info),
        duration=format_seconds(info.duration) if info.duration is not None else "",
        entries_url=admin_url(model_admin, "entries", alias),
        delete_url=admin_url(model_admin, "delete_entry", alias, name),
    )


def ttl_left_text(info: EntryInfo) -> str:
    """How long the entry has left: ``"59 min"``, ``"never expires"`` or ``"expired"``."""
    left = info.ttl_left
    if left is None:
        return "never expires"
    return format_seconds(left) if left > 0 else "expired"


def _listing(model_admin: LLMCacheAdmin, request: HttpRequest, cache: LLMCache, query: EntryQuery) -> dict[str, Any]:
    entries = cache.entries(search=query.search or None, scope=query.scope or None)
    found = list(itertools.islice(entries, LIST_LIMIT + 1))
    truncated = len(found) > LIST_LIMIT
    models = sorted({info.model for info in found[:LIST_LIMIT]})
    infos = [info for info in found[:LIST_LIMIT] if not query.model or info.model == query.model]
    attribute, descending = SORTS[query.sort]
    infos.sort(key=lambda info: getattr(info, attribute), reverse=descending)
    page = Paginator(infos, PER_PAGE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "rows": [_row(model_admin, cache.alias, info) for info in page.object_list],
        "page_links": _page_links(model_admin, cache.alias, query, page),
        "models": models,
        "truncated": truncated,
        "list_limit": LIST_LIMIT,
        "age_sort_url": _url(model_admin, cache.alias, query, sort="oldest" if query.sort == "newest" else "newest"),
        "size_sort_url": _url(
            model_admin, cache.alias, query, sort="largest" if query.sort != "largest" else "smallest"
        ),
        "clear_model_url": admin_url(model_admin, "clear", cache.alias, query={"model": query.model}),
    }


def _row(model_admin: LLMCacheAdmin, alias: str, info: EntryInfo) -> EntryRow:
    return EntryRow(
        info=info,
        url=admin_url(model_admin, "entry", alias, info.name),
        prompt=prompt_preview(info.prompt),
        created_at=_as_datetime(info.created),
        age=age_text(info.age),
        ttl_left=ttl_left_text(info),
    )


def _page_links(model_admin: LLMCacheAdmin, alias: str, query: EntryQuery, page: Page[Any]) -> list[tuple[str, str]]:
    """``(label, url)`` for each page number around the current one; ``url`` is empty for the
    current page and for the ``…`` gaps."""
    links = []
    for number in page.paginator.get_elided_page_range(page.number):
        if number == page.number or number == page.paginator.ELLIPSIS:
            links.append((str(number), ""))
        else:
            links.append((str(number), _url(model_admin, alias, query, page=str(number))))
    return links


def _url(model_admin: LLMCacheAdmin, alias: str, query: EntryQuery, **changes: str) -> str:
    return admin_url(model_admin, "entries", alias, query=query.params(**changes))


def _as_datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def _scope(scope: str) -> str:
    return scope if scope and scope_problem(scope) is None else ""
