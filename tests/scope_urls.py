"""URLs for the middleware tests: a sync and an async view asking a cached chat model."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from langchain_core.language_models import FakeListChatModel

from llmcache_django import cached

#: One model for the run: each live call gives the next numbered answer.
MODEL = cached(FakeListChatModel(responses=[f"answer {index}" for index in range(10_000)]), alias="default")
QUESTION = "What is the capital of France?"


def ask(request: HttpRequest) -> JsonResponse:
    message = MODEL.invoke(QUESTION)
    return JsonResponse({"answer": message.content, "marker": message.response_metadata.get("llm_cache")})


async def aask(request: HttpRequest) -> JsonResponse:
    message = await MODEL.ainvoke(QUESTION)
    return JsonResponse({"answer": message.content, "marker": message.response_metadata.get("llm_cache")})


urlpatterns = [path("ask/", ask), path("aask/", aask)]
