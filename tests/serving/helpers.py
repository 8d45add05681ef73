"""Helpers of the serving tests: free ports, pushing and exporting models, a service on loopback, jobs."""

import contextlib
import threading
import time
from typing import Callable, Iterator

import uvicorn

from serving.service.analysis import DetectionService
from serving.service.detection_service import create_app, uvicorn_config
from tests.helpers import free_port

# Service limits of the tests: the astronaut (512x512) fits, a 640x480 video and a 5 s video do not.
LIMITS = {"max_body_bytes": 2_000_000, "max_duration_s": 3.0, "max_pixels": 512 * 512}


# A service with one analysis at a time and one waiting (a capacity of 2), for the load tests.
SMALL_SERVICE = {**LIMITS, "frames_per_video": 6, "max_in_flight": 1, "max_queued": 1}


def finished_job(fetch: Callable[[], dict], timeout_s: float = 120.0, poll_s: float = 0.1) -> dict:
    """Polls a job (`fetch` returns its JSON) until it is neither queued nor running, or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    job = fetch()
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(poll_s)
        job = fetch()
    return job


@contextlib.contextmanager
def serving_on_loopback(detection: DetectionService) -> Iterator[str]:
    """The service's app under uvicorn on a free loopback port, in a thread, for the block; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(detection), detection.settings, "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
