"""The prompt page: ask with a form post (sync or async view), or stream the answer as
Server-Sent Events (sync or async view). Every way goes through the same cache."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_POST

from example_project.demo.ask import Answer, aask, ask
from example_project.demo.forms import PromptForm
from example_project.demo.page import page_context, process_stats
from example_project.demo.savings import add_tokens_saved, start_tally
from example_project.demo.streams import aanswer_events, answer_events, in_worker_threads

TEMPLATE = "demo/index.html"
EVENT_STREAM = "text/event-stream"


def index(request: HttpRequest) -> HttpResponse:
    """Ask the model from a sync view (a worker thread under WSGI or ASGI)."""
    form = PromptForm(request.POST or None)
    answer = ask(form.cleaned_data["prompt"], refresh=_regenerate(request)) if form.is_valid() else None
    context = _answer_context(request, form, answer, view="sync")
    return render(request, TEMPLATE, page_context(context))


async def ask_async(request: HttpRequest) -> HttpResponse:
    """Ask the model from an async view: `ainvoke` and the cache's async lookup."""
    form = PromptForm(request.POST or None)
    answer = await aask(form.cleaned_data["prompt"], refresh=_regenerate(request)) if form.is_valid() else None
    # Sessions and the page's cache description may touch the database: not on the loop.
    context = await sync_to_async(_answer_context)(request, form, answer, view="async")
    return render(request, TEMPLATE, await sync_to_async(page_context)(context))


@require_POST
def stream(request: HttpRequest) -> HttpResponseBase:
    """Stream the answer from a sync view with `stream()`."""
    form = PromptForm(request.POST)
    if not form.is_valid():
        return _refused(form)
    start_tally(request.session)
    events = answer_events(
        form.cleaned_data["prompt"], lambda answer: _tally(request, answer), refresh=_regenerate(request)
    )
    # Under ASGI, Django would read a sync iterator to its end before sending a byte.
    return _event_stream(in_worker_threads(events) if isinstance(request, ASGIRequest) else events)


@require_POST
async def astream(request: HttpRequest) -> HttpResponseBase:
    """Stream the answer from an async view with `astream()`: no thread per chunk."""
    form = PromptForm(request.POST)
    if not form.is_valid():
        return _refused(form)
    await sync_to_async(start_tally)(request.session)
    events = aanswer_events(
        form.cleaned_data["prompt"],
        sync_to_async(lambda answer: _tally(request, answer)),
        refresh=_regenerate(request),
    )
    return _event_stream(events)


def _regenerate(request: HttpRequest) -> bool:
    """Whether the Regenerate button sent the form: a fresh answer replaces the cached one."""
    return request.POST.get("regenerate") == "1"


def _refused(form: PromptForm) -> HttpResponseBadRequest:
    # Plain text: the page shows it as the reason no answer came.
    return HttpResponseBadRequest(form.errors.as_text(), content_type="text/plain; charset=utf-8")


def _event_stream(events: Any) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type=EVENT_STREAM)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let a proxy pass each event on at once
    return response


def _tally(request: HttpRequest, answer: Answer) -> dict[str, Any]:
    # The response headers are gone by now: save the session ourselves.
    tokens_saved = add_tokens_saved(request.session, answer)
    request.session.save()
    return {"tokens_saved": tokens_saved, "stats": process_stats()}


def _answer_context(request: HttpRequest, form: PromptForm, answer: Answer | None, *, view: str) -> dict[str, Any]:
    tokens_saved = add_tokens_saved(request.session, answer)
    return {"form": form, "answer": answer, "tokens_saved": tokens_saved, "view": view}
