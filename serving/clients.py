"""Clients of the face model on TensorFlow Serving (or the local model server): REST and gRPC.

Both send a batch of encoded face crops (JPEG/PNG bytes) to `serving_default`
and return the fake probabilities, so callers can swap one for the other.
"""

import base64
import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from deepfake_detection import contract
from serving import tensors


class ServingError(RuntimeError):
    """The model server refused or failed a request; `status` is the HTTP status or gRPC code."""

    def __init__(self, status: Any, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray
    model_version: Optional[int]


@dataclasses.dataclass(frozen=True)
class ModelTarget:
    """Which model a client calls: a name, and optionally a pinned version or a label."""

    name: str
    version: Optional[int] = None
    label: Optional[str] = None
    signature_name: str = contract.SERVING_DEFAULT
    input_name: str = contract.IMAGES_INPUT

    def __post_init__(self) -> None:
        if self.version is not None and self.label:
            raise ValueError("Pin a version or a label, not both")


class InProcessModel:
    """The exported SavedModel called in this process: the same signature, no server in between."""

    def __init__(self, saved_model_dir: str, target: Optional[ModelTarget] = None):
        self.target = target or ModelTarget(saved_model_dir)
        self._signature = tf.saved_model.load(saved_model_dir).signatures[self.target.signature_name]

    def predict(self, images: Sequence[bytes]) -> Prediction:
        outputs = self._signature(**{self.target.input_name: tf.constant(list(images), tf.string)})
        return Prediction(outputs[contract.OUTPUT_KEY].numpy(), None)


class RestClient:
    """TF Serving's REST API: `POST /v1/models/<name>[/versions/N|/labels/L]:predict`, images as b64."""

    def __init__(self, base_url: str, target: ModelTarget, timeout_s: float = 60.0):
        self._base_url = base_url.rstrip("/")
        self.target = target
        self._timeout_s = timeout_s

    def _model_url(self) -> str:
        url = f"{self._base_url}/v1/models/{self.target.name}"
        if self.target.version is not None:
            return f"{url}/versions/{self.target.version}"
        if self.target.label:
            return f"{url}/labels/{self.target.label}"
        return url

    def _call(self, url: str, body: Optional[dict] = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                message = json.loads(text).get("error", text)
            except json.JSONDecodeError:
                message = text
            raise ServingError(e.code, message) from e

    def predict(self, images: Sequence[bytes]) -> Prediction:
        instances = [{"b64": base64.b64encode(image).decode()} for image in images]
        body = {"signature_name": self.target.signature_name, "instances": instances}
        answer = self._call(f"{self._model_url()}:predict", body)
        return Prediction(np.asarray(answer["predictions"], np.float32), self.target.version)

    def status(self) -> get_model_status_pb2.GetModelStatusResponse:
        return json_format.ParseDict(self._call(self._model_url()), get_model_status_pb2.GetModelStatusResponse())

    def metadata(self) -> dict:
        return self._call(f"{self._model_url()}/metadata")


class GrpcClient:
    """TF Serving's gRPC API through tensorflow-serving-api's stubs."""

    def __init__(self, address: str, target: ModelTarget, timeout_s: float = 60.0):
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.max_send_message_length", 2**31 - 1)]
        self._channel = grpc.insecure_channel(address, options=options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self.target = target
        self._timeout_s = timeout_s

    def _spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.target.name, signature_name=signature_name)
        if self.target.version is not None:
            spec.version.value = self.target.version
        elif self.target.label:
            spec.version_label = self.target.label
        return spec

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self._timeout_s)
        except grpc.RpcError as e:
            raise ServingError(e.code().name, e.details()) from e

    def predict(self, images: Sequence[bytes]) -> Prediction:
        request = predict_pb2.PredictRequest(model_spec=self._spec(self.target.signature_name))
        request.inputs[self.target.input_name].CopyFrom(tensors.strings_to_proto(list(images)))
        response = self._call(self._predictions.Predict, request)
        probabilities = tensors.proto_to_array(response.outputs[contract.OUTPUT_KEY]).astype(np.float32)
        return Prediction(probabilities, response.model_spec.version.value)

    def status(self) -> get_model_status_pb2.GetModelStatusResponse:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._spec())
        return self._call(self._models.GetModelStatus, request)

    def metadata(self) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._spec(), metadata_field=["signature_def"]
        )
        return self._call(self._predictions.GetModelMetadata, request)

    def close(self) -> None:
        self._channel.close()
