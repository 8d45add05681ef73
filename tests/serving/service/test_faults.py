"""Model-server faults, injected into a real model server (the local drop-in, or TF Serving when installed) in a
process of its own: frozen with SIGSTOP, then killed and started again on the same ports. The service in front
answers at its deadline, then at once through its open circuit, with Retry-After and a message naming the cause
(never an address); readiness comes from a cached probe; after the model server is back, uploads succeed
within seconds (the bounded reconnect back-off), not after gRPC's default back-off."""

import os
import signal
import subprocess
import time

import cv2
import httpx
import pytest
import skimage.data

from serving.model_server import launch, model_config
from serving.service.analysis import DetectionService
from serving.service.settings import ServiceSettings
from tests.helpers import free_port, push
from tests.serving.helpers import LIMITS, serving_on_loopback

FACE = cv2.imencode(".jpg", skimage.data.astronaut()[..., ::-1])[1].tobytes()
# The service's model-server deadline in these tests: 2 s plus 0.25 s per face (one face here).
DEADLINE_S = 2.25


class ModelServer:
    """A model server serving `faces` in a subprocess, which a test can freeze, thaw, kill and start again."""

    def __init__(self, base: str, config_dir: str, log_path: str):
        models = [model_config.ServingModel("faces", base)]
        configs = model_config.write_serving_configs(config_dir, models)
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.command = launch.model_server_command(
            configs[model_config.MODELS_CONFIG_FILE], self.grpc_port, self.rest_port, poll_seconds=0.5
        )
        self.log_path = log_path
        self.process = None

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> float:
        """Starts it and waits until `faces` is AVAILABLE; returns that moment (time.monotonic)."""
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()}
            )
        launch.wait_until_available(f"http://127.0.0.1:{self.rest_port}", "faces", self.process)
        return time.monotonic()

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def faulty_model_server(tmp_path, exported_models):
    push(exported_models[1], str(tmp_path / "faces"), 1)
    server = ModelServer(str(tmp_path / "faces"), str(tmp_path / "config"), str(tmp_path / "model_server.log"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service_on(faulty_model_server, tmp_path):
    settings = ServiceSettings(
        model_server=faulty_model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path}/history.sqlite",
        frames_per_video=6,
        model_timeout_s=2.0,
        model_timeout_per_image_s=0.25,
        **LIMITS,
    )
    detection = DetectionService(settings)
    try:
        with serving_on_loopback(detection) as url:
            yield url, detection
    finally:
        detection.close()


def upload(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/detect", files={"files": ("face.jpg", FACE)}, timeout=120)


def timed(call, *args):
    started = time.monotonic()
    result = call(*args)
    return result, time.monotonic() - started


def assert_unavailable(response: httpx.Response, grpc_port: int) -> None:
    """503 with Retry-After, the cause named, no address or gRPC detail in the body."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    [result] = response.json()["results"]
    assert result["error"] == {"kind": "model_server", "message": "model server unavailable"}
    assert str(grpc_port) not in response.text and "ipv" not in response.text and "127.0.0.1" not in response.text


def test_a_frozen_model_server_is_answered_at_its_deadline_then_at_once_and_readiness_never_waits(
    faulty_model_server, service_on
):
    url, _ = service_on
    assert upload(url).status_code == 200
    faulty_model_server.signal(signal.SIGSTOP)
    first, first_s = timed(upload, url)
    assert_unavailable(first, faulty_model_server.grpc_port)
    assert DEADLINE_S - 0.5 <= first_s < 15, "the deadline follows the batch, not a minute"
    second, second_s = timed(upload, url)
    assert_unavailable(second, faulty_model_server.grpc_port)
    assert second_s < DEADLINE_S, "the open circuit answers without waiting for the model server"
    ready, ready_s = timed(httpx.get, f"{url}/readyz")
    assert ready.status_code == 503 and ready.json()["reason"] == "model server unavailable"
    assert ready_s < 2
    metrics = httpx.get(f"{url}/metrics").text
    assert "detection_model_server_circuit_open 1.0" in metrics

    faulty_model_server.signal(signal.SIGCONT)
    thawed_at = time.monotonic()
    assert first_good_upload(url) - thawed_at < 10
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert "detection_model_server_circuit_open 0.0" in httpx.get(f"{url}/metrics").text


def first_good_upload(url: str, patience_s: float = 30) -> float:
    """When (time.monotonic) an upload, retried every 0.25 s while answered 503 with Retry-After, got a 200."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        response = upload(url)
        if response.status_code == 200:
            return time.monotonic()
        assert response.status_code == 503 and "Retry-After" in response.headers, response.text
        time.sleep(0.25)
    return float("inf")


def test_a_killed_model_server_is_answered_at_once_and_its_return_is_noticed_within_seconds(
    faulty_model_server, service_on
):
    url, detection = service_on
    assert upload(url).status_code == 200
    faulty_model_server.kill()
    first, first_s = timed(upload, url)
    assert_unavailable(first, faulty_model_server.grpc_port)
    assert first_s < 15
    assert detection.client.is_open
    model = httpx.get(f"{url}/v1/model")
    assert model.status_code == 503 and "Retry-After" in model.headers
    assert model.json()["error"]["message"] == "model server unavailable"
    time.sleep(3)  # a few seconds down: under gRPC's default back-off the next attempt would be seconds away

    available_at = faulty_model_server.start()
    recovered_s = first_good_upload(url) - available_at
    assert recovered_s < 5, f"first good upload {recovered_s:.1f} s after the model server was AVAILABLE"
