"""Admission control of the detection service: a bounded number of analyses at once, a bounded queue behind.

Each analysis holds a video's sampled frames and a face detector for about a
second per video on 2 cores; unbounded, a burst of uploads multiplies the
service's memory until the container dies. `Admission` admits a request only
while fewer than `max_in_flight + max_queued` are admitted; admitted requests
run `max_in_flight` at a time, the others wait. A refused request is answered
503 with `Retry-After`: the time the queue ahead of it should take, from the
mean duration of recent analyses.

A request takes its place only once its whole body has arrived (a slow or
abandoned upload costs a connection, never a place), and the place is a
`Place` object given back exactly once, by `run` or by whoever held it when
the request ended some other way. `BodyBudget` bounds the bytes of bodies
still arriving, which are not admitted yet and so not bounded by the places.

Many users share one service, so one key's burst must not take the whole
queue: a key holds at most `max_in_flight_per_key` running and
`max_queued_per_key` waiting places (beyond them it is refused, 429), and a
freed slot goes to the waiting request whose key runs the fewest analyses,
then whose key started one longest ago (round robin), its oldest request
first. Requests without a key (a service without authentication) share the
global limits only.
"""

import itertools
import math
import threading
import time
from collections import Counter
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

Result = TypeVar("Result")
# Recent analyses weigh this much in the running mean of their duration.
_SMOOTHING = 0.2
MAX_RETRY_AFTER_S = 120
# How often a waiting request asks whether it was cancelled.
CANCEL_POLL_S = 0.5
# The limits `try_admit` names when it refuses a request.
QUEUE_FULL = "max_queued"
KEY_QUEUE_FULL = "max_queued_per_key"


class WorkCancelledError(Exception):
    """The work a place was taken for was cancelled (its owner asked, or its key was revoked)."""


class Place:
    """One admitted request's place, held for `key`: `give_back()` returns it once, and does nothing when
    called again, so every path that ends a request can call it without counting twice."""

    def __init__(self, admission: "Admission", key: Optional[str] = None):
        self._admission = admission
        self.key = key
        self.held = True

    def give_back(self) -> None:
        self._admission._give_back(self)


