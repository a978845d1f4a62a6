"""The prompt page, served by a sync view and by an async one; both go through the cache."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from example_project.demo.ask import Answer, aask, ask
from example_project.demo.forms import PromptForm
from example_project.demo.page import page_context
from example_project.demo.savings import add_tokens_saved

TEMPLATE = "demo/index.html"


def index(request: HttpRequest) -> HttpResponse:
    """Ask the model from a sync view (a worker thread under WSGI or ASGI)."""
    form = PromptForm(request.POST or None)
    answer = ask(form.cleaned_data["prompt"]) if form.is_valid() else None
    context = _answer_context(request, form, answer, view="sync")
    return render(request, TEMPLATE, page_context(context))


async def ask_async(request: HttpRequest) -> HttpResponse:
    """Ask the model from an async view: `ainvoke` and the cache's async lookup."""
    form = PromptForm(request.POST or None)
    answer = await aask(form.cleaned_data["prompt"]) if form.is_valid() else None
    # Sessions and the page's cache description may touch the database: not on the loop.
    context = await sync_to_async(_answer_context)(request, form, answer, view="async")
    return render(request, TEMPLATE, await sync_to_async(page_context)(context))


def _answer_context(request: HttpRequest, form: PromptForm, answer: Answer | None, *, view: str) -> dict[str, Any]:
    tokens_saved = add_tokens_saved(request.session, answer)
    return {"form": form, "answer": answer, "tokens_saved": tokens_saved, "view": view}
