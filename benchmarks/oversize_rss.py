"""Peak extra RSS of one lookup of a 128 MiB value planted under an entry's key on Redis.

``python -m benchmarks.oversize_rss`` starts a throw-away redis-server (and a Redis Cluster),
plants the value with the raw client, then runs each lookup path in a fresh process: a warm
lookup first (imports, connection), then the planted one, and reports how far the process's
peak RSS (``VmHWM``) rose. Figures for README "How it behaves".
"""

from __future__ import annotations

import subprocess
import sys

PLANTED_BYTES = 128 * 1024 * 1024
LLM = "model=test"
NAMESPACE = "oversize"
#: path -> (client expression, how the lookup is called)
PATHS = {
    "redis.Redis, lookup": ("RedisLLMCache(redis.Redis.from_url(URL), namespace=NS)", "sync"),
    "redis.Redis, alookup": ("RedisLLMCache(redis.Redis.from_url(URL), namespace=NS)", "async"),
    "valkey.Valkey, lookup": ("RedisLLMCache(valkey.Valkey.from_url(URL), namespace=NS)", "sync"),
    "valkey.Valkey, alookup": ("RedisLLMCache(valkey.Valkey.from_url(URL), namespace=NS)", "async"),
    "RedisCluster, lookup": ("RedisLLMCache(redis.cluster.RedisCluster.from_url(CLUSTER), namespace=NS)", "sync"),
    "RedisCluster, alookup": ("RedisLLMCache(redis.cluster.RedisCluster.from_url(CLUSTER), namespace=NS)", "async"),
}
CHILD = """
import asyncio, sys
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["llmcache_django"], LLM_CACHE_SET_GLOBAL=False, LOGGING_CONFIG=None)
django.setup()
import redis, redis.cluster, valkey
from llmcache_django import RedisLLMCache
URL, CLUSTER, NS, LLM = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
cache = {build}
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
def lookup(prompt):
    return asyncio.run(cache.alookup(prompt, LLM)) if "{mode}" == "async" else cache.lookup(prompt, LLM)
lookup("warm"); lookup("warm")
before = hwm()
assert lookup("planted") is None
print(hwm() - before, cache.stats.errors)
"""


def plant(url: str, cluster_url: str) -> None:
    """Store the oversize value under the entry key of ("planted", LLM) on both servers."""
    import redis
    import redis.cluster

    from llmcache_django import RedisLLMCache

    value = b"LC1j" + b" " * PLANTED_BYTES
    for cache in (
        RedisLLMCache(redis.Redis.from_url(url), namespace=NAMESPACE),
        RedisLLMCache(redis.cluster.RedisCluster.from_url(cluster_url), namespace=NAMESPACE),
    ):
        from llmcache_django.core.keys import entry_digest

        cache.store.set(entry_digest("planted", LLM), value, None)


def measure(url: str, cluster_url: str) -> dict[str, tuple[float, str]]:
    """MiB of peak RSS each path's planted lookup added, and the errors it counted."""
    results = {}
    for name, (build, mode) in PATHS.items():
        code = CHILD.format(build=build, mode=mode)
        argv = [sys.executable, "-c", code, url, cluster_url, NAMESPACE, LLM]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
        extra, errors = done.stdout.split()
        results[name] = (int(extra) / 2**20, errors)
    return results


def main() -> None:
    import django
    from django.conf import settings

    from tests import servers
    from tests.cluster_servers import start_cluster

    settings.configure(INSTALLED_APPS=["llmcache_django"], LLM_CACHE_SET_GLOBAL=False)
    django.setup()
    server = servers.start_redis()
    cluster = start_cluster(primaries=3, replicas=0)
    try:
        plant(server.url, cluster.urls[0])
        results = measure(server.url, cluster.urls[0])
    finally:
        cluster.stop()
        server.stop()
    for name, (extra, errors) in results.items():
        print(f"{name:<24} +{extra:7.1f} MiB peak RSS  (errors counted: {errors})")


if __name__ == "__main__":
    main()
