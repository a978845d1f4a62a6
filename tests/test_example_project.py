"""The example project a newcomer runs with `make demo`, on each kind of LLM cache."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import AsyncClient, Client
from pytest_django import Settings

from example_project import local_servers
from example_project.backends import backend_from_environ, llm_cache_settings
from example_project.demo.chat import chat_model
from example_project.demo.local_model import LocalChatModel
from llmcache_django import llm_caches
from tests.servers import Server, free_port

PROMPT = "Which Django cache should hold my LLM answers?"
CACHE_CLASSES = {"database": "DjangoLLMCache", "redis": "RedisLLMCache", "memcached": "MemcachedLLMCache"}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def example_site(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The example project's URLs and demo app, with the local model answering at once."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "example_project.demo"]
    settings.ROOT_URLCONF = "example_project.urls"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "llmcache_django.middleware.LLMCacheMiddleware"]
    settings.LLMCACHE_DEMO_LATENCY = 0
    return settings


@pytest.fixture(params=["database", "redis", "memcached"])
def demo_backend(request: pytest.FixtureRequest, example_site: Settings) -> str:
    """The example project's LLM cache on each backend, empty, as `make demo*` sets it up."""
    backend = str(request.param)
    url = {
        "database": lambda: None,
        "redis": lambda: request.getfixturevalue("redis_server").url,
        "memcached": lambda: request.getfixturevalue("memcached_server").location,
    }[backend]()
    example_site.CACHES, example_site.LLM_CACHES = llm_cache_settings(backend, url)
    if backend == "database":
        call_command("createcachetable", verbosity=0)
    llm_caches["default"].clear()
    return backend


def test_second_ask_is_a_cache_hit_and_the_model_is_not_called_again(demo_backend: str) -> None:
    client = Client()
    first = client.post("/", {"prompt": PROMPT})
    second = client.post("/", {"prompt": PROMPT})

    assert first.context["answer"].cache_hit is False
    assert second.context["answer"].cache_hit is True
    assert second.context["answer"].text == first.context["answer"].text
    assert "Cache hit" in second.content.decode()
    assert _local_model().calls == 1
    assert type(llm_caches["default"]).__name__ == CACHE_CLASSES[demo_backend]
    assert llm_caches["default"].stats.snapshot()["hits"] == 1  # type: ignore[union-attr]


async def test_async_view_second_ask_is_a_cache_hit_without_a_model_call(demo_backend: str) -> None:
    client = AsyncClient()
    first = await client.post("/async/", {"prompt": PROMPT})
    second = await client.post("/async/", {"prompt": PROMPT})

    assert first.context["answer"].cache_hit is False
    assert second.context["answer"].cache_hit is True
    assert second.context["view"] == "async"
    assert _local_model().calls == 1


def test_sync_and_async_views_share_the_cache(demo_backend: str) -> None:
    client = Client()
    client.post("/", {"prompt": PROMPT})
    from_async = client.post("/async/", {"prompt": PROMPT})

    assert from_async.context["answer"].cache_hit is True
    assert _local_model().calls == 1


def test_tokens_saved_add_up_the_answers_served_from_the_cache(demo_backend: str) -> None:
    client = Client()
    first = client.post("/", {"prompt": PROMPT})
    client.post("/", {"prompt": PROMPT})
    third = client.post("/", {"prompt": PROMPT})

    answer_tokens = first.context["answer"].total_tokens
    assert answer_tokens > 0
    assert first.context["tokens_saved"] == 0
    assert third.context["tokens_saved"] == 2 * answer_tokens


def test_a_streamed_answer_streams_live_then_replays_from_the_cache(demo_backend: str) -> None:
    client = Client()
    first = read_events(b"".join(client.post("/stream/", {"prompt": PROMPT}).streaming_content))
    second = read_events(b"".join(client.post("/stream/", {"prompt": PROMPT}).streaming_content))

    assert first.done["cache_hit"] is False
    assert second.done["cache_hit"] is True
    assert first.text == second.text == first.done["text"]
    assert len(first.tokens) > 1 and len(second.tokens) > 1  # token by token, both times
    assert second.done["tokens_saved"] == second.done["total_tokens"] > 0
    assert _local_model().calls == 1


async def test_async_stream_view_replays_from_the_cache_without_a_model_call(demo_backend: str) -> None:
    client = AsyncClient()
    first = read_events(await _async_body(await client.post("/async/stream/", {"prompt": PROMPT})))
    second = read_events(await _async_body(await client.post("/async/stream/", {"prompt": PROMPT})))

    assert (first.done["cache_hit"], second.done["cache_hit"]) == (False, True)
    assert second.text == first.text
    assert _local_model().calls == 1


def test_an_answer_asked_with_the_form_is_replayed_by_the_stream(demo_backend: str) -> None:
    client = Client()
    posted = client.post("/", {"prompt": PROMPT}).context["answer"]
    streamed = read_events(b"".join(client.post("/stream/", {"prompt": PROMPT}).streaming_content))

    assert streamed.done["cache_hit"] is True
    assert streamed.text == posted.text


