"""The model server answers TF Serving's REST and gRPC protocols: formats, versions, labels, errors."""

import base64
import json

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.helpers import face_crops

FACES = face_crops(4)


def _b64(images):
    return [{"b64": base64.b64encode(i).decode()} for i in images]


def _expected(in_process, seed, images=FACES):
    return in_process[seed].signatures["serving_default"](images=tf.constant(images))["fake_probability"].numpy()


def _rest(url, body=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is None:
        response = httpx.get(url, timeout=30)
    else:
        response = httpx.post(url, content=data, headers={"Content-Type": "application/json"}, timeout=30)
    return response.status_code, response.json()


def _row_probabilities(rows):
    """`fake_probability` of each row of a row-format answer (objects: the signature has two outputs)."""
    return [row["fake_probability"] for row in rows]


def test_rest_row_format_matches_the_saved_model(model_server, in_process):
    status, answer = _rest(f"{model_server.rest_url}/v1/models/faces:predict", {"instances": _b64(FACES)})
    assert status == 200
    np.testing.assert_allclose(_row_probabilities(answer["predictions"]), _expected(in_process, 1), atol=1e-6)
    point = in_process[1].signatures["serving_default"](images=tf.constant(FACES))["operating_point"].numpy()
    np.testing.assert_allclose([row["operating_point"] for row in answer["predictions"]], point, atol=1e-6)


def test_rest_columnar_format_named_and_unnamed(model_server, in_process):
    url = f"{model_server.rest_url}/v1/models/faces:predict"
    for inputs in (_b64(FACES), {"images": _b64(FACES)}):
        status, answer = _rest(url, {"signature_name": "serving_default", "inputs": inputs})
        assert status == 200 and set(answer) == {"outputs"}
        assert set(answer["outputs"]) == {"fake_probability", "operating_point"}
        np.testing.assert_allclose(answer["outputs"]["fake_probability"], _expected(in_process, 1), atol=1e-6)


def test_rest_versions_and_labels_select_the_model(model_server, in_process):
    root = f"{model_server.rest_url}/v1/models/pinned"
    for path, seed in (("/versions/1", 1), ("/versions/2", 2), ("/labels/stable", 1), ("/labels/canary", 2), ("", 2)):
        status, answer = _rest(f"{root}{path}:predict", {"instances": _b64(FACES)})
        assert status == 200, answer
        np.testing.assert_allclose(_row_probabilities(answer["predictions"]), _expected(in_process, seed), atol=1e-6)


def test_rest_status_and_metadata(model_server):
    status, answer = _rest(f"{model_server.rest_url}/v1/models/pinned")
    assert status == 200
    states = {(s["version"], s["state"]) for s in answer["model_version_status"]}
    assert states == {("1", "AVAILABLE"), ("2", "AVAILABLE")}
    assert all(s["status"]["error_code"] == "OK" for s in answer["model_version_status"])
    status, answer = _rest(f"{model_server.rest_url}/v1/models/faces/metadata")
    assert status == 200 and answer["model_spec"]["name"] == "faces" and answer["model_spec"]["version"] == "1"
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "serving_tf_example"} <= set(signatures)
    assert set(signatures["serving_default"]["inputs"]) == {"images"}
    assert set(signatures["serving_default"]["outputs"]) == {"fake_probability", "operating_point"}


@pytest.mark.parametrize(
    "path, body, raw, code, message",
    [
        ("faces:predict", None, b"{not json", 400, "JSON"),
        ("faces:predict", {"signature_name": "serving_default"}, None, 400, "instances"),
        ("faces:predict", {"instances": [1, 2], "inputs": [1]}, None, 400, "exactly one"),
        ("faces:predict", {"instances": [{"pictures": {"b64": "AA=="}}]}, None, 400, "do not match"),
        ("faces:predict", {"instances": [{"b64": "%%%"}]}, None, 400, "base64"),
        ("faces:predict", {"instances": [3.5]}, None, 400, "strings"),
        ("faces:predict", {"instances": _b64([b"not an image"])}, None, 400, ""),
        ("faces:predict", {"signature_name": "nope", "instances": _b64(FACES)}, None, 400, "nope"),
        ("nobody:predict", {"instances": _b64(FACES)}, None, 404, "nobody"),
        ("faces/versions/7:predict", {"instances": _b64(FACES)}, None, 404, "7"),
        ("pinned/labels/beta:predict", {"instances": _b64(FACES)}, None, 400, "Unrecognized servable version label"),
        ("faces/versions/x:predict", {"instances": _b64(FACES)}, None, 400, "version"),
    ],
)
def test_rest_errors_answer_like_tf_serving(model_server, path, body, raw, code, message):
    status, answer = _rest(f"{model_server.rest_url}/v1/models/{path}", body, raw)
    assert status == code, answer
    assert set(answer) == {"error"} and message in answer["error"]


def test_server_survives_bad_requests(model_server, in_process):
    for _ in range(3):
        _rest(f"{model_server.rest_url}/v1/models/faces:predict", raw=b"\xff\xfe garbage")
    status, answer = _rest(f"{model_server.rest_url}/v1/models/faces:predict", {"instances": _b64(FACES[:1])})
    assert status == 200
    np.testing.assert_allclose(
        _row_probabilities(answer["predictions"]), _expected(in_process, 1, FACES[:1]), atol=1e-6
    )


@pytest.fixture(scope="module")
def stubs(model_server):
    channel = grpc.insecure_channel(model_server.grpc_address)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


def _predict_request(name, images, version=None, label=None, signature="serving_default"):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
    return request


def test_grpc_predict_matches_and_names_the_version(model_server, stubs, in_process):
    predictions, _ = stubs
    for kwargs, seed, version in (({}, 1, 1), ({"label": "canary"}, 2, 2), ({"version": 1}, 1, 1)):
        name = "faces" if not kwargs else "pinned"
        response = predictions.Predict(_predict_request(name, FACES, **kwargs), timeout=30)
        assert response.model_spec.name == name and response.model_spec.version.value == version
        np.testing.assert_allclose(
            tf.make_ndarray(response.outputs["fake_probability"]), _expected(in_process, seed), atol=1e-6
        )


def test_grpc_metadata_and_status(model_server, stubs):
    predictions, models = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="faces"), metadata_field=["signature_def"]
    )
    response = predictions.GetModelMetadata(request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert signature_map.signature_def["serving_default"].inputs["images"].dtype == tf.string.as_datatype_enum
    status = models.GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="pinned")), timeout=30
    )
    assert sorted(s.version for s in status.model_version_status) == [1, 2]
    assert {s.state for s in status.model_version_status} == {get_model_status_pb2.ModelVersionStatus.AVAILABLE}


@pytest.mark.parametrize(
    "request_factory, code",
    [
        (lambda: _predict_request("nobody", FACES), grpc.StatusCode.NOT_FOUND),
        (lambda: _predict_request("faces", FACES, version=9), grpc.StatusCode.NOT_FOUND),
        (lambda: _predict_request("faces", [b"not an image"]), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: _predict_request("pinned", FACES, label="beta"), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: _predict_request("faces", FACES, signature="nope"), grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_grpc_errors_carry_tf_serving_codes(model_server, stubs, request_factory, code):
    predictions, _ = stubs
    with pytest.raises(grpc.RpcError) as error:
        predictions.Predict(request_factory(), timeout=30)
    assert error.value.code() == code


def test_prometheus_metrics_count_requests(model_server):
    text = httpx.get(f"{model_server.rest_url}/monitoring/prometheus/metrics", timeout=10).text
    assert ":tensorflow:serving:request_count" in text and 'model_name="faces"' in text
