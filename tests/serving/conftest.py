"""A model server (the real TF Serving binary when installed, else the local one) over freshly pushed models.

Models: `faces` (latest version), `pinned` (versions 1 and 2 under the labels
`stable` and `canary`) and `swap` (for the hot-swap test, which pushes a
version 2 while requests stream in).
"""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import tensorflow as tf

from serving.model_server import launch, model_config
from serving.service.analysis import DetectionService
from serving.service.media import IsolatedDecoder
from serving.service.settings import ServiceSettings
from tests.helpers import free_port, push
from tests.serving.decoders import crashing_or_hanging
from tests.serving.helpers import LIMITS, serving_on_loopback


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
