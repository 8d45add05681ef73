"""The blend detector's noise-residual input: fixed high-pass filters that see noise and not shading."""

import keras
import numpy as np

from deepfake_detection.models import blend_resnet
from deepfake_detection.models.base import ModelSettings


def _residuals_of(images: np.ndarray) -> np.ndarray:
    inputs = keras.Input(images.shape[1:])
    return keras.Model(inputs, blend_resnet.noise_residuals(inputs))(images).numpy()


def test_residuals_ignore_flat_and_linear_shading_and_see_noise():
    ramp = np.tile(np.linspace(-0.8, 0.8, 32, dtype=np.float32), (32, 1))
    shading = np.stack([np.full((32, 32), 0.3, np.float32), ramp, ramp.T])[..., None].repeat(3, axis=-1)
    noise = np.random.default_rng(0).normal(0, 2 / 127.5, size=(1, 32, 32, 3)).astype(np.float32)
    inner = (slice(None), slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(_residuals_of(shading)[inner], 0, atol=1e-5)
    noisy = _residuals_of(shading[:1] + noise)[inner]
    assert 0.1 < np.abs(noisy).mean() < 1


def test_residuals_are_clipped_at_one():
    edge = np.zeros((1, 16, 16, 3), np.float32)
    edge[:, :, 8:] = 1
    residuals = _residuals_of(edge)
    assert np.abs(residuals).max() == 1


def test_the_stem_sees_colour_and_residuals_and_the_filters_stay_fixed():
    model = blend_resnet.build_blend_resnet(ModelSettings(input_size=32), {})
    filters = model.get_layer("noise_residuals")
    assert not filters.trainable and not filters.trainable_weights
    stem = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer is not filters)
    assert stem.kernel.shape[2] == 6
