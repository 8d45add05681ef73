"""Admission control of the detection service: a bounded number of analyses at once, a bounded queue behind,
and a fair share of both for each API key.

Each analysis holds a video's sampled frames and a face detector for about a
second per video on 2 cores; unbounded, a burst of uploads multiplies the
service's memory until the container dies. `Admission` admits a request only
while fewer than `max_in_flight + max_queued` are admitted; admitted requests
run `max_in_flight` at a time, the others wait. A refused request is answered
503 with `Retry-After`: the time the queue ahead of it should take, from the
mean duration of recent analyses.

Many users share one service, so one key's burst must not take the whole
queue: a key holds at most `max_in_flight_per_key` running and
`max_queued_per_key` waiting places (beyond them it is refused, 429), and a
freed slot goes to the waiting request whose key runs the fewest analyses,
then whose key started one longest ago (round robin), its oldest request
first. Requests without a key (a service without
authentication) share the global limits only.
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
# The limits `try_admit` names when it refuses a request.
QUEUE_FULL = "max_queued"
KEY_QUEUE_FULL = "max_queued_per_key"


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

    @property
    def queued(self) -> int:
        return self.admitted - self.in_flight

    def admit(self) -> bool:
        """Takes a place in the queue for a request without a key, or returns False (a rejection) when full."""
        return self.try_admit(None) is None

    def try_admit(self, key: Optional[str]) -> Optional[str]:
        """Takes a place in the queue for `key`'s request: None, or the limit that refuses it (and counts a
        rejection): `KEY_QUEUE_FULL` when the key holds its share, `QUEUE_FULL` when the service is full."""
        with self._lock:
            if key is not None and self._admitted_by_key[key] >= self.key_capacity:
                refusal: Optional[str] = KEY_QUEUE_FULL
            elif self.admitted >= self.capacity:
                refusal = QUEUE_FULL
            else:
                self.admitted += 1
                self._admitted_by_key[key] += 1
                return None
            self.rejected += 1
            return refusal

    def leave(self, key: Optional[str] = None) -> None:
        """Gives back the place of an admitted request that will not run (its upload was refused)."""
        with self._lock:
            self._release_place(key)

    def run(
        self, work: Callable[[], Result], on_start: Callable[[], None] = lambda: None, key: Optional[str] = None
    ) -> Result:
        """Waits for a slot (and the key's turn), runs `work` in it, then gives the slot and the place back.
        Needs an admission of the same key first."""
        with self._turn:
            arrival = (next(self._arrivals), key)
            self._waiting.append(arrival)
            while self._next_to_run() != arrival:
                self._turn.wait()
            self._waiting.remove(arrival)
            self.in_flight += 1
            self._running_by_key[key] += 1
            self._last_start_by_key[key] = next(self._starts)
            # Another waiter may be next now that this one left the line (a second free slot).
            self._turn.notify_all()
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
                self._release_place(key)
                self._mean_duration_s += _SMOOTHING * (elapsed - self._mean_duration_s)
                self._turn.notify_all()

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

    def _release_place(self, key: Optional[str]) -> None:
        self.admitted -= 1
        self._admitted_by_key[key] -= 1
        if not self._admitted_by_key[key]:
            del self._admitted_by_key[key]
            self._last_start_by_key.pop(key, None)

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
