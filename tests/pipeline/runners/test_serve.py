"""`pipeline_runner.py serve`: one command serves the latest push, or a pinned version (rollback)."""

import os
import signal
import subprocess
import sys

import numpy as np

from serving.client.local_model import InProcessModel
from serving.client.tf_serving import GrpcClient, ModelTarget, RestClient
from serving.model_server import launch
from tests.helpers import face_crops, free_port, push

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _serve(tmp_path, serving_dir, *flags):
    grpc_port, rest_port = free_port(), free_port()
    command = [sys.executable, "pipeline_runner.py", "serve", "--serving-dir", serving_dir]
    command += ["--config-dir", str(tmp_path / "config"), "--grpc-port", str(grpc_port), "--rest-port", str(rest_port)]
    process = subprocess.Popen([*command, *flags], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return process, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{rest_port}"


def _stop(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_serve_serves_the_latest_push_and_a_pinned_rollback(tmp_path, exported_models):
    serving_dir = str(tmp_path / "serving_models")
    push(exported_models[1], os.path.join(serving_dir, "meso4"), 100)
    push(exported_models[2], os.path.join(serving_dir, "meso4"), 200)
    images = face_crops(3)
    expected = {
        v: InProcessModel(exported_models[seed]).predict(images).probabilities for v, seed in ((100, 1), (200, 2))
    }

    process, grpc_address, rest_url = _serve(tmp_path, serving_dir)
    try:
        launch.wait_until_available(rest_url, "meso4", process)
        client = GrpcClient(grpc_address, ModelTarget("meso4"))
        prediction = client.predict(images)
        client.close()
        assert prediction.model_version == 200
        np.testing.assert_allclose(prediction.probabilities, expected[200], atol=1e-6)
    finally:
        _stop(process)
    assert os.path.exists(tmp_path / "config" / "models.config")

    process, grpc_address, rest_url = _serve(tmp_path, serving_dir, "--pin", "meso4=100")
    try:
        launch.wait_until_available(rest_url, "meso4", process)
        rest = RestClient(rest_url, ModelTarget("meso4", label="stable"))
        np.testing.assert_allclose(rest.predict(images).probabilities, expected[100], atol=1e-6)
        assert [s.version for s in rest.status().model_version_status] == [100]
    finally:
        _stop(process)


def test_serve_without_pushed_models_says_so(tmp_path):
    process, _, _ = _serve(tmp_path, str(tmp_path / "empty"))
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1 and b"No pushed model" in output
