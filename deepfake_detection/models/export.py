"""Export of a trained Keras model as a serving-ready SavedModel.

Signatures:
- `serving_default`: a batch of encoded face images (JPEG/PNG bytes, string
  tensor `images` [N]) -> `fake_probability` [N]; for the temporal model a
  batch of clips (`clips` [N, T]).
  Given the operating point fitted on held-out videos, `serving_default` also
  returns it as `operating_point` [N, 4] (`OperatingPoint.as_vector`), so
  any client of TF Serving gets the point of the very version that scored
  its faces; the point is also written to `assets.extra/operating_point.json`.
- `serving_tf_example`: serialized tf.Examples (`examples` [N]) ->
  `fake_probability` only, for TensorFlow Model Analysis.
- `explain` (face models only): `images` [N] -> `serving_default`'s outputs
  and `heatmap` [N, 16, 16] in [0, 1], where each face looks pasted over:
  with a locator (`locator.py`, trained after the classifier on the
  self-blends' masks) its map weighted by the classifier's input gradient
  (`explain.located_gradient`), else the input gradient alone
  (`explain.explainer`). The same classifier in the same graph, so its
  probabilities are `serving_default`'s; clients call it only when asked.
Decoding and resizing are the input functions' own (`data.decode_images`), and
the backbone's normalisation is inside the Keras model, so serving equals training.
Warm-up requests (one grey face, or one clip of them) are stored in
`assets.extra/` for TensorFlow Serving to replay before a version takes traffic.
"""

import json
import os
from typing import Any, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

from deepfake_detection import contract, warmup
from deepfake_detection.evaluation import operating_point
from deepfake_detection.models import data, explain

SERVING_DEFAULT = contract.SERVING_DEFAULT
SERVING_TF_EXAMPLE = contract.SERVING_TF_EXAMPLE
OUTPUT_KEY = contract.OUTPUT_KEY
SERVING_DIR = "Format-Serving"  # where TFX's Trainer and Pusher expect the SavedModel
KERAS_FILE = os.path.join("keras", "model.keras")
LOCATOR_FILE = os.path.join("keras", "locator.keras")
EVAL_METRICS_FILE = "eval_metrics.json"
ASSETS_EXTRA = warmup.WARMUP_DIR


def _probabilities(model: keras.Model, pixels: tf.Tensor) -> dict:
    return {OUTPUT_KEY: tf.reshape(tf.cast(model(pixels, training=False), tf.float32), [-1])}


