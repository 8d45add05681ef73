"""Helpers of the serving tests: free ports, pushing and exporting models, a service on loopback, jobs."""

import contextlib
import os
import shutil
import socket
import threading
import time
from typing import Callable, Iterator

import keras
import tensorflow as tf
import uvicorn

from deepfake_detection.models import data, export
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import get_backbone
from serving.detection_service import DetectionService, create_app
from tests.helpers import face_crops, spread_outputs

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_face_model(export_dir: str, seed: int) -> None:
    """A Meso-4 at 64 px whose untrained scores spread over (0, 1), exported with its signatures."""
    keras.utils.set_random_seed(seed)
    model = get_backbone("meso4").build(ModelSettings(input_size=64), {})
    spread_outputs(model, data.decode_images(tf.constant(face_crops(6))))
    export.export_saved_model(model, export_dir)


def push(saved_model_dir: str, base_path: str, version: int) -> str:
    """Copies a SavedModel to `<base_path>/<version>` through a temporary folder and one rename."""
    target = os.path.join(base_path, str(version))
    staging = os.path.join(base_path, f".staging-{version}")
    shutil.copytree(saved_model_dir, staging)
    os.rename(staging, target)
    return target


@contextlib.contextmanager
def serving_on_loopback(detection: DetectionService) -> Iterator[str]:
    """The service's app under uvicorn on a free loopback port, in a thread, for the block; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(detection), host="127.0.0.1", port=port, log_level="warning"))
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
