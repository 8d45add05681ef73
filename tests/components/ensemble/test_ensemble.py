"""Ensemble weights fitted on eval predictions, and the ensemble model's arithmetic."""

import numpy as np
import pytest

from components.ensemble.ensemble import build_ensemble, fit_weights
from deepfake_detection.evaluation.video_scores import log_loss
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import get_backbone


def test_weights_favour_the_better_member():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=2000).astype(float)
    good = np.clip(labels * 0.8 + 0.1 + rng.normal(0, 0.05, size=labels.size), 0.01, 0.99)
    noisy = rng.uniform(0.01, 0.99, size=labels.size)
    weights = fit_weights(np.stack([good, noisy]), labels)
    assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    assert weights[0] > 0.9
    assert log_loss(weights @ np.stack([good, noisy]), labels) <= log_loss(0.5 * (good + noisy), labels)


def test_ensemble_output_is_the_weighted_average_of_its_members():
    settings = ModelSettings(input_size=32)
    members = [get_backbone(name).build(settings, {"head_units": 8}) for name in ("meso4", "compact_cnn")]
    ensemble = build_ensemble(members, [0.25, 0.75])
    images = np.random.default_rng(1).uniform(0, 255, size=(4, 40, 40, 3)).astype("float32")
    # training=False explicitly: Keras 3's random augmentation layers default to training mode.
    expected = 0.25 * members[0](images, training=False).numpy() + 0.75 * members[1](images, training=False).numpy()
    np.testing.assert_allclose(ensemble(images, training=False).numpy(), expected, atol=1e-6)


def test_member_and_weight_counts_must_agree():
    with pytest.raises(ValueError, match="2 members but 1 weights"):
        build_ensemble([object(), object()], [1.0])
