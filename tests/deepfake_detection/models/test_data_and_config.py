"""Input functions, class weights and training settings."""

import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.models import data
from deepfake_detection.models.training import TrainingConfig
from tests.helpers import face_crops


def _write(path, labels, size=40):
    with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
        for i, label in enumerate(labels):
            image = tf.io.encode_png(tf.fill([size, size, 3], tf.constant(i, tf.uint8))).numpy()
            feature = {
                contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_eval_dataset_reads_every_example_once_in_order(tmp_path):
    _write(tmp_path / "a.gz", [0, 1, 1, 1, 0])
    batches = list(data.dataset([str(tmp_path / "*.gz")], batch_size=2, training=False))
    pixels = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert pixels.shape == (5, data.CROP_SIZE, data.CROP_SIZE, 3)
    np.testing.assert_allclose(pixels[:, 0, 0, 0], [0, 1, 2, 3, 4], atol=1e-4)
    assert labels.tolist() == [0, 1, 1, 1, 0]


def test_training_dataset_repeats(tmp_path):
    _write(tmp_path / "a.gz", [0, 1, 1])
    batches = list(data.dataset([str(tmp_path / "a.gz")], batch_size=2, training=True).take(5))
    assert len(batches) == 5


def test_label_counts_and_balanced_class_weights(tmp_path):
    _write(tmp_path / "a.gz", [0, 1, 1, 1])
    real, fake = data.label_counts([str(tmp_path / "a.gz")])
    assert (real, fake) == (1, 3)
    weights = data.class_weights(real, fake)
    assert weights[0] * real == pytest.approx(weights[1] * fake)
    with pytest.raises(ValueError, match="both classes"):
        data.class_weights(0, 3)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="No example files match"):
        data.dataset([str(tmp_path / "nothing*")], 2, False)


def test_training_config_from_custom_config_validates():
    training = TrainingConfig.from_custom_config({"backbone": "meso4", "fusion_backbones": ["resnet50", "xception"]})
    assert training.fusion_backbones == ("resnet50", "xception")
    assert training.model_settings().input_size == 256
    with pytest.raises(ValueError, match="Unknown backbone 'vgg'"):
        TrainingConfig(backbone="vgg")
    with pytest.raises(ValueError, match="Unknown training setting"):
        TrainingConfig.from_custom_config({"backbone": "meso4", "epoch": 3})
    with pytest.raises(ValueError, match="Unknown hyperparameter"):
        TrainingConfig(backbone="meso4", hparams={"momentum": 0.9})
    with pytest.raises(ValueError, match="batch_size=0"):
        TrainingConfig(backbone="meso4", batch_size=0)


def test_cached_input_gives_the_decoded_pixels_rounded(tmp_path):
    with tf.io.TFRecordWriter(str(tmp_path / "faces.gz"), "GZIP") as writer:
        for i, crop in enumerate(face_crops(5)):
            feature = {
                contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[crop])),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    [(pixels, labels)] = list(data.dataset([str(tmp_path / "faces.gz")], batch_size=5, training=False))
    cached = data.dataset([str(tmp_path / "faces.gz")], batch_size=5, training=False, cache=True)
    for _ in range(2):  # the second pass reads the cache
        [(cached_pixels, cached_labels)] = list(cached)
        np.testing.assert_array_equal(cached_pixels.numpy(), np.clip(np.round(pixels.numpy()), 0, 255))
        np.testing.assert_array_equal(cached_labels.numpy(), labels.numpy())
