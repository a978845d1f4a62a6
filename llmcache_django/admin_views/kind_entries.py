"""The entries of another kind on an alias: LangGraph node entries by node namespace, cached
embeddings by model; a filterable, paged list, and a confirmed, audited clear of one group."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse

from llmcache_django.admin_views.clear import delete_and_report
from llmcache_django.admin_views.common import (
    ServerUnavailable,
    admin_url,
    cache_or_404,
    count_text,
    reading,
    render_page,
    require_clear,
    require_view,
)
from llmcache_django.admin_views.entries import LIST_LIMIT, PER_PAGE, SORTS
from llmcache_django.admin_views.kinds import KIND_LABELS, KindEntry, node_entry, vector_entry
from llmcache_django.integrations.side_cache import SideCache

if TYPE_CHECKING:
    from llmcache_django.admin import LLMCacheAdmin
    from llmcache_django.core.cache import LLMCache


@dataclass(frozen=True)
class ListedKind:
    """A kind the admin lists: how its entries are read, and the query parameter of a group."""

    read: Callable[[bytes], KindEntry | None]
    group_param: str
    group_label: str


LISTED_KINDS = {
    "langgraph": ListedKind(node_entry, "node", "Node"),
    "embeddings": ListedKind(vector_entry, "model", "Model"),
}


def kind_entry_list(model_admin: LLMCacheAdmin, request: HttpRequest, alias: str, kind: str) -> HttpResponse:
    """One kind's entries on ``alias``, paged, filtered by node (or model), newest first."""
    require_view(model_admin, request)
    cache, listed, side = _kind_or_404(alias, kind)
    group = request.GET.get(listed.group_param, "")
    sort = request.GET.get("sort", "newest")
    sort = sort if sort in SORTS else "newest"
    context: dict[str, Any] = {"alias": alias, "cache": cache, "kind": kind, "listed": listed, "group": group}
    context.update(sort=sort, can_list=side.store.can_list, store=side.store, label=KIND_LABELS[kind])
    context["clear_url"] = admin_url(model_admin, "kind_clear", alias, kind, query={listed.group_param: group})
    if side.store.can_list:
        try:
            with reading(cache):
                context.update(_listing(model_admin, request, side, listed, group, sort))
        except ServerUnavailable as exc:
            context["error"] = exc.text
    return render_page(model_admin, request, "kind_entries.html", f"{KIND_LABELS[kind]} in “{alias}”", **context)


def kind_clear(model_admin: LLMCacheAdmin, request: HttpRequest, alias: str, kind: str) -> HttpResponse:
    """Clear one node's (or model's) entries of ``kind``, or all of them, after confirmation."""
    require_clear(model_admin, request)
    cache, listed, side = _kind_or_404(alias, kind)
    group = request.GET.get(listed.group_param, "")
    if group and not side.store.can_list:
        raise Http404(
            f"{side.store.describe()} cannot list entries, so those of one {listed.group_param} cannot be found."
        )
    what = f"{listed.group_param} {group!r}" if group else "all"
    scope = f"{what} of the {KIND_LABELS[kind]} in LLM cache {alias!r}"
    back = admin_url(model_admin, "kind_entries", alias, kind)

    def delete(dry_run: bool = False) -> int | None:
        if not group:
            return side.clear(dry_run=dry_run)
        return side.delete_where(lambda value: _group_of(listed, value) == group, dry_run=dry_run)

    if request.method == "POST":
        return delete_and_report(request, alias, back, scope, delete)
    with reading(cache):
        count = delete(dry_run=True)
    return render_page(
        model_admin,
        request,
        "confirm.html",
        f"Clear {scope}?",
        alias=alias,
        cache=cache,
        scope=scope,
        count=count_text(count),
        cancel_url=admin_url(model_admin, "kind_entries", alias, kind, query={listed.group_param: group}),
        submit_label="Yes, clear them",
        crumb="Clear",
    )


def _kind_or_404(alias: str, kind: str) -> tuple[LLMCache, ListedKind, SideCache]:
    cache = cache_or_404(alias)
    if kind not in LISTED_KINDS:
        raise Http404(f"No list of {kind!r} entries: the admin lists {', '.join(LISTED_KINDS)}.")
    return cache, LISTED_KINDS[kind], SideCache(kind, cache)


def _listing(
    model_admin: LLMCacheAdmin, request: HttpRequest, side: SideCache, listed: ListedKind, group: str, sort: str
) -> dict[str, Any]:
    found = [
        entry
        for entry in (listed.read(value) for _name, value in itertools.islice(side.store.iter_values(), LIST_LIMIT + 1))
        if entry is not None
    ]
    truncated = len(found) > LIST_LIMIT
    groups = sorted({entry.group for entry in found[:LIST_LIMIT]})
    entries = [entry for entry in found[:LIST_LIMIT] if not group or entry.group == group]
    attribute, descending = SORTS[sort]
    entries.sort(key=lambda entry: getattr(entry, attribute) or 0.0, reverse=descending)
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    alias, kind = side.llm_cache.alias, side.kind

    def url(**changes: str) -> str:
        query = {listed.group_param: group, "sort": "" if sort == "newest" else sort, **changes}
        return admin_url(model_admin, "kind_entries", alias, kind, query=query)

    return {
        "page": page,
        "page_links": _page_links(page, url),
        "groups": groups,
        "truncated": truncated,
        "list_limit": LIST_LIMIT,
        "age_sort_url": url(sort="oldest" if sort == "newest" else ""),
        "size_sort_url": url(sort="largest" if sort != "largest" else "smallest"),
    }


def _page_links(page: Page[Any], url: Callable[..., str]) -> list[tuple[str, str]]:
    """``(label, url)`` for each page number around the current one (no URL: this page, ``…``)."""
    links = []
    for number in page.paginator.get_elided_page_range(page.number):
        current = number == page.number or number == page.paginator.ELLIPSIS
        links.append((str(number), "" if current else url(page=str(number))))
    return links


def _group_of(listed: ListedKind, value: bytes) -> str | None:
    entry = listed.read(value)
    return entry.group if entry is not None else None
