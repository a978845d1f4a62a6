"""Single-flight: one model call for a burst of identical misses, across threads, tasks and processes.

After a miss, the caller joins the entry's *flight* in this process. The first caller of a
flight takes a *lease* on the server (an atomic add with expiry): if it gets it, it leads
(calls the model; ``update`` ends the flight); if another process holds the lease, it polls
the server for the entry, and the other callers in this process wait on it. Waiters in the
process are woken by the leader's ``update`` at once, without touching the server.

A leader that ends without an update is noticed by what its call is, not by where its frames
live (:mod:`llmcache_django.core.flight_owners`, :mod:`llmcache_django.core.model_runs`): the LangChain
run that missed failed or ended, the ``cached()`` stream that missed was closed or broke off,
or the task that missed is done. Its waiters then go on to call the model themselves; where
none of these can be seen (a bare ``lookup()``), they wait for its lease, at most the wait
bound. Every server error ends the wait: the call proceeds as it would without single-flight.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from llmcache_django.core import model_runs
from llmcache_django.core.flight_owners import Owner
from llmcache_django.core.flights import Flight
from llmcache_django.stores.base import LEASE_DONE, Store

#: The default bound, in seconds, on how long a waiter waits for another caller's answer.
DEFAULT_WAIT_SECONDS = 30.0
#: The longest wait bound accepted.
MAX_WAIT_SECONDS = 3600.0
#: A finished lease stays this long as "done", so a caller that missed just before the
#: leader's write reads the entry instead of leading a second model call.
DONE_SECONDS = 2.0
#: Polling another process's flight: first delay, growth and longest delay (the wake-up lag).
POLL_FIRST_SECONDS = 0.005
POLL_GROWTH = 1.5
POLL_MAX_SECONDS = 0.025
#: How often the watcher ends the flights whose bound passed or whose leading task is done.
WATCH_SECONDS = 0.05
#: The watcher thread stops after this long without a flight (and starts again with the next).
WATCHER_IDLE_SECONDS = 5.0
#: Lease names: not entry digests, so never listed, counted or cleared as entries.
LEASE_PREFIX = "lease:"


def lease_name(name: str) -> str:
    """The store name of the lease on entry ``name`` (short enough for memcached keys)."""
    return LEASE_PREFIX + name[:48]


def wait_bound(option: bool | float) -> float | None:
    """The wait bound an ``OPTIONS["SINGLE_FLIGHT"]`` value asks for; ``None`` when off."""
    if option is False:
        return None
    if option is True:
        return DEFAULT_WAIT_SECONDS
    return float(option)


def option_problem(option: Any) -> str | None:
    """Why ``option`` is not a usable ``SINGLE_FLIGHT`` value, or ``None`` when it is."""
    if isinstance(option, bool):
        return None
    if not isinstance(option, (int, float)) or not 0 < option <= MAX_WAIT_SECONDS:
        return (
            f"{option!r} is invalid; use True, False, or a wait bound in seconds above 0 and up to {MAX_WAIT_SECONDS:g}"
        )
    return None


class SingleFlight:
    """Coalesces concurrent misses of one cache's entries (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        wait: float,
        on_error: Callable[[str, BaseException], None],
        lease_ttl: float | None = None,
    ) -> None:
        self.store = store
        self.wait = wait
        #: A lease outlives no waiter: past the wait bound everyone calls the model anyway.
        self.lease_ttl = lease_ttl if lease_ttl is not None else wait
        self.on_error = on_error
        self._flights: dict[str, Flight] = {}
        self._leading: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._token_prefix = f"{uuid.uuid4().hex[:12]}:".encode()
        _LIVE.add(self)
        model_runs.install()

    def __len__(self) -> int:
        return len(self._flights)

    def waiting(self, name: str | None = None) -> int:
        """How many callers in this process wait now on the flight of ``name`` (on any flight when ``None``)."""
        with self._lock:
            flights = list(self._flights.values()) if name is None else [self._flights.get(name)]
        return sum(flight.waiters for flight in flights if flight is not None)

    # Sync

    def join(self, name: str) -> bytes | None:
        """After a miss on ``name``: the value another caller's model call stored, or
        ``None`` when this caller should call the model (it leads, or cannot wait)."""
        flight, leads, may_wait = self._enter(name, Owner.current(asynchronous=False))
        if flight is None:
            return None
        if not leads:
            return flight.wait()
        if not self._take_lease(flight, may_wait):
            return None
        return self._poll(flight)

    def held_lease(self, name: str) -> str | None:
        """The server lease this process holds on ``name``, which the entry's write may end."""
        with self._lock:
            flight = self._flights.get(name)
        return lease_name(name) if flight is not None and flight.token is not None else None

    def settle(self, name: str, value: bytes | None, *, lease_ended: bool = False) -> None:
        """End the flight of ``name`` with ``value`` (the entry just written, or ``None``);
        ``lease_ended``: the write already marked the lease done."""
        flight = self._end(name, value)
        if flight is not None and flight.token is not None and not lease_ended:
            self._release(flight, value)

    def _take_lease(self, flight: Flight, may_wait: bool) -> bool:
        """Take the server lease; whether another process leads and this caller should poll."""
        if not self.store.can_lease:
            return False
        token = self._token_prefix + uuid.uuid4().hex.encode()
        try:
            taken = self.store.add_lease(lease_name(flight.name), token, self.lease_ttl)
        except Exception as exc:
            self._give_up(flight, "taking a single-flight lease", exc)
            return False
        return self._lease_result(flight, token, taken, may_wait)

    def _poll(self, flight: Flight) -> bytes | None:
        """Poll the server until another process's answer is there, its leader is gone or the bound passes."""
        delay = 0.0  # the first look at once: the lease may be a finished one
        try:
            while flight.remaining() > 0 and not flight.ended.is_set():
                if flight.ended.wait(min(delay, flight.remaining())):
                    break
                # The lease first: once it reads done, the leader's entry is already written.
                ended = _ended(self.store.read_lease(lease_name(flight.name)))
                value = self.store.get(flight.name)
                if ended or value is not None:
                    self._end_flight(flight, value)
                delay = _next_delay(delay)
        except Exception as exc:
            self.on_error("waiting for another process's answer", exc)
        finally:  # interrupted too: the callers waiting on this poll go on
            self._end_flight(flight, None)
        return flight.value

    def _release(self, flight: Flight, value: bytes | None) -> None:
        try:
            self.store.end_lease(lease_name(flight.name), DONE_SECONDS if value is not None else None)
        except Exception as exc:
            self.on_error("ending a single-flight lease", exc)

    # Async

    async def ajoin(self, name: str) -> bytes | None:
        """Async :meth:`join`."""
        flight, leads, may_wait = self._enter(name, Owner.current(asynchronous=True))
        if flight is None:
            return None
        if not leads:
            return await flight.await_end()
        if not await self._atake_lease(flight, may_wait):
            return None
        return await self._apoll(flight)

    async def asettle(self, name: str, value: bytes | None, *, lease_ended: bool = False) -> None:
        """Async :meth:`settle`."""
        flight = self._end(name, value)
        if flight is not None and flight.token is not None and not lease_ended:
            await self._arelease(flight, value)

    async def _atake_lease(self, flight: Flight, may_wait: bool) -> bool:
        if not self.store.can_lease:
            return False
        token = self._token_prefix + uuid.uuid4().hex.encode()
        try:
            taken = await self.store.aadd_lease(lease_name(flight.name), token, self.lease_ttl)
        except Exception as exc:
            self._give_up(flight, "taking a single-flight lease", exc)
            return False
        return self._lease_result(flight, token, taken, may_wait)

    async def _apoll(self, flight: Flight) -> bytes | None:
        """Async :meth:`_poll`."""
        delay = 0.0
        try:
            while flight.remaining() > 0 and not flight.ended.is_set():
                await asyncio.sleep(min(delay, flight.remaining()))
                if flight.ended.is_set():
                    break
                ended = _ended(await self.store.aread_lease(lease_name(flight.name)))
                value = await self.store.aget(flight.name)
                if ended or value is not None:
                    self._end_flight(flight, value)
                delay = _next_delay(delay)
        except Exception as exc:
            self.on_error("waiting for another process's answer", exc)
        finally:  # cancelled too: the callers waiting on this poll go on
            self._end_flight(flight, None)
        return flight.value

    async def _arelease(self, flight: Flight, value: bytes | None) -> None:
        try:
            await self.store.aend_lease(lease_name(flight.name), DONE_SECONDS if value is not None else None)
        except Exception as exc:
            self.on_error("ending a single-flight lease", exc)

    # Bookkeeping shared by both

    def _enter(self, name: str, owner: Owner) -> tuple[Flight | None, bool, bool]:
        """``(flight, leads, may_wait)``: the flight to wait on, or a new one this caller
        leads; no flight when it must not wait. A caller already leading a flight never
        waits (a batch leading several prompts, or two batches in opposite orders, cannot
        deadlock), but still leads new ones. A caller waits for a stream only while the stream
        is read on (see :meth:`Owner.held_up`)."""
        with self._lock:
            leading = bool(self._leading.get(owner.caller))
            flight = self._flights.get(name)
            if flight is not None and not flight.ended.is_set():
                return (None, False, False) if leading else (flight, False, True)
            flight = Flight(name, owner, time.monotonic() + self.wait, self.abandon_flight)
            self._flights[name] = flight
            self._leading[owner.caller] = self._leading.get(owner.caller, 0) + 1
            self._watch()
        if owner.stream is None:  # a cached() stream ends its own flight (settle or abandon)
            model_runs.tie(flight)
        return flight, True, not leading

    def _lease_result(self, flight: Flight, token: bytes, taken: bool, may_wait: bool) -> bool:
        if taken:
            flight.token = token
            return False
        if not may_wait:
            self._end_flight(flight, None)
            return False
        with self._lock:
            if flight.closed:
                return False
            flight.remote = True
            self._stop_leading(flight)
        return True

    def _give_up(self, flight: Flight, operation: str, exc: BaseException) -> None:
        self.on_error(operation, exc)
        self._end_flight(flight, None)

    def _end(self, name: str, value: bytes | None) -> Flight | None:
        with self._lock:
            flight = self._flights.get(name)
        if flight is None:
            return None
        return flight if self._end_flight(flight, value) else None

    def _end_flight(self, flight: Flight, value: bytes | None) -> bool:
        with self._lock:
            if flight.closed:
                return False
            flight.closed = True
            if self._flights.get(flight.name) is flight:
                del self._flights[flight.name]
            if not flight.remote:
                self._stop_leading(flight)
        return flight.end(value)

    def abandon_flight(self, flight: Flight) -> None:
        """End ``flight`` without a value (its leader is gone) and give up its lease, if it still runs."""
        if self._end_flight(flight, None) and flight.token is not None:
            self._release(flight, None)

    def _stop_leading(self, flight: Flight) -> None:
        caller = flight.owner.caller
        count = self._leading.pop(caller, 0) - 1
        if count > 0:
            self._leading[caller] = count

    def release_all(self) -> None:
        """End every flight this process leads and remove its leases (the process is exiting):
        other processes' waiters then go on at their next poll instead of at the leases' expiry."""
        with self._lock:
            flights = [flight for flight in self._flights.values() if flight.token is not None]
        for flight in flights:
            self.abandon_flight(flight)

    def _watch(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(target=self._watch_leaders, name="llmcache-single-flight", daemon=True)
            self._watcher.start()

    def _watch_leaders(self) -> None:
        """Until no flight is left: end those whose leader is gone or whose bound passed."""
        idle_since = time.monotonic()
        while True:
            time.sleep(WATCH_SECONDS)
            with self._lock:
                flights = list(self._flights.values())
                if flights:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > WATCHER_IDLE_SECONDS:  # kept a while: misses come in bursts
                    self._watcher = None
                    return
            for flight in flights:
                if not flight.remote and (flight.remaining() <= 0 or not flight.owner.alive()):
                    self.abandon_flight(flight)


def _next_delay(delay: float) -> float:
    """The pause before the next poll: :data:`POLL_FIRST_SECONDS` after the first look, then growing."""
    return POLL_FIRST_SECONDS if delay == 0 else min(delay * POLL_GROWTH, POLL_MAX_SECONDS)


#: Every :class:`SingleFlight` of the process, for :func:`release_all_leases`.
_LIVE: weakref.WeakSet[SingleFlight] = weakref.WeakSet()


@atexit.register
def release_all_leases() -> None:
    """A process that ends (a script, a worker after its last job, a server shutting down,
    one stopped with SIGTERM) gives up the leases it still holds."""
    for single_flight in list(_LIVE):
        single_flight.release_all()


def _ended(lease: bytes | str | None) -> bool:
    """Whether a lease read from the server says the leader is gone or finished."""
    return lease is None or lease in (LEASE_DONE, LEASE_DONE.decode())
