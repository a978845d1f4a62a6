"""Many threads calling real models on every kind of cache in one process.

``python -m tests.thread_worker`` reads its spec as JSON on stdin::

    {"seconds": 5, "threads": 8, "directory": "/tmp/...",
     "aliases": {"alias-locmem": {CACHES entry}, ...},      # built through LLM_CACHES
     "direct": {"redis": "redis://127.0.0.1:6379/0", ...}}   # built by tests.builders

Each thread loops until the time is up over every cache and a dozen prompts, mostly with
``invoke`` and every fourth round with four ``ainvoke`` at once on the thread's own event loop.
Answers are ~2.7 KB, so compressed entries are written and read from every thread at once.
It prints one JSON line (calls, hits and wrong answers per kind) and exits 0 when every
answer was right; a crash (a segmentation fault) is the process's exit code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

PROMPTS = [f"question {index}" for index in range(12)]
#: The prompts asked once before the threads start; the others are written from the threads.
WARMED = 6
#: The table of the ``alias-database`` kind, in a SQLite file of the spec's directory.
DATABASE_TABLE = "llmcache_thread_worker"


def answer_for(prompt: str) -> str:
    """The one right answer to ``prompt``: ~2.7 KB of hex words, about half of it compressible."""
    return " ".join(hashlib.sha256(f"{prompt}/{index}".encode()).hexdigest()[:8] for index in range(300))


class EchoChat(BaseChatModel):
    """A chat model whose answer depends on the prompt only, so any mixed-up hit shows."""

    @property
    def _llm_type(self) -> str:
        return "echo-chat"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        answer = answer_for(str(messages[-1].content))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


def configure(spec: dict[str, Any]) -> dict[str, Any]:
    """Set Django up with one ``LLM_CACHES`` alias per alias kind; return the caches by kind."""
    import django
    from django.conf import settings

    directory = Path(spec["directory"])
    aliases = dict(spec["aliases"])
    if "alias-database" in aliases:
        aliases["alias-database"] = {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": DATABASE_TABLE,
        }
    settings.configure(
        USE_TZ=True,
        INSTALLED_APPS=["llmcache_django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(directory / "threads.sqlite3"),
                "OPTIONS": {"timeout": 20},
            }
        },
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, **aliases},
        LLM_CACHES={kind: {"CACHE": kind, "NAMESPACE": f"t{uuid.uuid4().hex[:12]}"} for kind in aliases},
        LLM_CACHE_SET_GLOBAL=False,
    )
    django.setup()
    if "alias-database" in aliases:
        from django.core.management import call_command

        call_command("createcachetable", verbosity=0)
    from llmcache_django import llm_caches
    from tests.builders import build_direct_cache

    caches = {kind: llm_caches[kind] for kind in aliases}
    for kind, address in spec["direct"].items():
        caches[kind] = build_direct_cache(kind, address, f"t{uuid.uuid4().hex[:12]}")
    for cache in caches.values():
        cache.clear()
    return caches


class Tally:
    """Calls and wrong answers per kind, from every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.wrong: list[str] = []

    def check(self, kind: str, prompt: str, message: BaseMessage) -> None:
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
            if message.content != answer_for(prompt):
                self.wrong.append(f"{kind}: {prompt!r} -> {str(message.content)[:40]!r}")


def hammer(models: dict[str, EchoChat], deadline: float, offset: int, tally: Tally) -> None:
    """One thread: sync and async calls on every kind until ``deadline``, and at least one pass
    over the kinds asking a prompt the warm-up stored (a hit on every kind, however loaded the machine)."""
    kinds = sorted(models)
    loop = asyncio.new_event_loop()
    try:
        round_ = offset
        while time.monotonic() < deadline or round_ - offset < len(kinds):
            kind = kinds[round_ % len(kinds)]
            first_pass = round_ - offset < len(kinds)
            prompt = PROMPTS[offset % WARMED] if first_pass else PROMPTS[(round_ * 7 + offset) % len(PROMPTS)]
            if round_ % 4 == 3:
                loop.run_until_complete(_together(models[kind], kind, prompt, tally))
            else:
                tally.check(kind, prompt, models[kind].invoke(prompt))
            round_ += 1
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _together(model: EchoChat, kind: str, prompt: str, tally: Tally) -> None:
    prompts = [prompt, *PROMPTS[:3]]
    answers = await asyncio.gather(*(model.ainvoke(each) for each in prompts))
    for each, answer in zip(prompts, answers, strict=True):
        tally.check(kind, each, answer)


def main() -> int:
    spec = json.loads(sys.stdin.read())
    caches = configure(spec)
    models = {kind: EchoChat(cache=cache) for kind, cache in caches.items()}
    for model in models.values():  # stored before the threads start: each kind has hits to serve
        for prompt in PROMPTS[:WARMED]:
            model.invoke(prompt)
    tally = Tally()
    deadline = time.monotonic() + spec["seconds"]
    threads = [
        threading.Thread(target=hammer, args=(models, deadline, offset, tally)) for offset in range(spec["threads"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hits = {kind: cache.stats.hits + cache.stats.coalesced for kind, cache in caches.items()}
    print(json.dumps({"calls": tally.calls, "hits": hits, "wrong": tally.wrong[:20]}))
    return 1 if tally.wrong else 0


if __name__ == "__main__":
    sys.exit(main())
