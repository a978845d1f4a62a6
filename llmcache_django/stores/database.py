"""Entries in a Django database cache table, as our own bytes: nothing read is unpickled.

Django's ``DatabaseCache`` pickles every value it stores and unpickles every value it reads,
so a row planted in its table runs code in whatever process reads it. This store reads and
writes the same table (same keys, expiry column and culling) with base64 of our own bytes, so
the LLM cache's read path never unpickles, and a row written any other way is a miss.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache.backends.db import DatabaseCache
from django.db import IntegrityError, InterfaceError, OperationalError, connections, router, transaction

from llmcache_django.stores.base import PROBE_NAME, ServerProbe, Store
from llmcache_django.stores.generational import GENERATION_TAG_BYTES, FoundValues, GenerationalStore, T

#: Attempts at an atomic compare-and-set increment before giving up on this flush.
INCR_ATTEMPTS = 10


class ForeignRowError(ValueError):
    """A row under one of our keys holds a value this app did not write."""


#: Words of a database error that mean lock contention (SQLite "database is locked", MySQL
#: "Lock wait timeout exceeded", PostgreSQL "deadlock detected", our own counter's giving up),
#: not a database that cannot be reached.
CONTENTION_MARKERS = ("locked", "lock wait timeout", "deadlock", "concurrent updates")


class DatabaseStore(GenerationalStore):
    """Stores entries in the table of a ``DatabaseCache`` alias, bypassing its pickling.

    Keys go through the alias's ``make_key`` (``KEY_PREFIX``, ``VERSION``, ``KEY_FUNCTION``),
    expiry uses the table's ``expires`` column and the alias's ``MAX_ENTRIES`` culling applies,
    exactly as for Django's own writes. Counters are incremented with a compare-and-set, so
    processes flushing stats at once never lose counts.
    """

    can_list = True
    outage_errors = (*GenerationalStore.outage_errors, OperationalError, InterfaceError)

    def is_outage(self, exc: BaseException) -> bool:
        # Waiting too long for a lock held by another writer is contention on a row or table
        # that is there to use: that call fails (a miss, a skipped write), the cache is not paused.
        if isinstance(exc, OperationalError) and any(marker in str(exc).lower() for marker in CONTENTION_MARKERS):
            return False
        return super().is_outage(exc)

    def __init__(self, cache: DatabaseCache, namespace: str, alias: str = "") -> None:
        super().__init__()
        self.cache = cache
        self.namespace = namespace
        self.alias = alias

    def probes(self) -> list[ServerProbe]:
        return closing_probe(self)

    def describe(self) -> str:
        return f"database cache {self.alias!r} (table {self.cache._table!r}, no pickling)"  # type: ignore[attr-defined]

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def _nest(self, part: str) -> None:
        super()._nest(part)
        self.namespace = f"{self.namespace}:{part}"

    def _get_many(self, keys: Iterable[str]) -> FoundValues:
        db_keys = {self.cache.make_and_validate_key(key): key for key in keys}
        connection = self._connection(write=False)
        # A value longer than any of ours is measured, not fetched (NULL: the column is NOT
        # NULL otherwise). SQLite hands text back as bytes when cast: a row that is not valid
        # UTF-8 is then a foreign value, not an OperationalError for the whole query (which
        # would read as an outage).
        value = "CAST(value AS BLOB)" if connection.vendor == "sqlite" else "value"
        rows = self._query(
            "SELECT cache_key, CASE WHEN LENGTH(value) <= %s THEN " + value + " END "
            "FROM {table} WHERE cache_key IN ({params}) AND expires > %s",
            [_stored_length(self.max_value_bytes), *db_keys, _adapt(_now(), connection)],
            params=len(db_keys),
        )
        found = FoundValues()
        for db_key, text in rows:
            if text is None:
                found.oversize.add(db_keys[db_key])
                continue
            found[db_keys[db_key]] = _from_row(text)
        return found

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        db_key, text = self.cache.make_and_validate_key(key), base64.b64encode(value).decode("ascii")
        connection = self._connection(write=True)
        expires = _adapt(_expiry(ttl), connection)
        update = self._sql(connection, "UPDATE {table} SET value = %s, expires = %s WHERE cache_key = %s")
        insert = self._sql(connection, "INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s)")
        # The transaction's first statement writes: on SQLite, a transaction that reads first
        # (the cull's count) and then writes fails at once with "database is locked" when
        # another connection writes meanwhile, whatever the busy timeout; one that starts by
        # writing waits its turn. Only a new row grows the table, so only an insert culls.
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(update, [text, expires, db_key])
            if cursor.rowcount == 0:
                self._cull(connection, cursor)
                cursor.execute(insert, [db_key, text, expires])

    def _add(self, key: str, value: bytes) -> bool:
        return self._add_expiring(key, value, None)

    def _incr(self, key: str, amount: int = 1) -> int | None:
        db_key = self.cache.make_and_validate_key(key)
        for _ in range(INCR_ATTEMPTS):
            current = self._get_many([key]).get(key)
            if current is None:
                return None
            try:
                number = int(current)
            except ValueError as exc:
                raise ForeignRowError(f"{key!r} does not hold a counter") from exc
            old, new = base64.b64encode(current).decode("ascii"), number + amount
            text = base64.b64encode(str(new).encode()).decode("ascii")
            if self._execute("UPDATE {table} SET value = %s WHERE cache_key = %s AND value = %s", [text, db_key, old]):
                return new
        raise OperationalError(f"{key!r}: {INCR_ATTEMPTS} concurrent updates in a row; giving up this increment")

    def _delete(self, key: str) -> bool:
        return bool(self._execute("DELETE FROM {table} WHERE cache_key = %s", [self.cache.make_and_validate_key(key)]))

    def _list_names(self) -> Iterator[str]:
        prefix = self.cache.make_key(f"{self.namespace}:")
        # "!" as the LIKE escape character: portable, unlike a backslash (MySQL).
        pattern = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        rows = self._query("SELECT cache_key FROM {table} WHERE cache_key LIKE %s ESCAPE '!'", [pattern])
        return (row[0][len(prefix) :] for row in rows)

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        # As Django's own cache does: safe for the database backend's connections.
        return await sync_to_async(function, thread_sensitive=True)(*args)

    can_lease = True

    def _add_expiring(self, key: str, value: bytes, ttl: float | None) -> bool:
        """An atomic add with expiry: the primary key lets one insert through."""
        db_key, text = self.cache.make_and_validate_key(key), base64.b64encode(value).decode("ascii")
        connection = self._connection(write=True)
        now, expires = _adapt(_now(), connection), _adapt(_expiry(ttl, at_least=True), connection)
        delete_expired = self._sql(connection, "DELETE FROM {table} WHERE cache_key = %s AND expires <= %s")
        insert = self._sql(connection, "INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s)")
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(delete_expired, [db_key, now])
                cursor.execute(insert, [db_key, text, expires])
        except IntegrityError:
            return False
        return True

    def _cull(self, connection: Any, cursor: Any) -> None:
        # The alias's MAX_ENTRIES / CULL_FREQUENCY apply to our rows as to Django's.
        cursor.execute(self._sql(connection, "SELECT COUNT(*) FROM {table}"))
        count = cursor.fetchone()[0]
        if count > self.cache._max_entries:  # type: ignore[attr-defined]
            self.cache._cull(connection.alias, cursor, _now(), count)  # type: ignore[attr-defined]

    def _connection(self, *, write: bool) -> Any:
        route = router.db_for_write if write else router.db_for_read
        return connections[route(self.cache.cache_model_class)]  # type: ignore[attr-defined]

    def _sql(self, connection: Any, template: str, params: int = 0) -> str:
        table = connection.ops.quote_name(self.cache._table)  # type: ignore[attr-defined]
        return template.format(table=table, params=", ".join(["%s"] * params))

    def _query(self, template: str, values: Sequence[Any], params: int = 0) -> list[tuple[Any, ...]]:
        connection = self._connection(write=False)
        with connection.cursor() as cursor:
            cursor.execute(self._sql(connection, template, params), values)
            return list(cursor.fetchall())

    def _execute(self, template: str, values: Sequence[Any]) -> int:
        connection = self._connection(write=True)
        with connection.cursor() as cursor:
            cursor.execute(self._sql(connection, template), values)
            return int(cursor.rowcount)


def _from_row(text: str | bytes) -> bytes:
    """Our bytes from a row's base64 text. A row that is not base64 (another program's text,
    or bytes that are not even UTF-8) comes back as it is: a foreign value, which reads as a
    miss and is replaced like any other, never as a missing row that could not be written over.
    Django's own pickles are base64 too, but never carry our tag, so they are foreign as well."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def _stored_length(max_value_bytes: int) -> int:
    """The longest row text one of our values (with its generation tag) takes as base64."""
    return 4 * math.ceil((max_value_bytes + GENERATION_TAG_BYTES) / 3)


def _now() -> datetime:
    return datetime.now(timezone.utc if settings.USE_TZ else None).replace(microsecond=0)


def _expiry(ttl: float | None, *, at_least: bool = False) -> datetime:
    """When a row written now for ``ttl`` seconds expires, in whole seconds like Django's own
    writes: rounded down (the row lasts up to a second less), or with ``at_least`` (a lease,
    whose bound may be under a second) rounded up, so the row lasts ``ttl`` and under a second more."""
    if ttl is None:
        return datetime.max
    tz = timezone.utc if settings.USE_TZ else None
    if at_least:
        return datetime.fromtimestamp(math.ceil(datetime.now(tz).timestamp() + ttl), tz=tz)
    return datetime.fromtimestamp(_now().timestamp() + ttl, tz=tz).replace(microsecond=0)


def _adapt(moment: datetime, connection: Any) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def closing_probe(store: Store) -> list[ServerProbe]:
    """The store's own read, closing the probe thread's database connections after it."""

    def read() -> Any:
        try:
            return store.get(PROBE_NAME)
        finally:
            connections.close_all()  # this probe thread's own database connections

    return [(store.describe(), read)]
