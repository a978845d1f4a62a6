"""Counts reach the shared counters whatever stops the process: SIGTERM under uvicorn, an idle
worker, ASGI lifespan shutdown, a SIGTERM'd plain Python process; its leases are given up.

The uvicorn tests run ``tests/stats_server.py`` under real uvicorn in a subprocess, on the
session's redis-server or memcached, and read the shared counters from this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings
from langchain_core.language_models import FakeListChatModel
from pymemcache.client.base import PooledClient

from llmcache_django import MemcachedLLMCache, RedisLLMCache
from llmcache_django.asgi import with_cache_lifespan
from llmcache_django.core import flusher, stats
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.exit_flush import flush_all
from llmcache_django.stores.base import LEASE_DONE
from tests import servers

ROOT = Path(__file__).resolve().parent.parent
#: Deadline for a server to start or stop, and for counts to arrive (met within seconds when all is well).
DEADLINE = 60.0
#: Three questions asked three times each: 3 misses (and writes), then 6 hits.
QUESTIONS = ["question 0", "question 1", "question 2"] * 3
EXPECTED = (6, 3, 3)
#: A flush interval no test outlasts: only the shutdown paths can share the counts.
NEVER = "3600"


def cache_settings(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    server = request.getfixturevalue(f"{kind}_server")
    if kind == "redis":
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.url}
    return {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": server.location}


def shared_counts(cache: dict[str, Any], namespace: str) -> tuple[int, int, int]:
    """``(hits, misses, writes)`` of the shared counters, read from this process."""
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, "llm": cache},
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": namespace}},
    ):
        from llmcache_django import llm_caches

        counters = llm_caches["default"].shared_stats()
    return counters["hits"], counters["misses"], counters["writes"]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.05)


class Site:
    """``tests.stats_server`` under uvicorn on a free port: ``workers`` worker processes
    (with 2 or more, a supervisor process sends each one SIGTERM when it gets it)."""

    def __init__(self, cache: dict[str, Any], namespace: str, log: Path, workers: int = 1, **env: str) -> None:
        self.port = servers.free_port()
        self.log = log
        environment = {
            **os.environ,
            "LLMCACHE_TEST_CACHE": json.dumps(cache),
            "LLMCACHE_TEST_NAMESPACE": namespace,
            **env,
        }
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        argv = [sys.executable, "-m", "uvicorn", "tests.stats_server:application", "--port", str(self.port)]
        argv += ["--workers", str(workers)]
        with log.open("wb") as output:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=output, stderr=output)
        wait_for(self._listening, f"uvicorn on port {self.port} ({self._log_text()})")

    def ask(self, view: str, question: str) -> str:
        url = f"http://127.0.0.1:{self.port}/ask/{view}?q={question.replace(' ', '+')}"
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return str(response.read().decode())

    def stop(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the process to end; its return code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=DEADLINE)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)

    def _listening(self) -> bool:
        assert self.process.poll() is None, f"uvicorn exited: {self._log_text()}"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5).close()
        except urllib.error.HTTPError:
            return True  # a 404: it answers
        except OSError:
            return False
        return True

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def start(cache: dict[str, Any], namespace: str, workers: int = 1, **env: str) -> Site:
        sites.append(Site(cache, namespace, tmp_path / f"uvicorn-{len(sites)}.log", workers, **env))
        return sites[-1]

    yield start
    for site in sites:
        site.kill()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("view", ["async", "sync"])
@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_uvicorn_stopped_with_sigterm_has_shared_every_count(
    kind: str, view: str, workers: int, request: pytest.FixtureRequest, site_factory: Callable[..., Site]
) -> None:
    """How systemd, Kubernetes and ``docker stop`` stop it: uvicorn re-raises SIGTERM, no atexit.

    One worker: uvicorn loads the application (our handler goes in) before it takes the
    signals over, and re-raises SIGTERM into our handler at the end. Several: each worker
    loads it after, so ours runs first and hands on to uvicorn's."""
    cache, namespace = cache_settings(kind, request), f"term{uuid.uuid4().hex[:8]}"
    site = site_factory(cache, namespace, workers, LLMCACHE_TEST_FLUSH_SECONDS=NEVER)
    assert [site.ask(view, question) for question in QUESTIONS] == ["an answer"] * 9
    returncode = site.stop(signal.SIGTERM)
    if workers == 1:
        assert returncode == -signal.SIGTERM  # it still dies of the signal, as before
    assert shared_counts(cache, namespace) == EXPECTED


