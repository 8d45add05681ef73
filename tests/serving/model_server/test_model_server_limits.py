"""The model server under hostile requests: batch and decoded-pixel caps, JSON 400 for anything unusable,
JSON 405 for other methods, and REST connections bounded by a thread pool, a socket timeout and a body
deadline. The served model is the session's model server process; the connection tests run a REST server
of their own in this process, on loopback, with a small pool and a short timeout."""

import base64
import json
import threading
import time

import httpx
import pytest
import tensorflow as tf
from tensorflow_serving.config import model_server_config_pb2

from deepfake_detection import contract
from serving.model_server import server
from serving.model_server.rest import RestServer
from serving.model_server.servables import ModelRegistry
from tests.helpers import face_crops, free_port
from tests.serving import hostile

FACE = face_crops(1)[0]


def _b64(data):
    return {"b64": base64.b64encode(data).decode()}


def _predict(model_server, body=None, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    response = httpx.post(
        f"{model_server.rest_url}/v1/models/faces:predict",
        content=data,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    return response.status_code, response.json()


def test_instances_over_max_batch_size_are_refused_before_the_model_runs(model_server):
    limit = server.parse_args(["--model_base_path", "x"]).max_batch_size
    status, answer = _predict(model_server, {"instances": [_b64(FACE)] * limit})
    assert status == 200 and len(answer["predictions"]) == limit
    started = time.monotonic()
    status, answer = _predict(model_server, {"instances": [_b64(FACE)] * 1024})
    assert status == 400 and "max_batch_size" in answer["error"], answer
    assert time.monotonic() - started < 5
    status, answer = _predict(model_server, {"inputs": [_b64(FACE)] * (limit + 1)})
    assert status == 400 and "max_batch_size" in answer["error"]


def test_images_declaring_too_many_pixels_are_refused_from_their_headers(model_server):
    bomb = hostile.png_declaring(15000, 15000)
    assert len(bomb) < 1_000_000
    started = time.monotonic()
    status, answer = _predict(model_server, {"instances": [_b64(bomb)]})
    assert status == 400 and "max_decoded_image_bytes" in answer["error"], answer
    assert time.monotonic() - started < 5
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[bomb])),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
            }
        )
    )
    body = {"signature_name": "serving_tf_example", "instances": [_b64(example.SerializeToString())]}
    status, answer = _predict(model_server, body)
    assert status == 400 and "max_decoded_image_bytes" in answer["error"], answer


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"instances": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
        b'{"instances": ' + b"[" * 900 + b"]" * 900 + b"}",
        json.dumps({"signature_name": ["x"], "instances": ["a"]}).encode(),
        json.dumps({"signature_name": {"a": 1}, "instances": ["a"]}).encode(),
        json.dumps({"instances": [{"images": _b64(FACE)}, {"images": 1e308}]}).encode(),
        json.dumps({"inputs": {"images": {"b64": 5}}}).encode(),
        json.dumps(["instances"]).encode(),
        b"1e99999",
    ],
)
def test_any_json_the_server_cannot_use_answers_400_json(model_server, raw):
    status, answer = _predict(model_server, raw=raw)
    assert status == 400 and set(answer) == {"error"}, answer


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "OPTIONS", "TRACE"])
def test_methods_not_served_answer_405_json(model_server, method):
    response = httpx.request(method, f"{model_server.rest_url}/v1/models/faces", timeout=30)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, POST"
    assert "error" in response.json()


def test_a_malformed_request_line_answers_json(model_server):
    port = int(model_server.rest_url.rsplit(":", 1)[1])
    with hostile.connect(port) as sock:
        sock.sendall(b"GET /v1/models two words HTTP/1.1\r\n\r\n")
        response, _ = hostile.read_until_closed(sock, 10)
    assert hostile.status_of(response) == 400
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["error"]


def test_host_binds_both_ports_and_defaults_to_loopback():
    args = server.parse_args(["--model_base_path", "x"])
    assert (args.grpc_bind_address, args.rest_api_bind_address) == ("127.0.0.1", "127.0.0.1")
    args = server.parse_args(["--model_base_path", "x", "--host", "0.0.0.0"])
    assert (args.grpc_bind_address, args.rest_api_bind_address) == ("0.0.0.0", "0.0.0.0")
    args = server.parse_args(["--model_base_path", "x", "--host", "0.0.0.0", "--rest_api_bind_address", "::1"])
    assert (args.grpc_bind_address, args.rest_api_bind_address) == ("0.0.0.0", "::1")


def test_the_local_server_listens_on_loopback_by_default(tmp_path):
    rest_port = free_port()
    args = server.parse_args(["--model_base_path", str(tmp_path), "--port", "0", "--rest_api_port", str(rest_port)])
    local = server.LocalModelServer(args)
    try:
        assert local.rest.server_address == ("127.0.0.1", rest_port)
    finally:
        local.rest.server_close()


POOL = 2
TIMEOUT_S = 1.0


@pytest.fixture()
def small_rest_server():
    """A REST server of two threads and a one-second timeout, serving no model, on a loopback port."""
    registry = ModelRegistry(model_server_config_pb2.ModelServerConfig(), poll_seconds=0)
    rest = RestServer(("127.0.0.1", 0), registry, 1_000_000, None, threads=POOL, timeout_s=TIMEOUT_S)
    thread = threading.Thread(target=rest.serve_forever, daemon=True)
    thread.start()
    try:
        yield rest.server_address[1]
    finally:
        rest.shutdown()
        rest.server_close()
        thread.join(10)


def test_held_connections_use_the_pool_not_a_thread_each_and_time_out(small_rest_server):
    port = small_rest_server
    threads_before = threading.active_count()
    idle = hostile.open_many(port, 6)
    time.sleep(0.5)
    assert threading.active_count() <= threads_before + POOL
    started = time.monotonic()
    answer = httpx.get(f"http://127.0.0.1:{port}/v1/models/nobody", timeout=30)
    assert answer.status_code == 404 and "error" in answer.json()
    assert time.monotonic() - started < 6 * TIMEOUT_S + 3
    for sock in idle:
        _, closed = hostile.read_until_closed(sock, 6 * TIMEOUT_S + 3)
        assert closed, "the server closes a connection that sent nothing within its timeout"
        sock.close()


def test_a_dripped_body_gets_408_within_the_deadline(small_rest_server):
    port = small_rest_server
    body = json.dumps({"instances": [_b64(FACE)]}).encode()
    dripper = hostile.Dripper(port, "/v1/models/nobody:predict", body, "application/json", 10, 0.1)
    started = time.monotonic()
    dripper.start()
    dripper.join(TIMEOUT_S + 10)
    assert hostile.status_of(dripper.response) == 408 and dripper.closed
    assert time.monotonic() - started < TIMEOUT_S + 3
    assert httpx.get(f"http://127.0.0.1:{port}/v1/models/nobody", timeout=10).status_code == 404
