"""One process of a cross-process single-flight burst: ``python -m tests.single_flight_worker KIND PORT NAMESPACE DIR INDEX BOUND [fail-first]``.

Asks the shared prompt once through a cache on the given server; the model appends a byte to
``DIR/calls`` per call and waits for ``DIR/gate``; the answer is printed (``error: ...`` if the
model raised: with ``fail-first``, the burst's first call raises once the gate opens).

``KIND`` ``database`` (``PORT`` unused) sets Django up in this process on its own settings: an
``LLM_CACHES`` alias on a ``DatabaseCache`` whose table is in the SQLite file ``DIR/cache.sqlite3``,
which the test created (``createcachetable``) and every worker shares.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListChatModel

#: The database cache's file and table, in the burst's directory (see :func:`database_settings`).
DATABASE_FILE = "cache.sqlite3"
DATABASE_TABLE = "llmcache_single_flight"


def database_settings(path: Path) -> dict[str, Any]:
    """The ``DATABASES`` entry of the SQLite file the database cache's table is in.

    Several connections (threads, processes) write to it at once: a busy timeout makes a
    writer wait for the others instead of failing with "database is locked".
    """
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "OPTIONS": {"timeout": 20}}


class FileGatedChat(FakeListChatModel):
    """Counts its calls in a file shared by the processes and waits for a gate file."""

    directory: str = ""
    fail_first: bool = False

    def _call(self, *args: Any, **kwargs: Any) -> str:
        with open(Path(self.directory) / "calls", "ab") as calls:
            first = calls.tell() == 0
            calls.write(b".")
        gate = Path(self.directory) / "gate"
        while not gate.exists():
            time.sleep(0.005)
        if first and self.fail_first:
            raise RuntimeError("the provider failed")
        return "the answer"


def build(kind: str, port: int, namespace: str, bound: float, directory: str) -> Any:
    if kind == "database":
        return build_database(namespace, bound, Path(directory))
    if kind == "redis":
        import redis

        from llmcache_django import RedisLLMCache

        return RedisLLMCache(redis.Redis(port=port), namespace=namespace, single_flight=bound)
    from pymemcache.client.base import PooledClient

    from llmcache_django import MemcachedLLMCache

    return MemcachedLLMCache(PooledClient(("127.0.0.1", port)), namespace=namespace, single_flight=bound)


def build_database(namespace: str, bound: float, directory: Path) -> Any:
    """This process's own Django, with ``LLM_CACHES["default"]`` on the shared database cache."""
    import django
    from django.conf import settings

    settings.configure(
        USE_TZ=True,
        INSTALLED_APPS=["llmcache_django"],
        DATABASES={"default": database_settings(directory / DATABASE_FILE)},
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "llm": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": DATABASE_TABLE},
        },
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": namespace, "OPTIONS": {"SINGLE_FLIGHT": bound}}},
    )
    django.setup()
    from llmcache_django import llm_caches

    return llm_caches["default"]


def main() -> None:
    kind, port, namespace, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    cache = build(kind, port, namespace, float(sys.argv[6]), directory)
    model = FileGatedChat(
        responses=["unused"], cache=cache, directory=directory, fail_first=sys.argv[7:] == ["fail-first"]
    )
    cache.store.get("warm-up")  # imports and a connection, outside single-flight
    (Path(directory) / f"ready-{sys.argv[5]}").touch()
    try:
        answer = model.invoke("the prompt every process asks").content
    except RuntimeError as exc:
        answer = f"error: {exc}"  # and the process exits: it gives up its lease as it does
    print(answer, flush=True)


if __name__ == "__main__":
    main()
