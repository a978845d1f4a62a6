"""ASGI lifespan for a Django application: at shutdown, counts are flushed and leases given up.

Django's ASGI handler does not speak the lifespan protocol (uvicorn then logs that it is
unsupported and goes on). Wrapped, the application answers it, and at shutdown — after the
server has let the last requests finish, before the process ends however it ends — adds
every cache's pending counts to the shared counters and gives up the single-flight leases
the process still holds::

    from django.core.asgi import get_asgi_application
    from llmcache_django.asgi import with_cache_lifespan

    application = with_cache_lifespan(get_asgi_application())
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async

Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Coroutine[Any, Any, None]]


def with_cache_lifespan(application: Callable[..., Awaitable[None]]) -> ASGIApp:
    """``application`` answering ASGI lifespan events; its shutdown ends this process's cache work."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        await lifespan(receive, send)

    return app


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer lifespan events until shutdown, then flush counts and release leases."""
    from llmcache_django.core.exit_flush import finish_process

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await sync_to_async(finish_process, thread_sensitive=False)()
            await send({"type": "lifespan.shutdown.complete"})
            return
