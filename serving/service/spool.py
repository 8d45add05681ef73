"""A verdict is never lost to its record: checks the history database could not take wait in a bounded spool on
disk, beside the service, and are written once the database is back, exactly once.

`Recorder.record` writes a check under a fresh record id; when the database is
unavailable the check's row goes to the `Spool` (one JSON file per check) and
the service reports its history as degraded (`/healthz`, metrics) while
verdicts go on. A thread then retries every `retry_s`: it reconnects (a SQLite
file deleted under the service is made again, empty), writes the spooled
rows, oldest first, deleting each file only once its row is in the database,
and stops when the spool is empty and the database answers. A row written
whose file could not be deleted (the service killed between the two) is
written again on the next replay, and the record id makes that a no-op, so
every spooled check appears once. The spool is bounded in bytes; past its
bound a check is dropped, logged and counted (`detection_history_dropped`).
"""

import json
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from serving.service.history import Check, History, HistoryUnavailableError, check_row

_SUFFIX = ".json"


def spool_folder(configured: Optional[str], history_url: str) -> str:
    """The spool's folder: as configured, else beside a SQLite history file, else `outputs/history_spool`."""
    if configured:
        return configured
    if history_url.startswith("sqlite:///"):
        return os.path.abspath(history_url[len("sqlite:///") :]) + ".spool"
    return os.path.join("outputs", "history_spool")


class Spool:
    """Rows waiting for the database, one file each in `folder` (named so that they sort oldest first), at most
    `max_bytes` in all; thread-safe within a process. Files left by an earlier run are picked up."""

    def __init__(self, folder: str, max_bytes: int):
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        os.makedirs(folder, exist_ok=True)
        self._bytes = sum(os.path.getsize(path) for path in self._files())

    def _files(self) -> List[str]:
        names = sorted(name for name in os.listdir(self.folder) if name.endswith(_SUFFIX))
        return [os.path.join(self.folder, name) for name in names]

    def __len__(self) -> int:
        return len(self._files())

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, row: Mapping[str, Any]) -> bool:
        """Keeps `row` (it must have a `check_id`) until it is replayed; False when the spool is full."""
        data = json.dumps(row).encode()
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                return False
            path = os.path.join(self.folder, f"{time.time_ns():020d}-{row['check_id']}{_SUFFIX}")
            with open(path + ".part", "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(path + ".part", path)  # a row is in the spool whole, or not at all
            self._bytes += len(data)
        return True

    def replay(self, write: Callable[[Dict[str, Any]], None]) -> int:
        """Writes every row, oldest first, removing each file once `write` returned; stops at the first error,
        which it raises. Returns how many were written."""
        written = 0
        with self._lock:
            for path in self._files():
                with open(path, "rb") as f:
                    data = f.read()
                write(json.loads(data))
                os.remove(path)
                self._bytes -= len(data)
                written += 1
        return written


class Recorder:
    """Records checks in the history, or in the spool while the database is unavailable, and knows which."""

    def __init__(self, history: History, spool: Spool, retry_s: float = 5.0):
        self.history = history
        self.spool = spool
        self.retry_s = retry_s
        self.dropped = 0
        self._lock = threading.Lock()
        self._degraded_since: Optional[float] = None
        self._retrier: Optional[threading.Thread] = None
        self._stopped = threading.Event()
        history.on_unavailable = lambda error: self._degrade()
        if len(spool):
            self._degrade()

    @property
    def degraded(self) -> bool:
        return self._degraded_since is not None

    def record(self, check: Check) -> bool:
        """Writes `check`; False when it went to the spool (or, the spool full, was dropped) instead."""
        row = check_row(check)
        if not self.degraded:
            try:
                self.history.write_record(row)
                return True
            except HistoryUnavailableError:
                pass
        with self._lock:  # the spool and the retrier's decision to stop see the same state
            self._degrade_locked()
            if self.spool.add(row):
                return False
            self.dropped += 1
        logging.error("The history spool is full (%d bytes): check of %s dropped", self.spool.max_bytes, row["sha256"])
        return False

    def health(self) -> dict:
        """The history's state for `/healthz`: ok, or degraded since when, with how many checks spooled."""
        if not self.degraded:
            return {"state": "ok", "spooled": len(self.spool)}
        since = time.monotonic() - (self._degraded_since or time.monotonic())
        return {
            "state": "degraded",
            "detail": (
                f"the history database has been unavailable for {since:.0f} s: verdicts are answered and their "
                "checks spooled; jobs and the history cannot be read"
            ),
            "spooled": len(self.spool),
            "dropped": self.dropped,
        }

    def _degrade(self) -> None:
        with self._lock:
            self._degrade_locked()

    def _degrade_locked(self) -> None:
        if self._degraded_since is None:
            self._degraded_since = time.monotonic()
        if self._retrier is None and not self._stopped.is_set():
            self._retrier = threading.Thread(target=self._retry_until_written, name="history-replay", daemon=True)
            self._retrier.start()

    def _retry_until_written(self) -> None:
        while not self._stopped.wait(self.retry_s):
            try:
                self.history.reconnect()
                replayed = self.spool.replay(self.history.write_record)
            except HistoryUnavailableError:
                continue
            with self._lock:
                if len(self.spool) == 0:
                    self._degraded_since, self._retrier = None, None
                    logging.info("The history database is back: %d spooled checks written", replayed)
                    return

    def close(self) -> None:
        self._stopped.set()
