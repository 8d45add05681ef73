"""TF Serving's REST tensor encoding: row and columnar requests, b64 strings, answers."""

import numpy as np
import pytest
import tensorflow as tf

from serving.model_server import tensors

IMAGES = {"images": tf.string}
TWO = {"a": tf.float32, "b": tf.int64}


def test_row_format_single_input_with_b64():
    inputs, row = tensors.request_to_inputs({"instances": [{"b64": "aGk="}, {"b64": "eW8="}]}, IMAGES)
    assert row and inputs["images"].tolist() == [b"hi", b"yo"]


def test_row_format_named_inputs_are_stacked_per_input():
    body = {"instances": [{"a": [1.0, 2.0], "b": 3}, {"a": [4.0, 5.0], "b": 6}]}
    inputs, row = tensors.request_to_inputs(body, TWO)
    assert row and inputs["a"].shape == (2, 2) and inputs["a"].dtype == np.float32
    assert inputs["b"].tolist() == [3, 6] and inputs["b"].dtype == np.int64


def test_columnar_format_named_and_plain_strings():
    inputs, row = tensors.request_to_inputs({"inputs": {"a": [[1, 2]], "b": [7]}}, TWO)
    assert not row and inputs["a"].tolist() == [[1.0, 2.0]]
    inputs, _ = tensors.request_to_inputs({"inputs": ["plain", "text"]}, IMAGES)
    assert inputs["images"].tolist() == [b"plain", b"text"]


@pytest.mark.parametrize(
    "body, inputs, message",
    [
        ([1, 2], IMAGES, "JSON object"),
        ({}, IMAGES, "exactly one"),
        ({"instances": []}, IMAGES, "non-empty"),
        ({"instances": [{"a": 1}, {"b": 2}]}, TWO, "same inputs"),
        ({"instances": [1.0]}, TWO, "name them"),
        ({"inputs": {"a": [1]}}, TWO, "do not match"),
        ({"inputs": {"a": ["x"], "b": [1]}}, TWO, "float32"),
        ({"instances": [{"b64": "!!"}]}, IMAGES, "base64"),
        ({"inputs": {"images": [{"x": 1}]}}, IMAGES, "Unexpected object"),
    ],
)
def test_malformed_requests_are_bad_requests(body, inputs, message):
    with pytest.raises(tensors.BadRequestError, match=message):
        tensors.request_to_inputs(body, inputs)


def test_answers_mirror_the_request_format():
    single = {"p": np.array([0.25, 0.75], np.float32)}
    assert tensors.outputs_to_response(single, row_format=True) == {"predictions": [0.25, 0.75]}
    assert tensors.outputs_to_response(single, row_format=False) == {"outputs": [0.25, 0.75]}
    several = {"p": np.array([0.5, 1.0]), "crop_bytes": np.array([b"\x00\xff", b"ok"], object)}
    rows = tensors.outputs_to_response(several, row_format=True)["predictions"]
    assert rows[0] == {"p": 0.5, "crop_bytes": {"b64": "AP8="}} and rows[1]["crop_bytes"] == {"b64": "b2s="}
    columns = tensors.outputs_to_response({"label": np.array([b"fake"], object)}, row_format=False)
    assert columns == {"outputs": ["fake"]}
