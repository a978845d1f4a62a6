"""The agent page: an agent answers with a tool or two, each step shown as it happens."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_POST

from example_project.demo.agent import agent_events
from example_project.demo.forms import PromptForm
from example_project.demo.page import page_context
from example_project.demo.views import _event_stream

TEMPLATE = "demo/agent.html"
EXAMPLE = "What is the weather in Paris and in Berlin?"


def agent_page(request: HttpRequest) -> HttpResponse:
    """The page; the question is asked by its script, streamed from `agent_stream`."""
    form = PromptForm(initial={"prompt": EXAMPLE})
    return render(request, TEMPLATE, page_context({"form": form}))


@require_POST
async def agent_stream(request: HttpRequest) -> HttpResponseBase:
    """Run the agent and stream its steps as Server-Sent Events (an async view)."""
    form = PromptForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text())
    return _event_stream(agent_events(form.cleaned_data["prompt"]))
