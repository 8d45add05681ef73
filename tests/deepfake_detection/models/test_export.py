"""Exported SavedModels reload and every signature agrees with the Keras model on the same images."""

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.models import data, export
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import get_backbone
from tests.helpers import face_crops, spread_outputs


def _example(encoded):
    feature = {contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.mark.parametrize("name", ["meso4", "xception"])
def test_image_model_signatures_agree_with_keras(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = get_backbone(name).build(ModelSettings(input_size=71), {"head_units": 64})
    images = face_crops(5)
    spread_outputs(model, data.decode_images(tf.constant(images)))
    expected = model(data.decode_images(tf.constant(images)), training=False).numpy().ravel()
    export.export_saved_model(model, str(tmp_path))

    loaded = tf.saved_model.load(str(tmp_path))
    assert set(loaded.signatures) == {export.SERVING_DEFAULT, export.SERVING_TF_EXAMPLE, contract.EXPLAIN_SIGNATURE}
    by_bytes = loaded.signatures[export.SERVING_DEFAULT](images=tf.constant(images))[export.OUTPUT_KEY]
    by_example = loaded.signatures[export.SERVING_TF_EXAMPLE](examples=tf.constant([_example(i) for i in images]))
    np.testing.assert_allclose(by_bytes.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(by_example[export.OUTPUT_KEY].numpy(), expected, atol=1e-5)
    assert np.ptp(expected) > 0.01, f"different faces should score differently: {expected}"


def test_temporal_model_takes_a_batch_of_clips(tmp_path):
    keras.utils.set_random_seed(0)
    settings = ModelSettings(input_size=32, clip_length=3, lstm_units=4)
    model = get_backbone("resnext_lstm").build(settings, {})
    clips = np.array(face_crops(6), dtype=object).reshape(2, 3)
    pixels = data.decode_clips(tf.constant(clips), 3)
    spread_outputs(model, pixels)
    expected = model(pixels, training=False).numpy().ravel()
    export.export_saved_model(model, str(tmp_path), clip_length=3)

    loaded = tf.saved_model.load(str(tmp_path))
    by_bytes = loaded.signatures[export.SERVING_DEFAULT](clips=tf.constant(clips))[export.OUTPUT_KEY]
    np.testing.assert_allclose(by_bytes.numpy(), expected, atol=1e-5)
    frames = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(clips[0])))
    example = tf.train.Example(features=tf.train.Features(feature={contract.CLIP_FRAMES_KEY: frames}))
    by_example = loaded.signatures[export.SERVING_TF_EXAMPLE](examples=tf.constant([example.SerializeToString()]))
    np.testing.assert_allclose(by_example[export.OUTPUT_KEY].numpy(), expected[:1], atol=1e-5)
    assert np.ptp(expected) > 0.01, f"different clips should score differently: {expected}"


def test_decoding_is_the_same_for_png_and_lossless_sizes():
    face = skimage.data.astronaut()[30:286, 140:396]
    decoded = data.decode_images(tf.constant([tf.io.encode_png(face).numpy()])).numpy()[0]
    np.testing.assert_array_equal(decoded, face.astype(np.float32))