def test_metrics_page_counts_the_demo_s_hits_and_misses(demo_backend: str) -> None:
    client = Client()
    before = _scrape(client)
    client.post("/", {"prompt": PROMPT})
    client.post("/", {"prompt": PROMPT})
    after = _scrape(client)

    assert after["llmcache_hits"] - before.get("llmcache_hits", 0) == 1
    assert after["llmcache_misses"] - before.get("llmcache_misses", 0) == 1


def _scrape(client: Client) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        family.name: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("alias") == "default"
    }


def test_stream_view_refuses_an_empty_prompt(example_site: Settings) -> None:
    assert Client().post("/stream/", {"prompt": ""}).status_code == 400
    assert Client().get("/stream/").status_code == 405


def test_page_offers_the_prompt_box_both_views_and_the_admin_link(example_site: Settings) -> None:
    page = Client().get("/").content.decode()

    assert 'name="prompt"' in page
    assert 'formaction="/async/"' in page
    assert 'href="/admin/' in page
    assert "(local, no API key)" in page


def test_local_model_answers_the_same_prompt_the_same_way() -> None:
    model = LocalChatModel(latency=0, cache=False)
    first, second = model.invoke(PROMPT), model.invoke(PROMPT)

    assert first.content == second.content
    assert first.usage_metadata == second.usage_metadata
    assert first.response_metadata["model_name"] == "llmcache-demo-local"
    assert model.invoke("Something else entirely").content != first.content


def test_local_model_latency_does_not_change_the_cache_key() -> None:
    slow, fast = LocalChatModel(latency=2), LocalChatModel(latency=0)

    assert slow._get_llm_string() == fast._get_llm_string()


def test_ensure_demo_superuser_creates_demo_only_when_no_superuser_exists(
    example_site: Settings,
) -> None:
    first, second = StringIO(), StringIO()
    call_command("ensure_demo_superuser", stdout=first)
    call_command("ensure_demo_superuser", stdout=second)

    assert "Created superuser 'demo' with password 'demo'" in first.getvalue()
    assert "local use only" in first.getvalue()
    assert "no demo superuser created" in second.getvalue()
    assert get_user_model()._default_manager.filter(is_superuser=True).count() == 1


def test_ensure_demo_superuser_also_creates_a_guest_user_once(example_site: Settings) -> None:
    first, second = StringIO(), StringIO()
    call_command("ensure_demo_superuser", stdout=first)
    call_command("ensure_demo_superuser", stdout=second)

    assert "Created user 'guest' with password 'guest'" in first.getvalue()
    assert "User 'guest' exists already." in second.getvalue()
    guest = get_user_model()._default_manager.get(username="guest")
    assert guest.check_password("guest") and not guest.is_staff


def signed_in(username: str) -> Client:
    """A client signed in on the demo's login page as one of the demo users."""
    client = Client()
    response = client.post("/login/", {"username": username, "password": username})
    assert response.status_code == 302 and response.url == "/"
    return client


def test_two_demo_users_get_separate_entries_for_the_same_prompt(demo_backend: str) -> None:
    call_command("ensure_demo_superuser", stdout=StringIO())
    users = get_user_model()._default_manager
    demo, guest, anonymous = signed_in("demo"), signed_in("guest"), Client()
    demos = demo.post("/", {"prompt": PROMPT}).context["answer"]
    guests = read_events(b"".join(guest.post("/stream/", {"prompt": PROMPT}).streaming_content)).done
    anonymous_answer = anonymous.post("/", {"prompt": PROMPT}).context["answer"]
    assert (demos.cache_hit, guests["cache_hit"], anonymous_answer.cache_hit) == (False, False, False)
    assert _local_model().calls == 3  # the same prompt, three scopes: three model calls

    again = demo.post("/", {"prompt": PROMPT})
    assert again.context["answer"].cache_hit is True
    assert again.context["answer"].scope == f"user:{users.get(username='demo').pk}"
    assert f"scope user:{users.get(username='demo').pk}" in again.content.decode()
    guests_again = read_events(b"".join(guest.post("/stream/", {"prompt": PROMPT}).streaming_content)).done
    assert (guests_again["cache_hit"], guests_again["scope"]) == (True, f"user:{users.get(username='guest').pk}")
    unscoped = anonymous.post("/", {"prompt": PROMPT})
    assert unscoped.context["answer"].scope is None and "unscoped" in unscoped.content.decode()
    assert _local_model().calls == 3
    if llm_caches["default"].can_list:
        assert sorted(info.scope or "" for info in llm_caches["default"].entries()) == sorted(
            ["", f"user:{users.get(username='demo').pk}", f"user:{users.get(username='guest').pk}"]
        )
    llm_caches["default"].flush_stats()


def test_the_page_says_who_is_signed_in_and_which_scope_their_answers_use(demo_backend: str) -> None:
    call_command("ensure_demo_superuser", stdout=StringIO())
    page = signed_in("guest").get("/").content.decode()
    guest = get_user_model()._default_manager.get(username="guest")
    assert "Signed in as <strong>guest</strong>" in page and f"<code>user:{guest.pk}</code>" in page
    assert "Not signed in: answers are cached unscoped" in Client().get("/").content.decode()


