"""The map of where a face looks manipulated: the exported `explain` signature, and the methods behind it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.models import data, explain, export
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import get_backbone
from tests.helpers import face_crops, spread_outputs


@pytest.mark.parametrize("name", ["meso4", "blend_resnet"])
def test_the_explain_signature_scores_like_serving_default_and_maps_each_face_on_its_grid(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = get_backbone(name).build(ModelSettings(input_size=64), {})
    images = face_crops(4)
    spread_outputs(model, data.decode_images(tf.constant(images)))
    export.export_saved_model(model, str(tmp_path))

    loaded = tf.saved_model.load(str(tmp_path))
    scored = loaded.signatures[contract.SERVING_DEFAULT](images=tf.constant(images))
    explained = loaded.signatures[contract.EXPLAIN_SIGNATURE](images=tf.constant(images))
    np.testing.assert_allclose(explained[contract.OUTPUT_KEY].numpy(), scored[contract.OUTPUT_KEY].numpy(), atol=1e-5)
    maps = explained[contract.HEATMAP_KEY].numpy()
    assert maps.shape == (4, explain.GRID, explain.GRID)
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    assert all(np.ptp(m) > 0.1 for m in maps), "every face's map should have a place that stands out"


def looks_at_top_left() -> keras.Model:
    """A model whose probability depends on the top-left quarter of the face only."""
    images = keras.Input(shape=(None, None, 3))
    x = keras.layers.Resizing(64, 64)(images)
    x = keras.layers.Cropping2D(((0, 32), (0, 32)))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    weights = dict(kernel_initializer=keras.initializers.Constant(0.01), bias_initializer="zeros")
    return keras.Model(images, keras.layers.Dense(1, activation="sigmoid", **weights)(x))


def test_the_input_gradient_map_points_where_the_probability_comes_from():
    pixels = data.decode_images(tf.constant(face_crops(2)))
    probabilities, maps = explain.explainer(looks_at_top_left())(pixels)
    maps = maps.numpy()
    assert probabilities.shape == (2,)
    half = explain.GRID // 2
    for face in maps:
        row, col = np.unravel_index(face.argmax(), face.shape)
        assert row < half and col < half
        assert face[:half, :half].sum() / face.sum() > 0.8


@pytest.mark.parametrize("method", [explain.GRAD_X_ACTIVATION, explain.GRAD_CAM])
def test_feature_map_methods_map_the_grid_they_are_given(method):
    keras.utils.set_random_seed(0)
    model = get_backbone("blend_resnet").build(ModelSettings(input_size=64), {})
    assert explain.feature_layer(model, 8) is not None and explain.feature_layer(model, 7) is None
    _, maps = explain.explainer(model, method, 8)(data.decode_images(tf.constant(face_crops(2))))
    assert maps.shape == (2, 8, 8) and 0 <= float(tf.reduce_min(maps)) <= float(tf.reduce_max(maps)) <= 1
    with pytest.raises(ValueError, match="no 7 x 7 feature map"):
        explain.explainer(model, method, 7)