class Admission:
    """Counts admitted and running requests, in all and per key, and orders who runs next; thread-safe."""

    def __init__(
        self,
        max_in_flight: int,
        max_queued: int,
        initial_duration_s: float = 2.0,
        max_in_flight_per_key: Optional[int] = None,
        max_queued_per_key: Optional[int] = None,
    ):
        if max_in_flight < 1 or max_queued < 0:
            raise ValueError(f"max_in_flight={max_in_flight} must be >= 1 and max_queued={max_queued} >= 0")
        self.max_in_flight = max_in_flight
        self.capacity = max_in_flight + max_queued
        self.max_in_flight_per_key = min(max_in_flight_per_key or max_in_flight, max_in_flight)
        key_queued = max_queued if max_queued_per_key is None else max_queued_per_key
        self.key_capacity = self.max_in_flight_per_key + key_queued
        if self.max_in_flight_per_key < 1 or self.key_capacity < self.max_in_flight_per_key:
            raise ValueError(f"max_in_flight_per_key={max_in_flight_per_key} must be >= 1, max_queued_per_key >= 0")
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)
        self._arrivals = itertools.count()
        self._starts = itertools.count()
        # (arrival number, key) of the admitted requests waiting for a slot, oldest first.
        self._waiting: List[Tuple[int, Optional[str]]] = []
        self._admitted_by_key: Counter = Counter()
        self._running_by_key: Counter = Counter()
        # When each key with admitted requests last started one (a number of `_starts`).
        self._last_start_by_key: Dict[Optional[str], int] = {}
        self.admitted = 0
        self.in_flight = 0
        self.rejected = 0
        self._mean_duration_s = initial_duration_s
        self._full_since: Optional[float] = None

    @property
    def queued(self) -> int:
        return self.admitted - self.in_flight

    def admit(self, key: Optional[str] = None) -> Optional[Place]:
        """Takes a place in the queue for `key`'s request, or returns None (a rejection) when refused."""
        place, _ = self.try_admit(key)
        return place

    def try_admit(self, key: Optional[str]) -> Tuple[Optional[Place], Optional[str]]:
        """(a place for `key`'s request, None), or (None, the limit that refuses it) and a counted rejection:
        `KEY_QUEUE_FULL` when the key holds its share, `QUEUE_FULL` when the service is full."""
        with self._lock:
            if key is not None and self._admitted_by_key[key] >= self.key_capacity:
                refusal = KEY_QUEUE_FULL
            elif self.admitted >= self.capacity:
                refusal = QUEUE_FULL
            else:
                self.admitted += 1
                self._admitted_by_key[key] += 1
                if self.admitted >= self.capacity and self._full_since is None:
                    self._full_since = time.monotonic()
                return Place(self, key), None
            self.rejected += 1
            return None, refusal

    def _give_back(self, place: Place) -> None:
        with self._turn:
            if not place.held:
                return
            place.held = False
            self.admitted -= 1
            self._admitted_by_key[place.key] -= 1
            if not self._admitted_by_key[place.key]:
                del self._admitted_by_key[place.key]
                self._last_start_by_key.pop(place.key, None)
            if self.admitted < self.capacity:
                self._full_since = None
            self._turn.notify_all()

    def full_for_s(self) -> float:
        """How long every place has been taken without a break; 0 while one is free.

        A service full for minutes admits nothing: readiness reports it, so
        an orchestrator sends traffic elsewhere or restarts it.
        """
        with self._lock:
            return 0.0 if self._full_since is None else time.monotonic() - self._full_since

    def run(
        self,
        place: Place,
        work: Callable[[], Result],
        on_start: Callable[[], None] = lambda: None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Result:
        """Waits for a slot (and the key's turn), runs `work` in it, then gives the slot and `place` back,
        whatever `work` does and even when the wait itself is interrupted; raises WorkCancelledError, giving the place
        back, once `cancelled()` says so while it waits (asked every `CANCEL_POLL_S`)."""
        key = place.key
        try:
            with self._turn:
                arrival = (next(self._arrivals), key)
                self._waiting.append(arrival)
                try:
                    while self._next_to_run() != arrival:
                        self._turn.wait(CANCEL_POLL_S)
                        if self._asked_without_lock(cancelled):
                            raise WorkCancelledError()
                finally:
                    self._waiting.remove(arrival)
                self.in_flight += 1
                self._running_by_key[key] += 1
                self._last_start_by_key[key] = next(self._starts)
                # Another waiter may be next now that this one left the line (a second free slot).
                self._turn.notify_all()
        except BaseException:
            place.give_back()
            raise
        started = time.monotonic()
        try:
            on_start()
            return work()
        finally:
            elapsed = time.monotonic() - started
            with self._turn:
                self.in_flight -= 1
                self._running_by_key[key] -= 1
                if not self._running_by_key[key]:
                    del self._running_by_key[key]
                self._mean_duration_s += _SMOOTHING * (elapsed - self._mean_duration_s)
                self._turn.notify_all()
            place.give_back()

    def _asked_without_lock(self, question: Callable[[], bool]) -> bool:
        """`question()` (a database look) with the lock let go meanwhile, so no other request waits on it."""
        self._turn.release()
        try:
            return question()
        finally:
            self._turn.acquire()

    def _next_to_run(self) -> Optional[Tuple[int, Optional[str]]]:
        """The waiting request a free slot goes to: of the keys under their running share, the one running
        fewest, then the one that started an analysis longest ago, its oldest request first; None while no
        slot is free or every waiting key runs its share. Requests without a key go in arrival order."""
        if self.in_flight >= self.max_in_flight:
            return None
        eligible = [
            (self._running_by_key[key], self._last_start_by_key.get(key, -1), arrival, key)
            if key is not None
            else (0, -1, arrival, key)
            for arrival, key in self._waiting
            if key is None or self._running_by_key[key] < self.max_in_flight_per_key
        ]
        if not eligible:
            return None
        *_, arrival, key = min(eligible)
        return arrival, key

    def retry_after_s(self, key: Optional[str] = None) -> int:
        """Seconds until a place should free up: the admitted requests' work spread over the slots, or, for a key
        that holds its share, its own requests' work spread over its running share."""
        with self._lock:
            if key is not None and self._admitted_by_key[key] >= self.key_capacity:
                ahead, slots = self._admitted_by_key[key], self.max_in_flight_per_key
            else:
                ahead, slots = self.admitted, self.max_in_flight
            waves = math.ceil((ahead - slots + 1) / slots)
            return int(min(MAX_RETRY_AFTER_S, max(1, math.ceil(max(1, waves) * self._mean_duration_s))))


class BodyBudget:
    """Bytes of request bodies still arriving, at most `limit` in all and `key_limit` per key; thread-safe.

    Places bound the bodies of admitted requests; a body still arriving holds
    no place, so without this many fast uploads at once could hold any amount
    of memory between them. The share per key keeps one key's stalled uploads
    from holding the whole budget and turning every other key away (503).
    Requests without a key (a service without keys) share the global limit only.
    """

    def __init__(self, limit: int, key_limit: Optional[int] = None):
        self.limit = limit
        self.key_limit = min(key_limit or limit, limit)
        self.held = 0
        self._held_by_key: Counter = Counter()
        self._lock = threading.Lock()

    def take(self, size: int, key: Optional[str] = None) -> bool:
        """Reserves `size` bytes for `key`, or returns False when that would go over its share or the limit."""
        with self._lock:
            if self.held + size > self.limit:
                return False
            if key is not None and self._held_by_key[key] + size > self.key_limit:
                return False
            self.held += size
            if key is not None:
                self._held_by_key[key] += size
            return True

    def give_back(self, size: int, key: Optional[str] = None) -> None:
        """Returns `size` bytes taken for `key` by a body that has arrived, been refused or been abandoned."""
        with self._lock:
            self.held -= size
            if key is not None:
                self._held_by_key[key] -= size
                if self._held_by_key[key] <= 0:
                    del self._held_by_key[key]

    def held_by(self, key: str) -> int:
        with self._lock:
            return self._held_by_key[key]
