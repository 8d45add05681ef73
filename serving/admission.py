"""Admission control of the detection service: a bounded number of analyses at once, a bounded queue behind.

Each analysis holds a video's sampled frames and a face detector for about a
second per video on 2 cores; unbounded, a burst of uploads multiplies the
service's memory until the container dies. `Admission` admits a request only
while fewer than `max_in_flight + max_queued` are admitted; admitted requests
run `max_in_flight` at a time, the others wait in order. A refused request is
answered 503 with `Retry-After`: the time the queue ahead of it should take,
from the mean duration of recent analyses.
"""

import math
import threading
import time
from typing import Callable, TypeVar

Result = TypeVar("Result")
# Recent analyses weigh this much in the running mean of their duration.
_SMOOTHING = 0.2
MAX_RETRY_AFTER_S = 120


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

    @property
    def queued(self) -> int:
        return self.admitted - self.in_flight

    def admit(self) -> bool:
        """Takes a place in the queue, or returns False (and counts a rejection) when it is full."""
        with self._lock:
            if self.admitted >= self.capacity:
                self.rejected += 1
                return False
            self.admitted += 1
            return True

    def leave(self) -> None:
        """Gives back the place of an admitted request that will not run (its upload was refused)."""
        with self._lock:
            self.admitted -= 1

    def run(self, work: Callable[[], Result], on_start: Callable[[], None] = lambda: None) -> Result:
        """Waits for a slot, runs `work` in it, then gives the slot and the place back. Needs `admit()` first."""
        self._slots.acquire()
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
                self.admitted -= 1
                self._mean_duration_s += _SMOOTHING * (elapsed - self._mean_duration_s)
            self._slots.release()

    def retry_after_s(self) -> int:
        """Seconds until a place should free up: the admitted requests' work spread over the slots."""
        with self._lock:
            waves = math.ceil((self.admitted - self.max_in_flight + 1) / self.max_in_flight)
            return int(min(MAX_RETRY_AFTER_S, max(1, math.ceil(max(1, waves) * self._mean_duration_s))))
