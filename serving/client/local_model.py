"""The exported SavedModel called in this process, for `deepfake-pipeline detect --local` and the tests.

The one part of serving that needs TensorFlow, kept apart from the clients so
that the detection service never imports it: install the `local` extra
(`pip install .[local]`) to use it.
"""

from typing import Optional, Sequence

import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.evaluation.operating_point import OUTPUT_KEY as POINT_KEY
from serving.client.tf_serving import ModelTarget, Prediction, point_from_output


class InProcessModel:
    """The same signature the model server runs, with no server in between."""

    def __init__(self, saved_model_dir: str, target: Optional[ModelTarget] = None):
        self.target = target or ModelTarget(saved_model_dir)
        self._signatures = tf.saved_model.load(saved_model_dir).signatures

    def _run(self, signature_name: str, images: Sequence[bytes]) -> Prediction:
        outputs = self._signatures[signature_name](**{self.target.input_name: tf.constant(list(images), tf.string)})
        point = point_from_output(outputs[POINT_KEY].numpy()) if POINT_KEY in outputs else None
        heatmaps = outputs[contract.HEATMAP_KEY].numpy() if contract.HEATMAP_KEY in outputs else None
        return Prediction(outputs[contract.OUTPUT_KEY].numpy(), None, point, heatmaps)

    def predict(self, images: Sequence[bytes]) -> Prediction:
        return self._run(self.target.signature_name, images)

    def explain(self, images: Sequence[bytes]) -> Prediction:
        """`predict` through the `explain` signature: with a map per face."""
        return self._run(contract.EXPLAIN_SIGNATURE, images)
