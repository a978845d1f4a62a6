"""The hits per scope on Redis: one sorted set per namespace, trimmed to its top scopes on each add."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcache_django.stores.redis_loops import LoopClients


class RedisScopeRanking:
    """Mixed into :class:`~llmcache_django.stores.redis.RedisStore`: ``ZINCRBY`` per scope, then
    ``ZREMRANGEBYRANK`` keeps the ``keep`` scopes with the most hits, in one round trip."""

    prefix: str
    client: Any
    _loops: LoopClients
    _response_error: type[Exception]

    ranks_scopes = True

    @property
    def scope_hits_key(self) -> str:
        """The sorted set of hits per scope (kept by ``clear()``, like the other counters)."""
        return self.prefix + "stats:scopes"

    def add_scope_hits(self, hits: Mapping[str, int], keep: int) -> None:
        try:
            self._add_scope_hits(hits, keep)
        except self._response_error:  # not a sorted set: another program's value, ours to replace
            self.client.unlink(self.scope_hits_key)
            self._add_scope_hits(hits, keep)

    def _add_scope_hits(self, hits: Mapping[str, int], keep: int) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            _queue_adds(pipe, self.scope_hits_key, hits, keep)
            pipe.execute()

    async def aadd_scope_hits(self, hits: Mapping[str, int], keep: int) -> None:
        loop_client = self._loops.get()
        async with loop_client.slots:
            try:
                await _aadd(loop_client.client, self.scope_hits_key, hits, keep)
            except self._response_error:
                await loop_client.client.unlink(self.scope_hits_key)
                await _aadd(loop_client.client, self.scope_hits_key, hits, keep)

    def forget_scope_hits(self, scope: str) -> None:
        try:
            self.client.zrem(self.scope_hits_key, scope)
        except self._response_error:  # not a sorted set: no ranking to take it out of
            return

    def read_scope_hits(self, limit: int) -> list[tuple[str, int]]:
        try:
            ranked = self.client.zrevrange(self.scope_hits_key, 0, limit - 1, withscores=True)
        except self._response_error:  # not a sorted set: no ranking yet
            return []
        return [(_text(scope), int(hits)) for scope, hits in ranked]

    def reset_scope_hits(self) -> None:
        self.client.unlink(self.scope_hits_key)


def _queue_adds(pipe: Any, key: str, hits: Mapping[str, int], keep: int) -> None:
    for scope, count in hits.items():
        pipe.zincrby(key, count, scope)
    pipe.zremrangebyrank(key, 0, -keep - 1)  # all but the top ``keep``


async def _aadd(client: Any, key: str, hits: Mapping[str, int], keep: int) -> None:
    async with client.pipeline(transaction=False) as pipe:
        _queue_adds(pipe, key, hits, keep)
        await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value
