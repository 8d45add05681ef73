"""Every backbone builds and takes one training step at a small input size; full-size parameter counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection.models import resnext_lstm
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import BACKBONES, get_backbone
from deepfake_detection.models.training import TrainingConfig, build_and_compile

SMALL_SIZES = {"xception": 71, "fusion": 71}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_builds_and_takes_a_training_step(name):
    backbone = get_backbone(name)
    size = SMALL_SIZES.get(name, 32)
    training = TrainingConfig(backbone=name, input_size=size, clip_length=2, lstm_units=8)
    model = build_and_compile(training, {"head_units": 16})
    rng = np.random.default_rng(0)
    shape = (2, 2, 40, 40, 3) if backbone.temporal else (2, 40, 40, 3)
    images = rng.uniform(0, 255, size=shape).astype("float32")
    labels = np.array([[0.0], [1.0]], "float32")
    before = [w.numpy().copy() for w in model.trainable_weights]
    # One eager step: tracing a graph for the large backbones costs minutes on a CPU.
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=images, y=labels, y_pred=model(images, training=True))
    gradients = tape.gradient(loss, model.trainable_weights)
    model.optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
    after = [w.numpy() for w in model.trainable_weights]
    assert np.isfinite(float(loss))
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))
    probabilities = model(images, training=False).numpy()
    assert probabilities.shape == (2, 1) and np.all((probabilities >= 0) & (probabilities <= 1))


@pytest.mark.parametrize(
    "name, application",
    [
        ("xception", keras.applications.Xception),
        ("efficientnet_v2m", keras.applications.EfficientNetV2M),
        ("resnet50", keras.applications.ResNet50),
        ("densenet121", keras.applications.DenseNet121),
    ],
)
def test_full_size_base_matches_keras_parameter_count(name, application):
    backbone = get_backbone(name)
    model = backbone.build(ModelSettings(input_size=backbone.input_size), {})
    reference = application(
        include_top=False, weights=None, input_shape=(backbone.input_size,) * 2 + (3,), pooling="avg"
    )
    assert model.get_layer(backbone.base_layer).count_params() == reference.count_params()


def test_resnext50_has_the_published_parameter_count():
    model = resnext_lstm.resnext50(224, include_top=True)
    assert abs(model.count_params() - 25.0e6) / 25.0e6 < 0.01


def test_meso4_and_compact_cnn_sizes_match_their_papers():
    meso4 = get_backbone("meso4").build(ModelSettings(input_size=256), {})
    assert 27_000 < meso4.count_params() < 29_000
    compact = get_backbone("compact_cnn").build(ModelSettings(input_size=256), {})
    assert abs(compact.count_params() - 31.5e6) / 31.5e6 < 0.01


def test_lstm_runs_over_the_time_axis():
    settings = ModelSettings(input_size=32, clip_length=4, lstm_units=8)
    model = get_backbone("resnext_lstm").build(settings, {})
    lstm = model.get_layer("bilstm_over_time")
    assert isinstance(lstm, keras.layers.Bidirectional)
    assert lstm.input.shape[1] == 4 and lstm.input.shape[2] == 2048
    sequence = np.random.default_rng(1).normal(size=(1, 4, 2048)).astype("float32")
    forward = lstm(sequence).numpy()
    assert forward.shape == (1, 16)
    assert not np.allclose(forward, lstm(sequence[:, ::-1]).numpy(), atol=1e-6)
    assert not np.allclose(forward, lstm(sequence[:, [1, 0, 3, 2]]).numpy(), atol=1e-6)
    clip = np.random.default_rng(2).uniform(0, 255, size=(3, 4, 32, 32, 3)).astype("float32")
    assert model(clip).shape == (3, 1)


def test_fusion_rejects_an_unknown_backbone():
    with pytest.raises(ValueError, match="fusion_backbones"):
        get_backbone("fusion").build(ModelSettings(input_size=71, fusion_backbones=("xception", "vgg")), {})


def test_the_contract_names_every_registered_backbone():
    """The detection service names the backbones from the contract, without importing Keras: the same names."""
    from deepfake_detection import contract
    from deepfake_detection.models.registry import BACKBONES

    assert sorted(contract.BACKBONE_NAMES) == sorted(BACKBONES)
