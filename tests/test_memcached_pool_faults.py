"""Kill one memcached server of three under a steady load of real LangChain model calls."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from langchain_core.language_models import FakeListLLM

from llmcache_django import llm_caches
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest
from llmcache_django.stores.memcached_clients import fast_rendezvous_hash
from tests import servers
from tests.helpers import wait_until
from tests.test_memcached_pool import QUICK, pool, pool_alias, restart

__all__ = ["pool"]  # the fixture, used by name
WORKERS = 4
PROMPTS = 60
#: Model calls the load makes while the node is down, and again once it is back.
FAULT_CALLS = 200


@dataclass
class Load:
    """Model calls from a few threads: known prompts (hits) and new ones (misses)."""

    cache: LLMCache
    calls: list[tuple[float, float]] = field(default_factory=list)  # (started, seconds)
    failures: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> Iterator[None]:
        threads = [threading.Thread(target=self._work, args=(seed,)) for seed in range(WORKERS)]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()

    def _work(self, seed: int) -> None:
        model = FakeListLLM(responses=["an answer"], cache=self.cache)
        chooser = random.Random(seed)
        fresh = 0
        while not self.stop.is_set():
            fresh += 1
            prompt = f"question {chooser.randrange(PROMPTS)}" if chooser.random() < 0.7 else f"new {seed} {fresh}"
            started = time.monotonic()
            try:
                model.invoke(prompt)
            except BaseException as exc:  # any failure reaching the caller is the bug we look for
                self.failures.append(exc)
            self.calls.append((started, time.monotonic() - started))
            time.sleep(0.002)

    def calls_since(self, moment: float) -> int:
        return sum(1 for started, _ in list(self.calls) if started >= moment)

    def longest_since(self, moment: float) -> float:
        return max((seconds for started, seconds in self.calls if started >= moment), default=0.0)


@pytest.mark.parametrize("victim", [0, 2])
def test_killing_one_memcached_of_three_fails_no_model_call_and_hits_resume_when_it_is_back(
    pool: list[servers.Server], victim: int
) -> None:
    with pool_alias(pool, **QUICK) as cache:  # dead-node handling in seconds, not production's 10-20 s
        hasher = fast_rendezvous_hash()()
        for server in pool:
            hasher.add_node(server.location)
        on_victim = [
            f"question {index}"
            for index in range(PROMPTS)
            if hasher.get_node(cache.store.key(entry_digest(f"question {index}", llm_string())))
            == pool[victim].location  # type: ignore[attr-defined]
        ]
        load = Load(cache)
        running = load.run()
        next(running)
        try:
            known = llm_string()
            wait_until(
                lambda: all(cache.lookup(prompt, known) for prompt in on_victim), 60, "the victim's prompts cached"
            )
            killed = time.monotonic()
            pool[victim].stop()
            # The fault lasts until the pool marked the node down and the load made calls against it.
            wait_until(lambda: pool[victim].location in cache.store.unreachable_nodes(), 60, "the node marked down")
            wait_until(lambda: load.calls_since(killed) >= FAULT_CALLS, 60, "calls during the fault")
            restart(pool, victim)
            back = time.monotonic()

            def hits_on_the_returned_server() -> bool:
                found = [cache.lookup(prompt, known) is not None for prompt in on_victim[:3]]
                return not cache.store.unreachable_nodes() and all(found)

            wait_until(hits_on_the_returned_server, 60, "hits on the returned server")  # within 2 x dead_timeout
            resumed = time.monotonic()
            wait_until(lambda: load.calls_since(resumed) >= FAULT_CALLS, 60, "calls after the node came back")
        finally:
            running.close()  # the load stops (its threads joined) even when a wait above failed
    assert load.failures == []
    assert on_victim  # the killed server held some of the prompts
    print(
        f"\n3-node memcached, node {victim} killed for {back - killed:.1f} s under {WORKERS} threads: "
        f"{len(load.calls)} model calls, 0 failed; longest call during the fault "
        f"{load.longest_since(killed) * 1000:.1f} ms; hits on the restarted node resumed {resumed - back:.2f} s after "
        "it was back"
    )


def llm_string() -> str:
    """The ``llm_string`` FakeListLLM(responses=["an answer"]) looks up under."""
    found: list[str] = []

    class Recorder(LLMCache):
        def lookup(self, prompt: str, llm_string: str) -> None:  # type: ignore[override]
            found.append(llm_string)

    FakeListLLM(responses=["an answer"], cache=Recorder(llm_caches["default"].store, stats=False)).invoke("x")
    return found[0]
