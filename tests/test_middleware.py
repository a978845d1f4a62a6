"""LLMCacheMiddleware: a scope per user, erasure when a user is deleted, header directives with permission."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client, override_settings

from llmcache_django import llm_cache_control, llm_caches
from llmcache_django.conf import alias_problems

pytestmark = pytest.mark.django_db
MIDDLEWARE = [*settings.MIDDLEWARE, "llmcache_django.middleware.LLMCacheMiddleware"]
HEADER = {"header": "LLM-Cache-Control", "permission": "llmcache_django.refresh_llm_cache"}


def configure(**options: Any) -> override_settings:
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "middleware-tests"},
        "llm": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"llm-{id(options)}"},
    }
    return override_settings(
        ROOT_URLCONF="tests.scope_urls",
        MIDDLEWARE=MIDDLEWARE,
        CACHES=caches,
        LLM_CACHES={"default": {"CACHE": "llm", "OPTIONS": options}},
    )


@pytest.fixture
def user_scoped() -> Iterator[None]:
    with configure(SCOPE="user"):
        llm_caches["default"].clear()
        yield


def logged_in(django_user_model: Any, name: str, *permissions: str) -> tuple[Client, Any]:
    user = django_user_model.objects.create_user(name, password="pw")
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client, user


def answer(client: Client, url: str = "/ask/", **headers: str) -> str:
    return str(client.get(url, headers=headers).json()["answer"])


def test_two_users_and_an_anonymous_one_each_get_their_own_answers(user_scoped: None, django_user_model: Any) -> None:
    alice, _ = logged_in(django_user_model, "alice")
    bob, _ = logged_in(django_user_model, "bob")
    first = [answer(alice), answer(bob), answer(Client())]
    assert len(set(first)) == 3  # the same prompt, three partitions: three model calls
    assert [answer(alice), answer(bob), answer(Client())] == first


def streamed(client: Client, url: str = "/stream/") -> str:
    """The answer of a streaming view, read as a server reads it: after the view (and the middleware) returned."""
    return b"".join(client.get(url).streaming_content).decode()  # type: ignore[attr-defined]


def test_a_streamed_answer_is_asked_in_the_users_scope(user_scoped: None, django_user_model: Any) -> None:
    alice, _ = logged_in(django_user_model, "alice")
    bob, _ = logged_in(django_user_model, "bob")
    alices = streamed(alice)
    assert streamed(bob) != alices  # bob's stream is not answered from alice's entry
    assert [streamed(alice), answer(alice)] == [alices, alices]  # her repeat replays her own entry
    assert streamed(Client()) not in (alices, answer(bob))


def test_a_file_response_keeps_the_servers_sendfile(user_scoped: None, django_user_model: Any) -> None:
    from django.test import RequestFactory

    from llmcache_django.middleware import LLMCacheMiddleware
    from tests.scope_urls import download

    request = RequestFactory().get("/download/")
    request.user = django_user_model.objects.create_user("alice", password="pw")
    response = LLMCacheMiddleware(download)(request)  # in a scope: the middleware had streaming content to wrap
    assert response.file_to_stream is not None  # what a WSGI server's file_wrapper sends
    assert b"".join(response.streaming_content) == b"a file"


@pytest.mark.django_db(transaction=True)
async def test_an_async_streamed_answer_is_asked_in_the_users_scope(user_scoped: None, django_user_model: Any) -> None:
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    async def astreamed(client: AsyncClient) -> str:
        response = await client.get("/astream/")
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    clients = []
    for name in ("alice", "bob"):
        user = await sync_to_async(django_user_model.objects.create_user)(name, password="pw")
        client = AsyncClient()
        await client.aforce_login(user)
        clients.append(client)
    alice, bob = clients
    alices = await astreamed(alice)
    assert await astreamed(bob) != alices
    assert await astreamed(alice) == alices


def test_an_async_view_gets_the_users_scope_too(user_scoped: None, django_user_model: Any) -> None:
    alice, user = logged_in(django_user_model, "alice")
    given = answer(alice, "/aask/")
    assert answer(alice, "/ask/") == given  # the sync view reads the entry the async one wrote
    with llm_cache_control(scope=f"user:{user.pk}"):
        assert llm_caches["default"].count_entries() == 1
    assert answer(Client(), "/aask/") != given


def test_deleting_a_user_erases_their_scope_and_keeps_the_others(
    user_scoped: None, django_user_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    alice, alice_user = logged_in(django_user_model, "alice")
    bob, _ = logged_in(django_user_model, "bob")
    alices, bobs = answer(alice), answer(bob)
    pk = alice_user.pk
    with caplog.at_level(logging.INFO, logger="llmcache_django"):
        alice_user.delete()
    assert f"cleared scope 'user:{pk}' (1 entries)" in caplog.text
    assert llm_caches["default"].count_entries() == 1
    assert answer(bob) == bobs
    assert answer(bob) != alices


def test_the_header_is_ignored_unless_the_alias_reads_it(user_scoped: None, django_user_model: Any) -> None:
    alice, _ = logged_in(django_user_model, "alice", "refresh_llm_cache")
    given = answer(alice)
    assert answer(alice, **{"LLM-Cache-Control": "refresh"}) == given


@pytest.mark.parametrize("header", [{"Cache-Control": "no-cache"}, {"LLM-Cache-Control": "sometimes"}])
def test_a_browsers_cache_control_or_a_bad_value_never_refreshes(
    django_user_model: Any, header: dict[str, str]
) -> None:
    with configure(SCOPE="user", REQUEST_DIRECTIVES=HEADER):
        alice, _ = logged_in(django_user_model, "alice", "refresh_llm_cache")
        given = answer(alice)
        assert answer(alice, **header) == given


def test_the_header_is_ignored_without_the_permission(django_user_model: Any, caplog: pytest.LogCaptureFixture) -> None:
    with configure(REQUEST_DIRECTIVES=HEADER):
        bob, _ = logged_in(django_user_model, "bob")
        given = answer(bob)
        with caplog.at_level(logging.DEBUG, logger="llmcache_django"):
            assert answer(bob, **{"LLM-Cache-Control": "refresh"}) == given
        assert "lacks llmcache_django.refresh_llm_cache" in caplog.text
        assert answer(Client(), **{"LLM-Cache-Control": "refresh"}) == given


def test_the_header_is_honoured_with_the_permission(django_user_model: Any) -> None:
    with configure(REQUEST_DIRECTIVES=HEADER):
        alice, _ = logged_in(django_user_model, "alice", "refresh_llm_cache")
        given = answer(alice)
        response = alice.get("/aask/", headers={"LLM-Cache-Control": "refresh"}).json()
        assert response["answer"] != given and response["marker"]["refreshed"] is True
        assert answer(alice) == response["answer"]  # a repeat replays the new answer


def test_reading_cache_control_as_the_directives_header_is_a_settings_error() -> None:
    problems = alias_problems("default", {"OPTIONS": {"REQUEST_DIRECTIVES": {"header": "Cache-Control"}}})
    assert any("never Cache-Control" in problem for problem in problems)
    assert alias_problems("default", {"OPTIONS": {"SCOPE": "tenant"}})


def test_a_stream_the_client_leaves_is_closed_in_the_users_scope(user_scoped: None, django_user_model: Any) -> None:
    from django.http import StreamingHttpResponse
    from django.test import RequestFactory

    from llmcache_django.core.control import current_for
    from llmcache_django.middleware import LLMCacheMiddleware

    seen_at_close: list[str | None] = []

    def view(request: Any) -> StreamingHttpResponse:
        def chunks() -> Any:
            try:
                yield b"first"
                yield b"second"
            finally:  # where a streaming model gives up its flight and records what it had
                given = current_for("default")
                seen_at_close.append(None if given is None else given.scope)

        return StreamingHttpResponse(chunks())

    request = RequestFactory().get("/stream/")
    request.user = django_user_model.objects.create_user("alice", password="pw")
    response = LLMCacheMiddleware(view)(request)
    assert next(iter(response)) == b"first"
    response.close()  # the client went away after one chunk
    assert seen_at_close == [f"user:{request.user.pk}"]