def test_demo_backend_comes_from_the_environment() -> None:
    assert backend_from_environ({}) == ("database", "llm_cache_table")
    assert backend_from_environ(
        {"LLMCACHE_DEMO_BACKEND": "redis", "LLMCACHE_DEMO_REDIS_URL": "redis://10.0.0.1:6380/2"}
    ) == ("redis", "redis://10.0.0.1:6380/2")
    assert backend_from_environ({"LLMCACHE_DEMO_BACKEND": "memcached"}) == (
        "memcached",
        "127.0.0.1:11211",
    )


def test_unknown_demo_backend_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"LLMCACHE_DEMO_BACKEND='mongo'.*database"):
        backend_from_environ({"LLMCACHE_DEMO_BACKEND": "mongo"})


def test_memcached_url_may_carry_a_scheme() -> None:
    caches, _ = llm_cache_settings("memcached", "memcached://127.0.0.1:11311")

    assert caches["llm"]["LOCATION"] == "127.0.0.1:11311"


def test_demo_reuses_a_redis_server_that_already_answers(
    redis_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local_servers.ensure_server("redis", redis_server.port) == 0
    assert "already running" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["redis", "memcached"])
def test_demo_stop_stops_the_server_the_demo_started(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local_servers, "RUN_DIR", tmp_path / "run")
    kind, port = local_servers.KINDS[name], free_port()
    try:
        assert local_servers.ensure_server(name, port) == 0
        assert "make demo-stop" in capsys.readouterr().out
        assert local_servers.responds(kind, port)

        assert local_servers.stop_servers() == 0

        assert f"Stopped {kind.binary} on 127.0.0.1:{port}" in capsys.readouterr().out
        assert not local_servers.responds(kind, port)
        assert list((tmp_path / "run").iterdir()) == []
    finally:
        _kill_if_running(local_servers.pidfile(kind.binary, port))


def test_demo_stop_leaves_a_server_it_did_not_start(
    redis_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local_servers, "RUN_DIR", tmp_path / "run")
    assert local_servers.ensure_server("redis", redis_server.port) == 0

    assert local_servers.stop_servers() == 0

    assert "No server started by make demo-redis" in capsys.readouterr().out
    assert local_servers.responds(local_servers.KINDS["redis"], redis_server.port)


def test_demo_stop_ignores_a_pid_file_whose_process_is_another_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local_servers, "RUN_DIR", tmp_path)
    (tmp_path / "redis-server-6399.pid").write_text(str(os.getpid()))  # this test process: not a redis-server

    assert local_servers.stop_servers() == 0

    assert not (tmp_path / "redis-server-6399.pid").exists()
    assert "No server started by make demo-redis" in capsys.readouterr().out


def _kill_if_running(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_demo_names_the_package_when_the_server_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    closed_port = 1  # nothing answers on tcpmux

    assert local_servers.ensure_server("memcached", closed_port) == 1
    assert "sudo apt-get install memcached" in capsys.readouterr().err


@dataclass
class Events:
    """A Server-Sent Events response, read."""

    tokens: list[str]
    done: dict[str, Any]

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def read_events(body: bytes) -> Events:
    """The `token` texts and the `done` event of a stream view's response."""
    tokens, done = [], {}
    for raw in body.decode().strip().split("\n\n"):
        name, data = (line.split(": ", 1)[1] for line in raw.splitlines())
        if name == "token":
            tokens.append(json.loads(data)["text"])
        else:
            done = json.loads(data)
    return Events(tokens, done)


async def _async_body(response: Any) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


def _local_model() -> LocalChatModel:
    model = chat_model()
    assert isinstance(model, LocalChatModel)
    return model


def test_regenerate_asks_the_model_again_and_a_repeat_replays_the_new_answer(demo_backend: str) -> None:
    client = Client()
    client.post("/", {"prompt": PROMPT})
    regenerated = client.post("/", {"prompt": PROMPT, "regenerate": "1"})
    repeated = client.post("/", {"prompt": PROMPT})

    assert regenerated.context["answer"].refreshed is True
    assert regenerated.context["answer"].cache_hit is False
    assert "Regenerated" in regenerated.content.decode()
    assert repeated.context["answer"].cache_hit is True
    assert repeated.context["answer"].text == regenerated.context["answer"].text
    assert _local_model().calls == 2
    llm_caches["default"].flush_stats()  # this test's counts are not left for the next one's flusher


def test_regenerate_from_the_stream_views_refreshes_too(demo_backend: str) -> None:
    client = Client()
    read_events(b"".join(client.post("/stream/", {"prompt": PROMPT}).streaming_content))
    regenerated = read_events(
        b"".join(client.post("/stream/", {"prompt": PROMPT, "regenerate": "1"}).streaming_content)
    )
    assert regenerated.done["cache_hit"] is False
    assert _local_model().calls == 2
    assert client.post("/", {"prompt": PROMPT}).context["answer"].cache_hit is True
    llm_caches["default"].flush_stats()
