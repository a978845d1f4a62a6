"""URLs for the middleware tests: sync and async views asking a cached chat model, whole or streamed."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

from django.http import FileResponse, HttpRequest, JsonResponse, StreamingHttpResponse
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


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """The answer streamed: the model is asked as the server reads the response, after the view returned."""

    def chunks() -> Iterator[str]:
        for chunk in MODEL.stream(QUESTION):
            yield str(chunk.content)

    return StreamingHttpResponse(chunks())


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    """:func:`stream` with ``astream()``."""

    async def chunks() -> AsyncIterator[str]:
        async for chunk in MODEL.astream(QUESTION):
            yield str(chunk.content)

    return StreamingHttpResponse(chunks())


def download(request: HttpRequest) -> FileResponse:
    """A file: no model call, served as the server likes (sendfile) whatever the scope (called directly)."""
    return FileResponse(io.BytesIO(b"a file"), filename="file.txt")


urlpatterns = [path("ask/", ask), path("aask/", aask), path("stream/", stream), path("astream/", astream)]
