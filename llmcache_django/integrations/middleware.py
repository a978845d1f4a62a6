"""``LLMCacheMiddleware``: each request's cache directives (its scope, its header), sync and async.

A streaming response's content is produced after the view and this middleware have returned,
as the server reads it: each of its chunks is produced in the request's directives too, or a
streamed answer would be read and written outside the user's scope.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

from llmcache_django.core.control import Directives, applied
from llmcache_django.integrations.scopes import request_directives


class LLMCacheMiddleware:
    """Sets the scope (``OPTIONS["SCOPE"]``) and header directives (``OPTIONS["REQUEST_DIRECTIVES"]``)
    of each request for every ``LLM_CACHES`` alias; put it after ``AuthenticationMiddleware``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        given = _of(request_directives(request, getattr(request, "user", None)))
        with applied(given):
            return _streamed_within(self.get_response(request), given)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        user = await request.auser() if hasattr(request, "auser") else None
        per_alias = await sync_to_async(request_directives)(request, user)  # has_perm may query
        given = _of(per_alias)
        with applied(given):
            response: Awaitable[HttpResponse] = self.get_response(request)
            return _streamed_within(await response, given)


def _of(per_alias: dict[str, Directives] | None) -> Directives | None:
    return None if per_alias is None else Directives(per_alias=per_alias)


def _streamed_within(response: Any, given: Directives | None) -> Any:
    """``response``, its streaming content (if any) produced in the directives in force now."""
    if given is None or not isinstance(response, StreamingHttpResponse) or isinstance(response, FileResponse):
        return response  # a file asks no model, and keeps the server's sendfile
    context = contextvars.copy_context()  # taken inside the directives: each chunk is made in it
    content = response.streaming_content  # read once: Django iterates a response's content once
    if response.is_async:
        response.streaming_content = _achunks_in(content, context)  # type: ignore[arg-type]
    else:
        response.streaming_content = _chunks_in(content, context)  # type: ignore[arg-type]
    close = response.close
    # A client gone mid-stream: the server closes the response, which closes the view's
    # generator (its finally gives up a flight, records what it had) in the directives too.
    response.close = lambda: context.copy().run(close)  # type: ignore[method-assign]  # a copy: never entered twice
    return response


def _chunks_in(chunks: Iterator[bytes], context: contextvars.Context) -> Iterator[bytes]:
    end = object()
    while (chunk := context.run(next, chunks, end)) is not end:
        yield chunk  # type: ignore[misc]


async def _achunks_in(chunks: AsyncIterator[bytes], context: contextvars.Context) -> AsyncIterator[bytes]:
    try:
        while True:
            try:
                chunk = await asyncio.create_task(_anext(chunks), context=context)
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await asyncio.create_task(aclose(), context=context)


async def _anext(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()
