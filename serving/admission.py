"""Admission control of the detection service: a bounded number of analyses at once, a bounded queue behind.

Each analysis holds a video's sampled frames and a face detector for about a
second per video on 2 cores; unbounded, a burst of uploads multiplies the
service's memory until the container dies. `Admission` admits a request only
while fewer than `max_in_flight + max_queued` are admitted; admitted requests
run `max_in_flight` at a time, the others wait in order. A refused request is
answered 503 with `Retry-After`: the time the queue ahead of it should take,
from the mean duration of recent analyses.

A request takes its place only once its whole body has arrived (a slow or
abandoned upload costs a connection, never a place), and the place is a
`Place` object given back exactly once, by `run` or by whoever held it when
the request ended some other way. `BodyBudget` bounds the bytes of bodies
still arriving, which are not admitted yet and so not bounded by the places.
"""

import math
import threading
import time
from typing import Callable, Optional, TypeVar

Result = TypeVar("Result")
# Recent analyses weigh this much in the running mean of their duration.
_SMOOTHING = 0.2
MAX_RETRY_AFTER_S = 120


class Place:
    """One admitted request's place: `give_back()` returns it once, and does nothing when called again,
    so every path that ends a request can call it without counting twice."""

    def __init__(self, admission: "Admission"):
        self._admission = admission
        self.held = True

    def give_back(self) -> None:
        self._admission._give_back(self)


class Admission:
    """Counts admitted and running requests; thread-safe."""

    def __init__(self, max_in_flight: int, max_queued: int, initial_duration_s: float = 2.0):
        if max_in_flight < 1 or max_queued < 0:
            raise ValueError(f"max_in_flight={max_in_flight} must be >= 1 and max_queued={max_queued} >= 0")
        self.max_in_flight = max_in_flight
        self.capacity = max_in_flight + max_queued
        self._slots = threading.Semaphore(max_in_flight)
        self._lock = threading.Lock()
        self.admitted = 0
        self.in_flight = 0
        self.rejected = 0
        self._mean_duration_s = initial_duration_s
        self._full_since: Optional[float] = None

    @property
    def queued(self) -> int:
        return self.admitted - self.in_flight

    def admit(self) -> Optional[Place]:
        """Takes a place in the queue, or returns None (and counts a rejection) when it is full."""
        with self._lock:
            if self.admitted >= self.capacity:
                self.rejected += 1
                return None
            self.admitted += 1
            if self.admitted >= self.capacity and self._full_since is None:
                self._full_since = time.monotonic()
            return Place(self)

    def _give_back(self, place: Place) -> None:
        with self._lock:
            if not place.held:
                return
            place.held = False
            self.admitted -= 1
            if self.admitted < self.capacity:
                self._full_since = None

    def full_for_s(self) -> float:
        """How long every place has been taken without a break; 0 while one is free.

        A service full for minutes admits nothing: readiness reports it, so
        an orchestrator sends traffic elsewhere or restarts it.
        """
        with self._lock:
            return 0.0 if self._full_since is None else time.monotonic() - self._full_since

    def run(self, place: Place, work: Callable[[], Result], on_start: Callable[[], None] = lambda: None) -> Result:
        """Waits for a slot, runs `work` in it, then gives the slot and `place` back, whatever `work` does."""
        try:
            self._slots.acquire()
        except BaseException:
            place.give_back()
            raise
        with self._lock:
            self.in_flight += 1
        started = time.monotonic()
        try:
            on_start()
            return work()
        finally:
            elapsed = time.monotonic() - started
            with self._lock:
                self.in_flight -= 1
                self._mean_duration_s += _SMOOTHING * (elapsed - self._mean_duration_s)
            place.give_back()
            self._slots.release()

    def retry_after_s(self) -> int:
        """Seconds until a place should free up: the admitted requests' work spread over the slots."""
        with self._lock:
            waves = math.ceil((self.admitted - self.max_in_flight + 1) / self.max_in_flight)
            return int(min(MAX_RETRY_AFTER_S, max(1, math.ceil(max(1, waves) * self._mean_duration_s))))


class BodyBudget:
    """Bytes of request bodies still arriving, at most `limit` in all; thread-safe.

    Places bound the bodies of admitted requests; a body still arriving holds
    no place, so without this many fast uploads at once could hold any amount
    of memory between them.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Reserves `size` bytes, or returns False when that would go over the limit."""
        with self._lock:
            if self.held + size > self.limit:
                return False
            self.held += size
            return True

    def give_back(self, size: int) -> None:
        """Returns `size` bytes taken by a body that has arrived, been refused or been abandoned."""
        with self._lock:
            self.held -= size
