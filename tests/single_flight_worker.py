"""One process of a cross-process single-flight burst: ``python -m tests.single_flight_worker KIND PORT NAMESPACE DIR INDEX BOUND``.

Asks the shared prompt once through a cache on the given server; the model appends a byte to
``DIR/calls`` per call and waits for ``DIR/gate``; the answer is printed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListChatModel


class FileGatedChat(FakeListChatModel):
    """Counts its calls in a file shared by the processes and waits for a gate file."""

    directory: str = ""

    def _call(self, *args: Any, **kwargs: Any) -> str:
        with open(Path(self.directory) / "calls", "ab") as calls:
            calls.write(b".")
        gate = Path(self.directory) / "gate"
        while not gate.exists():
            time.sleep(0.005)
        return "the answer"


def build(kind: str, port: int, namespace: str, bound: float) -> Any:
    if kind == "redis":
        import redis

        from llmcache_django import RedisLLMCache

        return RedisLLMCache(redis.Redis(port=port), namespace=namespace, single_flight=bound)
    from pymemcache.client.base import PooledClient

    from llmcache_django import MemcachedLLMCache

    return MemcachedLLMCache(PooledClient(("127.0.0.1", port)), namespace=namespace, single_flight=bound)


def main() -> None:
    kind, port, namespace, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    cache = build(kind, port, namespace, float(sys.argv[6]))
    model = FileGatedChat(responses=["unused"], cache=cache, directory=directory)
    cache.store.get("warm-up")  # imports and a connection, outside single-flight
    (Path(directory) / f"ready-{sys.argv[5]}").touch()
    print(model.invoke("the prompt every process asks").content, flush=True)


if __name__ == "__main__":
    main()