def export_saved_model(
    model: keras.Model,
    export_dir: str,
    clip_length: int = 0,
    fitted: Optional[operating_point.FittedPoint] = None,
    locator: Optional[keras.Model] = None,
) -> None:
    """Writes the SavedModel with its signatures; `clip_length` > 0 marks a temporal model.

    `fitted` (the operating point fitted on held-out videos) joins the
    `serving_default` outputs and `assets.extra/operating_point.json`;
    `locator` draws the `explain` signature's maps.
    """
    vector = tf.constant(fitted.point.as_vector()) if fitted else None
    archive = keras.export.ExportArchive()
    archive.track(model)
    if locator is not None:
        archive.track(locator)
    if clip_length:
        image_spec = tf.TensorSpec([None, clip_length], tf.string, name=contract.CLIPS_INPUT)
        features = {contract.CLIP_FRAMES_KEY: data.clip_features(clip_length)[contract.CLIP_FRAMES_KEY]}

        def pixels_from_bytes(encoded: tf.Tensor) -> tf.Tensor:
            return data.decode_clips(encoded, clip_length)

        bytes_key = contract.CLIP_FRAMES_KEY
    else:
        image_spec = tf.TensorSpec([None], tf.string, name=contract.IMAGES_INPUT)
        features = {contract.IMAGE_KEY: data.FACE_FEATURES[contract.IMAGE_KEY]}
        pixels_from_bytes = data.decode_images
        bytes_key = contract.IMAGE_KEY

    def with_point(outputs: dict, encoded: tf.Tensor) -> dict:
        if vector is not None:
            outputs[operating_point.OUTPUT_KEY] = tf.tile(vector[None, :], [tf.shape(encoded)[0], 1])
        return outputs

    @tf.function(input_signature=[image_spec])
    def serve_images(encoded: tf.Tensor) -> dict:
        return with_point(_probabilities(model, pixels_from_bytes(encoded)), encoded)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.EXAMPLES_INPUT)])
    def serve_examples(serialized: tf.Tensor) -> dict:
        parsed = tf.io.parse_example(serialized, features)
        return _probabilities(model, pixels_from_bytes(parsed[bytes_key]))

    archive.add_endpoint(SERVING_DEFAULT, serve_images)
    archive.add_endpoint(SERVING_TF_EXAMPLE, serve_examples)
    if not clip_length:
        explainer = explain.located_gradient(model, locator) if locator is not None else explain.explainer(model)

        @tf.function(input_signature=[image_spec])
        def serve_explanations(encoded: tf.Tensor) -> dict:
            probabilities, maps = explainer(pixels_from_bytes(encoded))
            return {**with_point({OUTPUT_KEY: probabilities}, encoded), contract.HEATMAP_KEY: maps}

        archive.add_endpoint(contract.EXPLAIN_SIGNATURE, serve_explanations)
    archive.write_out(export_dir, verbose=False)
    grey_face = tf.io.encode_png(tf.fill([data.CROP_SIZE, data.CROP_SIZE, 3], tf.constant(128, tf.uint8))).numpy()
    sample = np.array([[grey_face] * clip_length] if clip_length else [grey_face], dtype=object)
    warmup.write_warmup_requests(export_dir, [warmup.predict_request("", SERVING_DEFAULT, {image_spec.name: sample})])
    if fitted:
        with tf.io.gfile.GFile(os.path.join(export_dir, ASSETS_EXTRA, operating_point.FILE_NAME), "w") as f:
            json.dump(fitted.to_dict(), f, indent=1, sort_keys=True)


def read_operating_point(export_dir: str) -> Optional[dict]:
    """The fitted operating point stored beside a SavedModel (`FittedPoint.to_dict`), None when it has none."""
    path = os.path.join(export_dir, ASSETS_EXTRA, operating_point.FILE_NAME)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def keras_path(model_uri: str) -> str:
    return os.path.join(model_uri, KERAS_FILE)


def load_keras(model_uri: str) -> keras.Model:
    """The Keras model saved beside the SavedModel, in a fresh process too: every backbone's layers are
    registered with Keras first."""
    from deepfake_detection.models import registry  # noqa: F401 - importing it registers the backbones' layers

    return keras.models.load_model(keras_path(model_uri))


def save_keras(model: keras.Model, model_uri: str, locator: Optional[keras.Model] = None) -> str:
    """Saves the Keras model (and its locator) beside the SavedModel in the Model artifact, for the ensemble,
    the model card and the benches to reload."""
    path = keras_path(model_uri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
    if locator is not None:
        locator.save(os.path.join(model_uri, LOCATOR_FILE))
    return path


def load_locator(model_uri: str) -> Optional[keras.Model]:
    """The locator saved beside a model (`save_keras`), None when it was trained without one."""
    path = os.path.join(model_uri, LOCATOR_FILE)
    if not tf.io.gfile.exists(path):
        return None
    from deepfake_detection.models import registry  # noqa: F401 - importing it registers the layers

    return keras.models.load_model(path, compile=False)


def read_eval_metrics(model_uri: str) -> Optional[dict]:
    """What `write_eval_metrics` recorded beside a trained model, None when it recorded nothing."""
    path = os.path.join(model_uri, EVAL_METRICS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_eval_metrics(model_uri: str, metrics: Mapping[str, Any]) -> None:
    """Records the exported model's metrics on the eval split beside it, for people and runners to read."""
    values = {
        k: float(v) if hasattr(v, "__float__") and not isinstance(v, (str, dict)) else v for k, v in metrics.items()
    }
    with tf.io.gfile.GFile(os.path.join(model_uri, EVAL_METRICS_FILE), "w") as f:
        json.dump(values, f, indent=1, sort_keys=True)
