"""Fused batch normalisation against Keras's layer, and bfloat16 training exported as float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection.models.base import FusedBatchNormalization
from deepfake_detection.models.registry import get_backbone
from deepfake_detection.models.training import TrainingConfig, dtype_policy, serving_model


def _pair(momentum=0.9):
    keras.utils.set_random_seed(0)
    fused, reference = FusedBatchNormalization(momentum=momentum), keras.layers.BatchNormalization(momentum=momentum)
    for layer in (fused, reference):
        layer.build((None, 6, 6, 16))
    gamma, beta = np.random.default_rng(0).normal(size=(2, 16)).astype("float32")
    fused.set_weights([gamma, beta, np.zeros(16, "float32"), np.ones(16, "float32")])
    reference.set_weights([gamma, beta, np.zeros(16, "float32"), np.ones(16, "float32")])
    return fused, reference


def test_fused_batch_norm_matches_keras_in_training_inference_and_its_moving_statistics():
    fused, reference = _pair()
    x = tf.constant(np.random.default_rng(1).normal(3, 2, size=(8, 6, 6, 16)).astype("float32"))
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True), atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, atol=1e-5)
    # Keras keeps the biased batch variance, TensorFlow's fused op the unbiased one: n / (n - 1) apart.
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=0.01)
    np.testing.assert_allclose(fused(x, training=False), reference(x, training=False), rtol=0.01, atol=1e-3)


def test_fused_batch_norm_gradients_match_keras():
    fused, reference = _pair()
    x = tf.constant(np.random.default_rng(2).normal(size=(4, 6, 6, 16)).astype("float32"))
    grads = []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 2 * tf.range(16, dtype=tf.float32))
        grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
    for mine, theirs in zip(*grads, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=1e-3)


def test_fused_batch_norm_saves_and_loads_in_a_keras_file(tmp_path):
    inputs = keras.Input((6, 6, 16))
    model = keras.Model(inputs, FusedBatchNormalization(momentum=0.8, epsilon=1e-4)(inputs))
    model.layers[-1].set_weights([np.full(16, v, "float32") for v in (2.0, 1.0, 0.5, 4.0)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[-1].get_config()["momentum"] == 0.8
    x = np.ones((1, 6, 6, 16), "float32")
    np.testing.assert_allclose(loaded(x), model(x))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "float32"])
def test_the_exported_model_is_float32_with_the_trained_weights(policy):
    training = TrainingConfig(backbone="blend_resnet", input_size=32)
    with dtype_policy(policy):
        trained = get_backbone("blend_resnet").build(training.model_settings(), {})
    assert keras.mixed_precision.global_policy().name == "float32"
    exported = serving_model(trained, training, {})
    assert exported.dtype_policy.name == "float32"
    assert (exported is trained) == (policy == "float32")
    for mine, theirs in zip(exported.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    images = np.random.default_rng(3).uniform(0, 255, size=(4, 40, 40, 3)).astype("float32")
    np.testing.assert_allclose(exported(images, training=False), trained(images, training=False), atol=0.02)
