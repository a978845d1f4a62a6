"""``LLMCacheMiddleware``: each request's cache directives (its scope, its header), sync and async."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

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
        with applied(_of(request_directives(request, getattr(request, "user", None)))):
            return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        user = await request.auser() if hasattr(request, "auser") else None
        per_alias = await sync_to_async(request_directives)(request, user)  # has_perm may query
        with applied(_of(per_alias)):
            response: Awaitable[HttpResponse] = self.get_response(request)
            return await response


def _of(per_alias: dict[str, Directives] | None) -> Directives | None:
    return None if per_alias is None else Directives(per_alias=per_alias)
