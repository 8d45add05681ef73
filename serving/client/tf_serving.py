"""Clients of the face model on TensorFlow Serving (or the local model server): REST and gRPC.

Neither imports TensorFlow, so the detection service runs without it; the
SavedModel called in this process is serving.client.local_model.

Both send a batch of encoded face crops (JPEG/PNG bytes) to `serving_default`
and return the fake probabilities, with the operating point of the version
that computed them (an output of the signature), so callers can swap one for
the other; `explain` sends them to the `explain` signature for a map per face.
"""

import base64
import dataclasses
import json
import threading
import urllib.error
import urllib.request
from typing import Any, Optional, Sequence

import grpc
import numpy as np
from google.protobuf import json_format

from deepfake_detection import contract
from deepfake_detection.evaluation.operating_point import OUTPUT_KEY as POINT_KEY
from deepfake_detection.evaluation.operating_point import OperatingPoint
from serving.protocol import tensor_protos
from serving.protocol import tf_serving_api as apis


class ServingError(RuntimeError):
    """The model server refused or failed a request; `status` is the HTTP status or gRPC code."""

    def __init__(self, status: Any, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Face probabilities, the version that computed them, and that version's operating point (None if it has
    none: a model exported before points were fitted); from `explain`, also a map per face ([N, g, g] in
    [0, 1], 1 where a face looks most manipulated)."""

    probabilities: np.ndarray
    model_version: Optional[int]
    operating_point: Optional[OperatingPoint] = None
    heatmaps: Optional[np.ndarray] = None


def point_from_output(rows: Any) -> Optional[OperatingPoint]:
    """The operating point from the signature's `operating_point` output ([N, 4], one row per face)."""
    values = np.asarray(rows, np.float64)
    return OperatingPoint.from_vector(values.reshape(-1, 4)[0]) if values.size else None


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

    def _run(self, signature_name: str, images: Sequence[bytes]) -> Prediction:
        instances = [{"b64": base64.b64encode(image).decode()} for image in images]
        body = {"signature_name": signature_name, "instances": instances}
        rows = self._call(f"{self._model_url()}:predict", body)["predictions"]
        if rows and isinstance(rows[0], dict):
            point = point_from_output([row[POINT_KEY] for row in rows]) if POINT_KEY in rows[0] else None
            probabilities = np.asarray([row[contract.OUTPUT_KEY] for row in rows], np.float32)
            heatmaps = None
            if contract.HEATMAP_KEY in rows[0]:
                heatmaps = np.asarray([row[contract.HEATMAP_KEY] for row in rows], np.float32)
            return Prediction(probabilities, self.target.version, point, heatmaps)
        return Prediction(np.asarray(rows, np.float32), self.target.version)

    def predict(self, images: Sequence[bytes]) -> Prediction:
        return self._run(self.target.signature_name, images)

    def explain(self, images: Sequence[bytes]) -> Prediction:
        """`predict` through the `explain` signature: with a map per face."""
        return self._run(contract.EXPLAIN_SIGNATURE, images)

    def status(self) -> apis.GetModelStatusResponse:
        return json_format.ParseDict(self._call(self._model_url()), apis.GetModelStatusResponse())

    def metadata(self) -> dict:
        return self._call(f"{self._model_url()}/metadata")


# gRPC codes that mean the model server did not answer at all (down, frozen, unreachable), as opposed to
# answering with a refusal: what opens the service's circuit (`serving.service.served_model.ModelServerCircuit`).
UNREACHABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
# The channel's reconnect back-off, bounded: gRPC's defaults (1 s growing to 120 s) left a service answering 503
# for 17-28 s after the model server was AVAILABLE again; from 0.1 s to 1 s it reconnects within a second.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


class GrpcClient:
    """TF Serving's gRPC API, through stubs whose messages need no TensorFlow (serving.protocol.tf_serving_api).

    A call's deadline is `timeout_s` plus `per_image_s` for each image it sends, so that it follows the batch's
    expected time. Calls wait for the channel to be ready within that deadline (`wait_for_ready`), so a call made
    while the channel reconnects to a model server that is back succeeds instead of failing at once; a call that
    finds the model server unreachable replaces the channel, so the next one connects afresh.
    """

    def __init__(self, address: str, target: ModelTarget, timeout_s: float = 60.0, per_image_s: float = 0.0):
        self._address = address
        self._channel_lock = threading.Lock()
        self._open_channel()
        self.target = target
        self._timeout_s = timeout_s
        self._per_image_s = per_image_s

    def _open_channel(self) -> None:
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 2**31 - 1),
            *RECONNECT_OPTIONS,
        ]
        with self._channel_lock:
            self._channel = grpc.insecure_channel(self._address, options=options)
            self._predictions = apis.PredictionServiceStub(self._channel)
            self._models = apis.ModelServiceStub(self._channel)

    def _spec(self, signature_name: str = "") -> apis.ModelSpec:
        spec = apis.ModelSpec(name=self.target.name, signature_name=signature_name)
        if self.target.version is not None:
            spec.version.value = self.target.version
        elif self.target.label:
            spec.version_label = self.target.label
        return spec

    def _call(self, method_name: str, request: Any, images: int = 0, timeout_s: Optional[float] = None) -> Any:
        """Calls a stub's method by name on the current channel, within the deadline of `images` images."""
        stub = self._models if method_name == "GetModelStatus" else self._predictions
        deadline = timeout_s if timeout_s is not None else self._timeout_s + self._per_image_s * images
        try:
            return getattr(stub, method_name)(request, timeout=deadline, wait_for_ready=True)
        except grpc.RpcError as e:
            code = e.code().name
            if code in UNREACHABLE_CODES:
                self._open_channel()  # the old channel closes once its in-flight calls let go of it
            raise ServingError(code, e.details()) from e

    def _run(self, signature_name: str, images: Sequence[bytes]) -> Prediction:
        request = apis.PredictRequest(model_spec=self._spec(signature_name))
        tensor_protos.write_strings(request.inputs[self.target.input_name], list(images))
        response = self._call("Predict", request, len(images))
        probabilities = tensor_protos.to_array(response.outputs[contract.OUTPUT_KEY]).astype(np.float32)
        point, heatmaps = None, None
        if POINT_KEY in response.outputs:
            point = point_from_output(tensor_protos.to_array(response.outputs[POINT_KEY]))
        if contract.HEATMAP_KEY in response.outputs:
            heatmaps = tensor_protos.to_array(response.outputs[contract.HEATMAP_KEY]).astype(np.float32)
        return Prediction(probabilities, response.model_spec.version.value, point, heatmaps)

    def predict(self, images: Sequence[bytes]) -> Prediction:
        return self._run(self.target.signature_name, images)

    def explain(self, images: Sequence[bytes]) -> Prediction:
        """`predict` through the `explain` signature: with a map per face."""
        return self._run(contract.EXPLAIN_SIGNATURE, images)

    def status(self, timeout_s: Optional[float] = None) -> apis.GetModelStatusResponse:
        """The model's versions and their states; within `timeout_s` when given (a readiness probe's)."""
        request = apis.GetModelStatusRequest(model_spec=self._spec())
        return self._call("GetModelStatus", request, timeout_s=timeout_s)

    def metadata(self) -> apis.GetModelMetadataResponse:
        request = apis.GetModelMetadataRequest(model_spec=self._spec(), metadata_field=["signature_def"])
        return self._call("GetModelMetadata", request)

    def close(self) -> None:
        self._channel.close()