def test_a_request_uvicorn_lets_finish_after_sigterm_is_counted_too(
    request: pytest.FixtureRequest, site_factory: Callable[..., Site], tmp_path: Path
) -> None:
    """SIGTERM while a model call is running: uvicorn lets it finish, and its counts are shared
    (two workers: each re-raises SIGTERM with the default handler back, after ours ran)."""
    cache, namespace = cache_settings("redis", request), f"late{uuid.uuid4().hex[:8]}"
    gate = tmp_path / "gate"
    site = site_factory(cache, namespace, 2, LLMCACHE_TEST_FLUSH_SECONDS=NEVER, LLMCACHE_TEST_GATE=str(gate))
    for question in QUESTIONS:
        site.ask("async", question)
    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(site.ask, "gated", "a late question")
        wait_for(Path(f"{gate}.in").exists, "the gated model call")
        site.process.send_signal(signal.SIGTERM)
        wait_for(lambda: site.log.read_text().count("Shutting down") == 2, "both workers' graceful shutdown")
        gate.touch()
        assert late.result(timeout=DEADLINE) == "a late answer"
    site.process.wait(timeout=DEADLINE)
    assert shared_counts(cache, namespace) == (6, 4, 4)


def test_uvicorn_with_the_cache_lifespan_stopped_with_sigterm_has_shared_every_count(
    request: pytest.FixtureRequest, site_factory: Callable[..., Site]
) -> None:
    cache, namespace = cache_settings("redis", request), f"life{uuid.uuid4().hex[:8]}"
    site = site_factory(cache, namespace, LLMCACHE_TEST_FLUSH_SECONDS=NEVER, LLMCACHE_TEST_LIFESPAN="1")
    for question in QUESTIONS:
        site.ask("async", question)
    assert site.stop(signal.SIGTERM) == -signal.SIGTERM
    assert shared_counts(cache, namespace) == EXPECTED
    assert "lifespan" not in site.log.read_text().lower().replace("lifespan.", "")  # no "unsupported" warning


@pytest.mark.parametrize("view", ["async", "sync"])
@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_an_idle_uvicorn_worker_shares_its_last_counts_within_seconds(
    kind: str, view: str, request: pytest.FixtureRequest, site_factory: Callable[..., Site]
) -> None:
    cache, namespace = cache_settings(kind, request), f"idle{uuid.uuid4().hex[:8]}"
    site = site_factory(cache, namespace)
    for question in QUESTIONS:
        site.ask(view, question)
    # No request, no lookup from now on: the counts arrive by themselves.
    wait_for(lambda: shared_counts(cache, namespace) == EXPECTED, "the idle worker's counts", seconds=15)


def test_the_cache_lifespan_shutdown_flushes_counts_and_gives_up_leases(
    redis_server: servers.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "FLUSH_SECONDS", float(NEVER))
    cache = RedisLLMCache(redis.Redis(port=redis_server.port), namespace=f"asgi{uuid.uuid4().hex[:8]}")
    leader = RedisLLMCache(
        redis.Redis(port=redis_server.port), namespace=f"asgi{uuid.uuid4().hex[:8]}", single_flight=True
    )
    model = FakeListChatModel(responses=["an answer"], cache=cache)
    for question in QUESTIONS:
        model.invoke(question)
    assert leader.lookup("a prompt", "an llm") is None  # a miss: this process now leads, holding a lease
    assert lease_keys(leader)

    run_lifespan()
    assert raw_counts(cache) == EXPECTED
    assert lease_keys(leader) == []


