"""The locator: its maps, the pointing game it is trained by, its place in the exported `explain` signature."""

import keras
import numpy as np
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.models import data, explain, export, locator, training
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import get_backbone
from tests.deepfake_detection.models.test_explain import looks_at_top_left
from tests.deepfake_detection.models.test_self_blend import _write_faces
from tests.helpers import face_crops


def test_a_map_per_face_on_the_grid_whatever_the_crop_size():
    model = locator.build_locator()
    for side in (64, 256):
        maps = model(tf.random.uniform([3, side, side, 3], 0, 255), training=False).numpy()
        assert maps.shape == (3, locator.GRID, locator.GRID) and 0 <= maps.min() and maps.max() <= 1


def test_the_pointing_game_counts_pasted_faces_only():
    target = np.zeros((3, 4, 4), np.float32)
    target[0, 0, 0] = target[1, 3, 3] = 1.0
    predicted = np.zeros((3, 4, 4), np.float32)
    predicted[0, 0, 0] = predicted[1, 0, 0] = predicted[2, 2, 2] = 1.0
    metric = training.PointingGame()
    metric.update_state(target, predicted)
    assert float(metric.result()) == 0.5, "one hit of two pasted faces; the real face is not counted"


def test_explain_serves_the_locator_maps_beside_the_classifier_probabilities(tmp_path):
    keras.utils.set_random_seed(0)
    model = get_backbone("blend_resnet").build(ModelSettings(input_size=64), {})
    located = locator.build_locator()
    images = face_crops(3)
    export.export_saved_model(model, str(tmp_path / "serving"), locator=located)
    export.save_keras(model, str(tmp_path), located)

    loaded = tf.saved_model.load(str(tmp_path / "serving"))
    scored = loaded.signatures[contract.SERVING_DEFAULT](images=tf.constant(images))
    explained = loaded.signatures[contract.EXPLAIN_SIGNATURE](images=tf.constant(images))
    np.testing.assert_allclose(explained[contract.OUTPUT_KEY].numpy(), scored[contract.OUTPUT_KEY].numpy(), atol=1e-6)
    pixels = data.decode_images(tf.constant(images))
    expected = explain.located_gradient(model, located)(pixels)[1].numpy()
    maps = explained[contract.HEATMAP_KEY].numpy()
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    assert maps.shape == (3, locator.GRID, locator.GRID) and maps.min() >= 0 and maps.max() <= 1
    reloaded = export.load_locator(str(tmp_path))
    np.testing.assert_allclose(
        reloaded(pixels, training=False).numpy(), located(pixels, training=False).numpy(), atol=1e-6
    )


def _marks(rows: slice, cols: slice) -> keras.Model:
    """A stand-in locator that finds the same cells pasted in every face, at probability 0.8."""
    grid = np.zeros((locator.GRID, locator.GRID), np.float32)
    grid[rows, cols] = 0.8
    images = keras.Input(shape=(None, None, 3))
    zeros = keras.layers.Lambda(lambda x: tf.zeros_like(x[:, :1, :1, 0]))(images)
    return keras.Model(images, keras.layers.Lambda(lambda z: z[:, :, :] + tf.constant(grid))(zeros))


def test_the_map_peaks_where_the_locator_and_the_gradient_agree():
    classifier = looks_at_top_left()
    pixels = data.decode_images(tf.constant(face_crops(2)))
    half = locator.GRID // 2
    # Marks symmetric left to right: the locator is asked about the mirrored face too.
    _, top = explain.located_gradient(classifier, _marks(slice(2, 6), slice(2, 14)))(pixels)
    _, bottom = explain.located_gradient(classifier, _marks(slice(10, 14), slice(2, 14)))(pixels)
    for grid in top.numpy():
        row, col = np.unravel_index(grid.argmax(), grid.shape)
        assert row < half and col < half and grid.max() <= 0.8 + 1e-6
    assert bottom.numpy().max() < 0.5 * top.numpy().max(), "where the classifier looks nowhere near, faint"


def test_a_model_saved_without_a_locator_has_none(tmp_path):
    model = get_backbone("compact_cnn").build(ModelSettings(input_size=32), {})
    export.save_keras(model, str(tmp_path))
    assert export.load_locator(str(tmp_path)) is None


def test_training_learns_to_point_at_pasted_regions(tmp_path):
    """A few epochs on one real face's self-blends: the locator finds them above chance on fresh ones."""
    _write_faces(tmp_path / "train.gz", [0] * 32, ["original"] * 32)
    config = training.TrainingConfig(
        backbone="blend_resnet",
        fake_source=contract.FAKE_SOURCE_SELF_BLENDED,
        batch_size=16,
        locator_epochs=3,
        locator_steps_per_epoch=12,
        early_stopping_patience=3,
    )
    assert config.trains_locator
    files = [str(tmp_path / "train.gz")]
    model, start = training.train_locator(files, files, config)
    assert model.dtype_policy.name == "float32" and not start.warm
    metric = training.PointingGame()
    for pixels, maps in data.locator_dataset(files, 16, False, locator.GRID, seed=9, size=locator.LOCATOR_INPUT_SIZE):
        metric.update_state(maps, model(pixels, training=False))
    assert float(metric.result()) > 0.3


def test_the_mean_of_locators_of_one_name_is_one_locator_that_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(1)
    members = [locator.build_locator() for _ in range(2)]
    mean = locator.mean_map(members)
    assert locator.mean_map([mean, locator.mean_map(members)]) is not None, "means of means, as an ensemble's"
    pixels = tf.random.uniform([2, 96, 96, 3], 0, 255)
    expected = np.mean([member(pixels, training=False).numpy() for member in members], axis=0)
    np.testing.assert_allclose(mean(pixels, training=False).numpy(), expected, atol=1e-6)
    model = get_backbone("compact_cnn").build(ModelSettings(input_size=32), {})
    export.save_keras(model, str(tmp_path), mean)
    np.testing.assert_allclose(export.load_locator(str(tmp_path))(pixels, training=False).numpy(), expected, atol=1e-6)
    assert locator.mean_map(members[:1]) is members[0]
