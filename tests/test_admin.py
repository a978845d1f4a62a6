"""The "LLM cache" admin section through Django's test client, on the embedded database cache
(``LLM_CACHES['default']`` on the ``db`` alias) unless a test says otherwise."""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client, override_settings
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration

from llmcache_django import llm_caches
from llmcache_django.core.cache import LLMCache
from llmcache_django.models import LLMCache as LLMCacheRecord
from tests.helpers import chat_generation

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

pytestmark = pytest.mark.django_db

ADMIN = "admin:llmcache_django_llmcache"


def llm_string(model: str) -> str:
    """An ``llm_string`` as LangChain writes it for a serializable chat model."""
    return f"{{\"lc\": 1, \"type\": \"constructor\"}}---[('_type', 'openai-chat'), ('model_name', '{model}'), ('stop', None)]"


def answer(text: str) -> list[ChatGeneration]:
    return [ChatGeneration(message=AIMessage(content=text))]


def url(page: str, *args: str) -> str:
    return reverse(f"{ADMIN}_{page}", args=args)


def make_staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="llmcache_django", codename__in=codenames)
    )
    return user


def html(response: _MonkeyPatchedWSGIResponse) -> str:
    """The page a response carries (``response.text`` needs Django 5.0)."""
    return response.content.decode()


def client_for(user: User, *, enforce_csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user)
    return client


@pytest.fixture
def cache() -> LLMCache:
    """The default LLM cache (database cache), empty, with its shared counters at zero."""
    cache = llm_caches["default"]
    cache.clear()
    cache.reset_stats()
    return cache


@pytest.fixture
def filled(cache: LLMCache) -> LLMCache:
    """Three entries: two of gpt-4o, one of claude-3."""
    cache.update("What is the capital of France?", llm_string("gpt-4o"), answer("Paris."))
    cache.update("What is the capital of Norway?", llm_string("gpt-4o"), answer("Oslo."))
    cache.update("Write a haiku about caches.", llm_string("claude-3"), answer("Keys hum in the dark"))
    return cache


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def admin_client_(superuser: User) -> Client:
    return client_for(superuser)


def entry_name(cache: LLMCache, prompt: str) -> str:
    return next(info.name for info in cache.entries() if info.prompt == prompt)


def all_pages(cache: LLMCache) -> list[str]:
    name = next(cache.entries()).name
    return [url("changelist"), url("entries", "default"), url("entry", "default", name), url("clear", "default")]


# The section and who may see it


def test_admin_index_has_an_llm_cache_section_linking_to_the_dashboard(admin_client_: Client) -> None:
    response = admin_client_.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "LLM cache" in html(response)
    assert f'href="{url("changelist")}"' in html(response)


def test_the_section_offers_no_add_change_or_delete_of_rows(admin_client_: Client) -> None:
    index = html(admin_client_.get(reverse("admin:index")))
    assert "/admin/llmcache_django/llmcache/add/" not in index
    for name in ("add", "change", "delete", "history"):
        with pytest.raises(NoReverseMatch):
            reverse(f"{ADMIN}_{name}", args=["default"] if name != "add" else [])


def test_anonymous_user_is_sent_to_the_login_page(client: Client, filled: LLMCache) -> None:
    for page in all_pages(filled):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login") + "?next=")
    assert client.post(url("clear", "default")).status_code == 302
    assert filled.count_entries() == 3


def test_staff_without_the_permissions_gets_403_and_no_section_on_the_index(filled: LLMCache) -> None:
    client = client_for(make_staff("nobody"))
    for page in all_pages(filled):
        assert client.get(page).status_code == 403
    assert client.post(url("clear", "default")).status_code == 403
    assert url("changelist") not in html(client.get(reverse("admin:index")))
    assert filled.count_entries() == 3


def test_view_permission_shows_everything_but_clearing_is_forbidden(filled: LLMCache) -> None:
    client = client_for(make_staff("viewer", "view_llmcache"))
    for page in all_pages(filled)[:3]:
        response = client.get(page)
        assert response.status_code == 200
        assert "Clear…" not in html(response) and "Delete…" not in html(response)
    assert url("changelist") in html(client.get(reverse("admin:index")))
    name = entry_name(filled, "What is the capital of France?")
    assert client.get(url("clear", "default")).status_code == 403
    assert client.post(url("clear", "default")).status_code == 403
    assert client.post(url("clear", "default"), {"model": "gpt-4o"}).status_code == 403
    assert client.post(url("delete_entry", "default", name)).status_code == 403
    assert filled.count_entries() == 3
    assert not LogEntry.objects.exists()