def run_lifespan() -> None:
    """Drive :func:`with_cache_lifespan` through startup and shutdown, as an ASGI server does."""

    async def django_application(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("lifespan events are not Django's")

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(with_cache_lifespan(django_application)({"type": "lifespan"}, receive, send))
    assert [message["type"] for message in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def lease_keys(cache: LLMCache) -> list[bytes]:
    """The single-flight leases held on ``cache``'s Redis (not the finished ones, kept a moment as "done")."""
    client = redis.Redis(port=cache.store.client.connection_pool.connection_kwargs["port"])  # type: ignore[attr-defined]
    keys = client.scan_iter(match=f"{cache.store.prefix}lease:*")  # type: ignore[attr-defined]
    return [key for key in keys if client.get(key) not in (None, LEASE_DONE)]


PLAIN_PROCESS = """
import sys, threading
from langchain_core.language_models import FakeListChatModel
from llmcache_django.core import flusher, stats
stats.FLUSH_SECONDS = {never}
{build}

class Stuck(FakeListChatModel):
    def _call(self, *args, **kwargs):
        print("in the model", flush=True)
        threading.Event().wait()  # a model call still running when SIGTERM comes

model = FakeListChatModel(responses=["an answer"], cache=cache)
for index in range(100):
    model.invoke(f"question {{index % 10}}")  # 10 misses, then 90 hits
Stuck(responses=["never"], cache=cache).invoke("a question nobody answers")
"""


def plain_builders(namespace: str) -> dict[str, tuple[str, Callable[[servers.Server], LLMCache]]]:
    return {
        "redis": (
            "import redis; from llmcache_django import RedisLLMCache; "
            "cache = RedisLLMCache(redis.Redis(port={port}), namespace={namespace!r}, single_flight=True)",
            lambda server: RedisLLMCache(redis.Redis(port=server.port), namespace=namespace),
        ),
        "memcached": (
            "from pymemcache.client.base import PooledClient; from llmcache_django import MemcachedLLMCache; "
            "cache = MemcachedLLMCache(PooledClient(('127.0.0.1', {port})), namespace={namespace!r}, "
            "single_flight=True)",
            lambda server: MemcachedLLMCache(PooledClient(("127.0.0.1", server.port)), namespace=namespace),
        ),
    }


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_plain_python_process_stopped_with_sigterm_shares_its_counts_and_gives_up_its_lease(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """A worker with no SIGTERM handler of its own (Celery-like, without Celery): it still dies
    of the signal, after its counts are shared and the lease of its unfinished call is gone."""
    server = request.getfixturevalue(f"{kind}_server")
    namespace = f"plain{uuid.uuid4().hex[:8]}"
    build_code, build = plain_builders(namespace)[kind]
    script = PLAIN_PROCESS.format(never=NEVER, build=build_code.format(port=server.port, namespace=namespace))
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "in the model\n"
        cache = build(server)
        if kind == "redis":
            assert len(lease_keys(cache)) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == -signal.SIGTERM
    finally:
        process.kill()
        process.wait()
    counts = cache.shared_stats()
    assert (counts["hits"], counts["misses"], counts["writes"]) == (90, 11, 10)
    if kind == "redis":
        assert lease_keys(cache) == []


def raw_counts(cache: LLMCache) -> tuple[int, int, int]:
    """``(hits, misses, writes)`` as stored, read without flushing this process's counts first."""
    counters = cache.store.read_counters(["hits", "misses", "writes"])
    return counters["hits"], counters["misses"], counters["writes"]


def settled_counts(cache: LLMCache) -> tuple[int, int, int]:
    """:func:`raw_counts` once every cache of this process has shared its counts: the compat
    classes' counters are shared by the whole run, other tests' caches included."""
    flush_all()
    return raw_counts(cache)


def counts_since(before: tuple[int, int, int], cache: LLMCache) -> tuple[int, int, int]:
    now = raw_counts(cache)
    return now[0] - before[0], now[1] - before[1], now[2] - before[2]


def ask_nine_times(cache: LLMCache, *, asynchronous: bool) -> None:
    model = FakeListChatModel(responses=["an answer"], cache=cache)
    if asynchronous:

        async def ask() -> None:
            for question in QUESTIONS:
                await model.ainvoke(question)

        asyncio.run(ask())
    else:
        for question in QUESTIONS:
            model.invoke(question)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_an_idle_process_shares_its_last_counts_within_seconds_on_every_kind(
    llm_cache: LLMCache, asynchronous: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The production periods (a flush due after 1 s, looked for every 1 s) shortened: the
    # test is about the thread flushing an idle process's counts, not about how often.
    monkeypatch.setattr(stats, "FLUSH_SECONDS", 0.2)
    monkeypatch.setattr(flusher, "TICK_SECONDS", 0.1)
    before = settled_counts(llm_cache)
    ask_nine_times(llm_cache, asynchronous=asynchronous)
    wait_for(lambda: counts_since(before, llm_cache) == EXPECTED, "the idle process's counts", seconds=15)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_cache_lifespan_shutdown_shares_the_counts_on_every_kind(
    llm_cache: LLMCache, asynchronous: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "FLUSH_SECONDS", float(NEVER))
    before = settled_counts(llm_cache)
    ask_nine_times(llm_cache, asynchronous=asynchronous)
    assert counts_since(before, llm_cache) == (0, 0, 0)
    run_lifespan()
    assert counts_since(before, llm_cache) == EXPECTED


FORKING_PROCESS = """
import os, sys, threading
from langchain_core.language_models import FakeListChatModel
import redis
from llmcache_django import RedisLLMCache
cache = RedisLLMCache(redis.Redis(port={port}), namespace={namespace!r})
model = FakeListChatModel(responses=["an answer"], cache=cache)
model.invoke("asked before the fork")  # the parent's flusher thread is running now
child = os.fork()
if child == 0:
    for question in {questions!r}:
        model.invoke(question)
    print("asked", flush=True)
    threading.Event().wait()  # idle until SIGKILL: no exit, no atexit
os.waitpid(child, 0)
"""


def test_a_forked_child_shares_its_counts_from_its_own_flusher_thread(
    redis_server: servers.Server,
) -> None:
    """gunicorn --preload: the parent's thread does not survive fork; the child starts its own."""
    namespace = f"fork{uuid.uuid4().hex[:8]}"
    script = FORKING_PROCESS.format(port=redis_server.port, namespace=namespace, questions=QUESTIONS)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    cache = RedisLLMCache(redis.Redis(port=redis_server.port), namespace=namespace)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "asked\n"
        # The parent's miss and write, and the child's 9 lookups, while both sit idle.
        wait_for(lambda: raw_counts(cache) == (6, 4, 4), "the parent's and the child's counts", seconds=15)
    finally:
        for pid in children_of(process.pid):
            os.kill(pid, signal.SIGKILL)  # no exit flush: its counts came from its flusher thread
        process.kill()
        process.wait()


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []
