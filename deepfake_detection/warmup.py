"""Warm-up requests stored inside a SavedModel, so the first real request is not the slow one.

TensorFlow Serving replays `assets.extra/tf_serving_warmup_requests` (a
TFRecord file of `PredictionLog`s) when it loads a version, before the version
takes traffic; the local model server does the same.
"""

import os
from typing import Iterator, Mapping

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_path(saved_model_dir: str) -> str:
    return os.path.join(saved_model_dir, WARMUP_DIR, WARMUP_FILE)


def predict_request(
    model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray]
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def write_warmup_requests(saved_model_dir: str, requests: list) -> str:
    """Writes `requests` (PredictRequests) as the model's warm-up file; returns its path."""
    path = warmup_path(saved_model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir: str) -> Iterator[predict_pb2.PredictRequest]:
    """The stored warm-up PredictRequests of a SavedModel; none when it has no warm-up file."""
    path = warmup_path(saved_model_dir)
    if not tf.io.gfile.exists(path):
        return
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.HasField("predict_log"):
            yield log.predict_log.request