def test_clear_permission_alone_can_see_and_clear(filled: LLMCache) -> None:
    client = client_for(make_staff("janitor", "clear_llmcache"))
    assert client.get(url("changelist")).status_code == 200
    assert client.post(url("clear", "default")).status_code == 302
    assert filled.count_entries() == 0


def test_unknown_alias_is_404(admin_client_: Client, cache: LLMCache) -> None:
    assert admin_client_.get(url("entries", "nope")).status_code == 404
    assert admin_client_.get(url("clear", "nope")).status_code == 404


# Clearing


def test_get_on_the_clear_page_shows_what_will_go_and_deletes_nothing(admin_client_: Client, filled: LLMCache) -> None:
    response = admin_client_.get(url("clear", "default"))
    assert response.status_code == 200
    assert "3 entries" in html(response)
    assert escape(filled.store.describe()) in html(response)
    assert filled.backend_name in html(response)
    assert 'method="post"' in html(response)
    by_model = admin_client_.get(url("clear", "default"), {"model": "gpt-4o"})
    assert "2 entries" in html(by_model) and "gpt-4o" in html(by_model)
    assert filled.count_entries() == 3
    assert not LogEntry.objects.exists()


def test_superuser_clears_a_whole_alias_then_sees_a_message_on_the_dashboard(
    admin_client_: Client, superuser: User, filled: LLMCache
) -> None:
    response = admin_client_.post(url("clear", "default"), follow=True)
    assert response.redirect_chain == [(url("changelist"), 302)]
    assert "Deleted 3 entries (all of LLM cache &#x27;default&#x27;)." in html(response)
    assert filled.count_entries() == 0
    log = LogEntry.objects.get()
    assert log.user == superuser
    assert log.action_flag == DELETION
    assert log.content_type == ContentType.objects.get_for_model(LLMCacheRecord)
    assert log.object_id == "default"
    assert log.object_repr == "all of LLM cache 'default' (3 entries)"
    assert log.change_message == "Deleted 3 entries (all of LLM cache 'default')."
    index = admin_client_.get(reverse("admin:index"))
    assert "LLM cache &#x27;default&#x27;" in html(index)  # under "Recent actions", without a link


def test_clearing_one_model_keeps_the_others_and_logs_model_and_count(
    admin_client_: Client, superuser: User, filled: LLMCache
) -> None:
    response = admin_client_.post(url("clear", "default"), {"model": "gpt-4o"})
    assert response.status_code == 302
    assert response["Location"] == url("entries", "default")
    assert [info.model for info in filled.entries()] == ["claude-3"]
    log = LogEntry.objects.get()
    assert log.user == superuser
    assert log.change_message == "Deleted 2 entries (model 'gpt-4o' in LLM cache 'default')."


