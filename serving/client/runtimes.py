"""The model `--local` verbs run (`detect`, `live`): the SavedModel in this process, or one of the version's
edge exports (`--runtime tflite-fp16|tflite-int8|onnx`).

An edge export answers the same `predict` as the SavedModel (encoded face
crops in, a `Prediction` out, with the operating point of that version), so
the verdicts are built by the same `VideoAnalyzer`. The crops are decoded
here as the export's input contract states (RGB, bilinear to its size, 0-255),
with OpenCV instead of TensorFlow: the `edge` extra runs them without it.
"""

import json
import os
from typing import Optional, Sequence

import cv2
import numpy as np

from deepfake_detection import contract, edge_runtime
from deepfake_detection.evaluation import operating_point
from serving.client.tf_serving import Prediction

EXPLAIN_NEEDS_SAVEDMODEL = "--explain needs --runtime savedmodel: the edge exports carry no explain signature"


def decode_face(encoded: bytes, size: int) -> np.ndarray:
    """JPEG/PNG bytes -> float32 [size, size, 3] RGB pixels in 0-255, bilinear with half-pixel centres as the
    SavedModel's own decoding (`models.data.decode_image`)."""
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("a face crop that is not a decodable image")
    pixels = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32)
    if pixels.shape[:2] != (size, size):
        pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_LINEAR)
    return pixels


def read_operating_point(version_dir: str) -> Optional[operating_point.OperatingPoint]:
    """The point the version carries in `assets.extra/` (the one its SavedModel returns), None without one."""
    path = os.path.join(version_dir, contract.ASSETS_EXTRA_DIR, operating_point.FILE_NAME)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return operating_point.OperatingPoint.from_dict(json.load(f))


class EdgeModel:
    """A version's edge export as a face model: the same `predict` as `local_model.InProcessModel`."""

    def __init__(self, version_dir: str, runtime: str, threads: int = 0):
        self.runner = edge_runtime.EdgeRunner(edge_runtime.edge_folder(version_dir), runtime, threads)
        self.point = read_operating_point(version_dir)

    def predict(self, images: Sequence[bytes]) -> Prediction:
        pixels = np.stack([decode_face(image, self.runner.size) for image in images]) if images else np.zeros(0)
        return Prediction(self.runner.probabilities(pixels), None, self.point)

    def explain(self, images: Sequence[bytes]) -> Prediction:
        raise ValueError(EXPLAIN_NEEDS_SAVEDMODEL)


def load_model(version_dir: str, runtime: str):  # noqa: ANN201 - an InProcessModel or an EdgeModel
    """The face model of `version_dir` on `runtime` (`contract.RUNTIMES`); raises ValueError with the reason
    when the version has no such export."""
    if runtime == contract.RUNTIME_SAVEDMODEL:
        from serving.client.local_model import InProcessModel

        return InProcessModel(version_dir)
    if runtime not in contract.EDGE_FILES:
        raise ValueError(f"Invalid runtime {runtime!r}: expected one of {list(contract.RUNTIMES)}")
    try:
        return EdgeModel(version_dir, runtime)
    except ImportError as e:
        raise ValueError(f"The {runtime} runtime is not installed ({e}): pip install .[edge]") from e
