"""Destructive pages: GET shows what will go and where, POST deletes, logs, and redirects."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.admin.models import CHANGE
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect

from llmcache_django.admin_views.common import (
    ServerUnavailable,
    admin_url,
    cache_or_404,
    count_text,
    entry_or_404,
    error_text,
    log_deletion,
    reading,
    render_page,
    require_clear,
)
from llmcache_django.admin_views.display import entry_label, prompt_text
from llmcache_django.stores.base import PartialClearError

if TYPE_CHECKING:
    from llmcache_django.admin import LLMCacheAdmin
    from llmcache_django.core.cache import LLMCache

logger = logging.getLogger("llmcache_django")


def clear(model_admin: LLMCacheAdmin, request: HttpRequest, alias: str) -> HttpResponse:
    """Clear a whole alias, or with ``model`` only that model's entries, after confirmation."""
    require_clear(model_admin, request)
    cache = cache_or_404(alias)
    model = (request.POST if request.method == "POST" else request.GET).get("model", "")
    if model and not cache.can_list:
        raise Http404(f"{cache.backend_name} cannot list entries, so entries of one model cannot be found.")
    scope = f"model {model!r} in LLM cache {alias!r}" if model else f"all of LLM cache {alias!r}"
    if request.method == "POST":
        back = admin_url(model_admin, "entries", alias) if model else admin_url(model_admin, "changelist")
        return delete_and_report(request, alias, back, scope, lambda: cache.delete_entries(model=model or None))
    with reading(cache):
        count = cache.count_entries(model=model or None)
    if model and count == 0:  # nothing to confirm: say so, offer no button
        return render_page(
            model_admin,
            request,
            "nothing_to_clear.html",
            f"No entries of model {model!r} in LLM cache “{alias}”",
            alias=alias,
            cache=cache,
            model=model,
            back_url=admin_url(model_admin, "entries", alias),
        )
    return render_page(
        model_admin,
        request,
        "confirm.html",
        f"Clear {scope}?",
        alias=alias,
        cache=cache,
        scope=scope,
        count=count_text(count),
        model=model,
        cancel_url=admin_url(model_admin, "entries", alias, query={"model": model}),
        submit_label="Yes, clear them",
        crumb="Clear",
    )


def delete_entry(model_admin: LLMCacheAdmin, request: HttpRequest, alias: str, name: str) -> HttpResponse:
    """Delete one entry after confirmation."""
    require_clear(model_admin, request)
    cache, info, _ = entry_or_404(alias, name)
    scope = f"entry {entry_label(info)} in LLM cache {alias!r}"
    if request.method == "POST":
        back = admin_url(model_admin, "entries", alias)
        return delete_and_report(request, alias, back, scope, lambda: int(cache.delete_entry(name)))
    return render_page(
        model_admin,
        request,
        "confirm.html",
        "Delete this entry?",
        alias=alias,
        cache=cache,
        scope=scope,
        count=count_text(1),
        prompt=prompt_text(info.prompt),
        cancel_url=admin_url(model_admin, "entry", alias, name),
        submit_label="Yes, delete it",
        crumb="Delete entry",
    )


def delete_and_report(
    request: HttpRequest, alias: str, back: str, scope: str, delete: Callable[[], int | None]
) -> HttpResponse:
    """Run ``delete``, then tell the user and the audit log how many entries went."""
    try:
        count = delete()
    except PartialClearError as exc:  # some nodes (or some entries) went before a failure: those are logged
        text = f"LLM cache {alias!r} ({scope}): {exc.describe()}."
        what = f"{scope} ({count_text(exc.removed)}, incomplete)"
        _log_and_tell(request, alias, text[0].upper() + text[1:], messages.ERROR, what=what)
        return HttpResponseRedirect(back)
    except Exception as exc:  # the server is down: say so; nothing went, so nothing is logged
        logger.warning("LLM cache admin: deleting %s failed: %s", scope, error_text(exc))
        messages.error(request, f"Could not delete {scope}: {error_text(exc)}")
        return HttpResponseRedirect(back)
    _log_and_tell(
        request,
        alias,
        f"Deleted {count_text(count)} ({scope}).",
        messages.SUCCESS,
        what=f"{scope} ({count_text(count)})",
    )
    return HttpResponseRedirect(back)


def reset_stats(model_admin: LLMCacheAdmin, request: HttpRequest, alias: str) -> HttpResponse:
    """Set an alias's shared counters back to zero after confirmation; entries stay."""
    require_clear(model_admin, request)
    cache = cache_or_404(alias)
    back = admin_url(model_admin, "changelist")
    if request.method == "POST":
        return _reset_and_report(request, cache, back)
    with reading(cache):  # a server that cannot be read cannot be reset: say so before asking
        stats = cache.shared_stats()
    down = cache.store.unreachable_nodes()  # a pool answers a failed node's keys with zeros
    if down:
        raise ServerUnavailable(
            cache, f"LLM cache {alias!r} on {cache.store.describe()}: node {', '.join(down)} is not answering."
        )
    return render_page(
        model_admin,
        request,
        "confirm_reset.html",
        f"Reset the stats of LLM cache “{alias}”?",
        alias=alias,
        cache=cache,
        stats=stats,
        cancel_url=back,
    )


def _reset_and_report(request: HttpRequest, cache: LLMCache, back: str) -> HttpResponse:
    alias = cache.alias
    try:
        cache.reset_stats()
    except Exception as exc:
        text = f"Could not reset the stats of LLM cache {alias!r}; nothing was changed: {error_text(exc)}"
        logger.warning("LLM cache admin: %s", text)
        messages.error(request, text)
        return HttpResponseRedirect(back)
    text = f"Reset the shared stats of LLM cache {alias!r} (hits, misses, writes, errors, savings); entries kept."
    log_deletion(request, alias, text, what=f"stats of LLM cache {alias!r}", flag=CHANGE)
    messages.success(request, text)
    return HttpResponseRedirect(back)


def _log_and_tell(request: HttpRequest, alias: str, text: str, level: int, *, what: str = "") -> None:
    log_deletion(request, alias, text, what=what)
    messages.add_message(request, level, text)