def test_clear_needs_a_csrf_token(superuser: User, filled: LLMCache) -> None:
    client = client_for(superuser, enforce_csrf_checks=True)
    assert client.post(url("clear", "default")).status_code == 403
    assert filled.count_entries() == 3
    page = html(client.get(url("clear", "default")))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    response = client.post(url("clear", "default"), {"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302
    assert filled.count_entries() == 0


def test_delete_one_entry_after_confirmation(admin_client_: Client, superuser: User, filled: LLMCache) -> None:
    name = entry_name(filled, "What is the capital of France?")
    confirm = admin_client_.get(url("delete_entry", "default", name))
    assert confirm.status_code == 200
    assert "What is the capital of France?" in html(confirm) and "1 entry" in html(confirm)
    assert filled.get_entry(name) is not None
    response = admin_client_.post(url("delete_entry", "default", name))
    assert response.status_code == 302
    assert filled.get_entry(name) is None
    assert filled.count_entries() == 2
    log = LogEntry.objects.get()
    assert (log.user, log.object_id) == (superuser, "default")
    text = "entry “What is the capital of France?” of model 'gpt-4o' in LLM cache 'default'"
    assert log.change_message == f"Deleted 1 entry ({text})."
    assert name not in log.change_message and name not in log.object_repr  # people read the prompt, not the key


def test_clear_on_a_dead_server_says_so_and_logs_nothing(
    admin_client_: Client, filled: LLMCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> None:
        raise ConnectionError("server went away")

    monkeypatch.setattr(filled.store, "clear", fail)
    response = admin_client_.post(url("clear", "default"), follow=True)
    assert "Could not delete all of LLM cache &#x27;default&#x27;: ConnectionError: server went away" in html(response)
    assert not LogEntry.objects.exists()


def test_a_clear_that_fails_part_way_logs_what_went(
    admin_client_: Client, filled: LLMCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    delete = filled.store.delete
    calls: list[str] = []

    def delete_once(name: str) -> bool:
        calls.append(name)
        if len(calls) > 1:
            raise ConnectionError("server went away")
        return delete(name)

    monkeypatch.setattr(filled.store, "delete", delete_once)
    response = admin_client_.post(url("clear", "default"), {"model": "gpt-4o"}, follow=True)
    expected = (
        "LLM cache 'default' (model 'gpt-4o' in LLM cache 'default'): deleted 1 of 2 entries, "
        "then failed: ConnectionError: server went away; the rest are still cached."
    )
    assert escape(expected) in html(response)
    assert LogEntry.objects.get().change_message == expected
    assert filled.count_entries(model="gpt-4o") == 1


# The dashboard


def test_dashboard_counts_entries_and_shows_hits_misses_and_savings(admin_client_: Client, cache: LLMCache) -> None:
    usage = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    chat = GenericFakeChatModel(messages=iter([AIMessage(content="Sunny.", usage_metadata=usage)]), cache=cache)
    chat.invoke("weather in Oslo?")  # miss, then write
    chat.invoke("weather in Oslo?")  # hit: 12 tokens saved
    FakeListChatModel(responses=["Hi!"], cache=cache).invoke("hello")  # miss, then write
    response = admin_client_.get(url("changelist"))
    assert response.status_code == 200
    row = _alias_row(html(response), "default")
    assert re.search(r'llmcache-count">\s*2\s*<', row)
    assert "Django cache (DatabaseCache)" in row and escape(cache.store.describe()) in row
    assert 'llmcache-key-hits">1 hit<' in row and 'llmcache-key-misses">2 misses<' in row
    assert 'llmcache-ratio-value">33%<' in row
    assert ">12<" in row  # tokens saved
    assert "1 h" in row  # TTL 3600 from tests/settings.py
    assert "<svg" in row


def test_dashboard_count_goes_up_after_a_cached_model_call(admin_client_: Client, cache: LLMCache) -> None:
    before = _alias_row(html(admin_client_.get(url("changelist"))), "default")
    assert re.search(r'llmcache-count">\s*0\s*<', before)
    FakeListChatModel(responses=["Hi!"], cache=cache).invoke("hello")
    after = _alias_row(html(admin_client_.get(url("changelist"))), "default")
    assert re.search(r'llmcache-count">\s*1\s*<', after)


@pytest.mark.parametrize("kind", ["alias-django-redis", "alias-pymemcache"])
def test_dashboard_and_entries_on_a_server_alias(
    kind: str, make_llm_cache: Callable[..., LLMCache], superuser: User
) -> None:
    cache = make_llm_cache(kind)
    cache.reset_stats()
    FakeListChatModel(responses=["Paris."], cache=cache).invoke("capital of France?")
    client = client_for(superuser)
    row = _alias_row(html(client.get(url("changelist"))), "default")
    assert cache.backend_name in row and escape(cache.store.describe()) in row
    assert re.search(r'llmcache-count">\s*1\s*<', row)
    assert 'llmcache-key-misses">1 miss<' in row
    entries = html(client.get(url("entries", "default")))
    assert ">capital of France?<" in entries  # the last human message, not "human: ..."
    detail = html(client.get(url("entry", "default", next(cache.entries()).name)))
    assert "Paris." in detail


def test_a_backend_that_cannot_list_says_so_instead_of_showing_zero(admin_client_: Client, tmp_path: Path) -> None:
    file_cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    with override_settings(CACHES={"default": file_cache}, LLM_CACHES={"default": {"TTL": None}}):
        cache = llm_caches["default"]
        chat = FakeListChatModel(responses=["first", "second"], cache=cache)
        assert chat.invoke("hello").content == "first"
        assert not cache.can_list
        row = _alias_row(html(admin_client_.get(url("changelist"))), "default")
        assert "cannot list entries" in row
        assert not re.search(r'llmcache-count">\s*0\s*<', row)
        assert "never expires" in row
        entries = html(admin_client_.get(url("entries", "default")))
        assert "cannot list its keys" in entries and "result_list" not in entries
        confirm = html(admin_client_.get(url("clear", "default")))
        assert "an unknown number of entries" in confirm
        assert admin_client_.get(url("clear", "default"), {"model": "x"}).status_code == 404
        assert admin_client_.post(url("clear", "default")).status_code == 302
        assert chat.invoke("hello").content == "second"  # the cached answer is gone
        assert "unknown number" in LogEntry.objects.get().change_message


def test_one_unreachable_alias_does_not_break_the_dashboard(admin_client_: Client, cache: LLMCache) -> None:
    aliases = {"default": {"CACHE": "db"}, "broken": {"CACHE": "missing"}}
    with override_settings(LLM_CACHES=aliases):
        response = admin_client_.get(url("changelist"))
    assert response.status_code == 200
    assert "Cannot read this cache" in _alias_row(html(response), "broken")
    assert "Django cache (DatabaseCache)" in _alias_row(html(response), "default")


# The entries browser


def test_entries_search_by_prompt_text_any_case(admin_client_: Client, filled: LLMCache) -> None:
    text = html(admin_client_.get(url("entries", "default"), {"q": "CAPITAL"}))
    assert "France" in text and "Norway" in text and "haiku" not in text
    assert "2 entries" in text


def test_entries_filter_by_model(admin_client_: Client, filled: LLMCache) -> None:
    text = html(admin_client_.get(url("entries", "default"), {"model": "claude-3"}))
    assert "haiku" in text and "France" not in text
    assert '<option value="gpt-4o">' in text  # the other models stay selectable
    assert "Clear model claude-3…" in text


def test_entries_sort_by_size_and_by_age(admin_client_: Client, cache: LLMCache) -> None:
    letters = random.Random(7).choices(string.ascii_letters, k=4000)  # barely compressible
    cache.update("small", llm_string("m"), answer("x"))
    cache.update("large", llm_string("m"), answer("".join(letters)))
    cache.update("medium", llm_string("m"), answer("".join(letters[:400])))

    def order(sort: str) -> list[str]:
        text = html(admin_client_.get(url("entries", "default"), {"sort": sort}))
        return re.findall(r'<a href="[^"]+/entry/[0-9a-f]+/">(\w+)</a>', text)

    assert order("largest") == ["large", "medium", "small"]
    assert order("smallest") == ["small", "medium", "large"]
    assert order("newest") == ["medium", "large", "small"]
    assert order("oldest") == ["small", "large", "medium"]


def test_entries_are_paginated_and_pages_keep_the_filters(admin_client_: Client, cache: LLMCache) -> None:
    for number in range(60):
        cache.update(f"question {number}", llm_string("gpt-4o"), answer(f"answer {number}"))
    first = html(admin_client_.get(url("entries", "default"), {"model": "gpt-4o"}))
    assert first.count('class="llmcache-entry"') == 50
    assert "60 entries" in first
    assert "?model=gpt-4o&amp;page=2" in first
    second = html(admin_client_.get(url("entries", "default"), {"model": "gpt-4o", "page": "2"}))
    assert second.count('class="llmcache-entry"') == 10


# One entry


def test_entry_detail_shows_prompt_llm_string_tool_calls_usage_and_ttl(admin_client_: Client, cache: LLMCache) -> None:
    cache.update("Where is Paris?", llm_string("gpt-4o-mini"), [chat_generation("Paris is in France.")])
    name = entry_name(cache, "Where is Paris?")
    response = admin_client_.get(url("entry", "default", name))
    assert response.status_code == 200
    text = html(response)
    assert "Where is Paris?" in text and "Paris is in France." in text
    assert "model_name = &#x27;gpt-4o-mini&#x27;" in text  # one parameter per line
    assert "lookup_city" in text and "call_1" in text and "&quot;limit&quot;: 3" in text  # tool call
    assert "broken" in text and "invalid: bad json" in text  # invalid tool call
    assert "total_tokens" in text and ">42<" in text  # usage
    assert re.search(r'llmcache-ttl-left">(59 min|1 h)<', text)
    assert "Delete…" in text


def test_entry_detail_of_a_missing_entry_is_404(admin_client_: Client, cache: LLMCache) -> None:
    assert admin_client_.get(url("entry", "default", "0" * 64)).status_code == 404


def _alias_row(page: str, alias: str) -> str:
    match = re.search(rf'<tr class="llmcache-alias" data-alias="{alias}">(.*?)</tr>', page, re.S)
    assert match, f"no dashboard row for alias {alias!r}"
    return match.group(1)


def test_entries_filter_by_scope(admin_client_: Client, cache: LLMCache) -> None:
    from langchain_core.outputs import Generation

    from llmcache_django import llm_cache_control

    cache.update("shared question", "model=a", [Generation(text="unscoped")])
    with llm_cache_control(scope="user:42"):
        cache.update("question of user 42", "model=a", [Generation(text="scoped")])
    text = html(admin_client_.get(url("entries", "default"), {"scope": "user:42"}))
    assert "question of user 42" in text and "shared question" not in text
    assert 'value="user:42"' in text
    everything = html(admin_client_.get(url("entries", "default"), {"scope": "bad\tscope"}))
    assert "shared question" in everything  # not a scope: no filter, no error
