"""A model server (the real TF Serving binary when installed, else the local one) over freshly pushed models.

Models: `faces` (latest version), `pinned` (versions 1 and 2 under the labels
`stable` and `canary`) and `swap` (for the hot-swap test, which pushes a
version 2 while requests stream in).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from typing import Callable, Iterator

import keras
import pytest
import tensorflow as tf
import uvicorn

from deepfake_detection.evaluation import operating_point
from deepfake_detection.models import data, export
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import get_backbone
from serving import launch, model_config
from serving.detection_service import DetectionService, ServiceSettings, create_app, uvicorn_config
from serving.media import IsolatedDecoder
from tests.conftest import face_crops, spread_outputs
from tests.serving.decoders import crashing_or_hanging

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
    """A Meso-4 at 64 px whose untrained scores spread over (0, 1), exported with its signatures and an
    operating point fitted on made-up held-out scores (each seed its own)."""
    keras.utils.set_random_seed(seed)
    model = get_backbone("meso4").build(ModelSettings(input_size=64), {})
    spread_outputs(model, data.decode_images(tf.constant(face_crops(6))))
    reals, fakes = [0.1, 0.2, 0.3, 0.35, 0.4 + 0.05 * seed], [0.5, 0.6, 0.7, 0.8, 0.9]
    export.export_saved_model(model, export_dir, fitted=operating_point.fit_operating_point(reals, fakes))


def push(saved_model_dir: str, base_path: str, version: int) -> str:
    """Copies a SavedModel to `<base_path>/<version>` through a temporary folder and one rename."""
    target = os.path.join(base_path, str(version))
    staging = os.path.join(base_path, f".staging-{version}")
    shutil.copytree(saved_model_dir, staging)
    os.rename(staging, target)
    return target


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    paths = {}
    for seed in (1, 2):
        paths[seed] = str(root / f"seed{seed}")
        export_face_model(paths[seed], seed)
    return paths


@pytest.fixture(scope="session")
def model_server(tmp_path_factory, exported_models):
    base = tmp_path_factory.mktemp("serving_models")
    push(exported_models[1], str(base / "faces"), 1)
    push(exported_models[1], str(base / "pinned"), 1)
    push(exported_models[2], str(base / "pinned"), 2)
    push(exported_models[1], str(base / "swap"), 1)
    models = [
        model_config.ServingModel("faces", str(base / "faces")),
        model_config.release("pinned", str(base / "pinned"), stable=1, canary=2),
        model_config.ServingModel("swap", str(base / "swap")),
    ]
    configs = model_config.write_serving_configs(str(tmp_path_factory.mktemp("serving_config")), models)
    grpc_port, rest_port = free_port(), free_port()
    command = launch.model_server_command(
        configs[model_config.MODELS_CONFIG_FILE],
        grpc_port,
        rest_port,
        monitoring_config=configs[model_config.MONITORING_FILE],
        poll_seconds=0.5,
    )
    log = open(tmp_path_factory.mktemp("logs") / "model_server.log", "w")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    rest_url = f"http://127.0.0.1:{rest_port}"
    try:
        for model in models:
            launch.wait_until_available(rest_url, model.name, process)
        yield SimpleNamespace(
            rest_url=rest_url,
            grpc_address=f"127.0.0.1:{grpc_port}",
            base=str(base),
            exported=exported_models,
            local=os.path.basename(command[0]) != launch.TF_SERVING_BINARY,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        if process.returncode not in (0, -15):
            sys.stderr.write(open(log.name).read())


@pytest.fixture(scope="session")
def in_process(exported_models):
    """The exported models called in this process: the reference every served answer must match."""
    return {seed: tf.saved_model.load(path) for seed, path in exported_models.items()}


@pytest.fixture(scope="session")
def service(model_server, tmp_path_factory):
    """The service app under uvicorn on a loopback port, with the test decoder in its isolated process."""
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path_factory.mktemp('history')}/history.sqlite",
        frames_per_video=6,
        decode_timeout_s=8.0,
        **LIMITS,
    )
    decoder = IsolatedDecoder(settings.decode_timeout_s, decoder=crashing_or_hanging)
    detection = DetectionService(settings, decoder=decoder)
    with serving_on_loopback(detection) as url:
        yield url, detection


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


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server; `postgres(name)` makes a new database on it and returns its URL.

    Missing server binaries skip the tests outside CI and fail them in CI,
    where `make test` installs Debian's postgresql first.
    """
    from tests.serving.postgres import create_database, postgres_server, server_binaries

    binaries = server_binaries()
    if binaries is None:
        message = "PostgreSQL server binaries not found (make test installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with postgres_server(binaries) as server_url:
        yield lambda name: create_database(server_url, name)
