"""The shared base of every backbone: settings, in-graph preprocessing, augmentation, heads.

Every model takes raw face crops (float pixels 0-255, any size) and does its
own resizing and normalisation inside the graph, so one stored dataset serves
every backbone and the exported SavedModel equals what was trained.
"""

import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional

import keras
import tensorflow as tf

# Tunable hyperparameters and their defaults (the design documents' settings).
LEARNING_RATE = "learning_rate"
DROPOUT = "dropout"
HEAD_UNITS = "head_units"
FINE_TUNE_LAYERS = "fine_tune_layers"
DEFAULT_HPARAMS: Dict[str, Any] = {LEARNING_RATE: 2e-4, DROPOUT: 0.5, HEAD_UNITS: 512, FINE_TUNE_LAYERS: 0}

WEIGHTS_IMAGENET = "imagenet"


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """What a backbone is built with, beyond the tunable hyperparameters.

    `weights`: "imagenet" (downloaded by Keras, needs a network), a path to a
    local weights file, or None (random init; what the tests use).
    """

    input_size: int
    weights: Optional[str] = None
    l2: float = 1e-3
    clip_length: int = 8
    lstm_units: int = 256
    fusion_backbones: tuple = ("xception", "densenet121")

    def keras_weights(self) -> Optional[str]:
        """The `weights` argument for keras.applications (which accepts a local file path too)."""
        return self.weights or None


def hparam(hparams: Mapping[str, Any], name: str) -> Any:
    return hparams.get(name, DEFAULT_HPARAMS[name])


@keras.saving.register_keras_serializable(package="deepfake")
class Normalization(keras.layers.Layer):
    """A backbone's own pixel normalisation, from raw 0-255 pixels.

    Modes follow keras.applications: "tf" scales to [-1, 1], "torch" to ImageNet
    mean/std, "caffe" to BGR minus the ImageNet mean, "unit" to [0, 1], "raw"
    leaves pixels as they are (EfficientNetV2 normalises inside itself).
    """

    _MEAN = (0.485, 0.456, 0.406)
    _STD = (0.229, 0.224, 0.225)
    _CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "torch", "caffe", "unit", "raw"):
            raise ValueError(f"Unknown normalisation mode {mode!r}")
        self.mode = mode

    def call(self, images: tf.Tensor) -> tf.Tensor:
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            return (images / 255.0 - tf.constant(self._MEAN)) / tf.constant(self._STD)
        if self.mode == "caffe":
            return images[..., ::-1] - tf.constant(self._CAFFE_MEAN_BGR)
        if self.mode == "unit":
            return images / 255.0
        return images

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="deepfake")
class RandomChannelShift(keras.layers.Layer):
    """Adds one random offset per colour channel in training, like Keras's old `channel_shift_range`."""

    def __init__(self, max_shift: float = 20.0, **kwargs):
        super().__init__(**kwargs)
        self.max_shift = max_shift

    def call(self, images: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        if not training:
            return images
        shift = tf.random.uniform([tf.shape(images)[0], 1, 1, 3], -self.max_shift, self.max_shift)
        return tf.clip_by_value(images + shift, 0.0, 255.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_shift": self.max_shift}


# Pixels are resized, augmented and normalised in float32 under any mixed
# precision policy; the first layer after them casts to its compute dtype.
PIXEL_DTYPE = "float32"


def augmentation(name: str = "augmentation") -> keras.Sequential:
    """The design's augmentation; every layer is the identity outside training."""
    return keras.Sequential(
        [
            keras.layers.RandomRotation(15 / 360, fill_mode="reflect", dtype=PIXEL_DTYPE),
            keras.layers.RandomZoom(0.2, fill_mode="reflect", dtype=PIXEL_DTYPE),
            keras.layers.RandomBrightness(0.2, value_range=(0.0, 255.0), dtype=PIXEL_DTYPE),
            RandomChannelShift(20.0, dtype=PIXEL_DTYPE),
            keras.layers.RandomFlip("horizontal", dtype=PIXEL_DTYPE),
        ],
        name=name,
    )


@keras.saving.register_keras_serializable(package="deepfake")
class FusedBatchNormalization(keras.layers.Layer):
    """Batch normalisation of NHWC feature maps as one fused TensorFlow op (oneDNN's kernel on CPU).

    Keras 3's BatchNormalization computes moments, normalisation and their
    gradients as a dozen separate element-wise ops: on this project's
    from-scratch CPU backbones they took most of a training step (blend_resnet
    at 128 px, batch 32: 756 ms a step, 273 ms without any normalisation;
    with this layer 347 ms). Keras's weights, defaults and normalisation
    (scale, offset, moving mean and variance updated with `momentum`), but
    the moving variance averages the fused op's unbiased batch variance,
    n / (n - 1) of Keras's for n values per channel in a batch; the
    statistics stay float32 under mixed precision.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape: tuple) -> None:
        channels = (input_shape[-1],)
        self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma", autocast=False)
        self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta", autocast=False)
        statistics = dict(shape=channels, trainable=False, autocast=False)
        self.moving_mean = self.add_weight(initializer="zeros", name="moving_mean", **statistics)
        self.moving_variance = self.add_weight(initializer="ones", name="moving_variance", **statistics)

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        if not training:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.epsilon, is_training=False
            )
            return outputs
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
        )
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1 - self.momentum))
        return outputs

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


def image_input(name: str = "image") -> keras.KerasTensor:
    """Raw face crops: float pixels 0-255, any height and width."""
    return keras.Input(shape=(None, None, 3), name=name)


def prepare(images: keras.KerasTensor, size: int, mode: str, augment: bool = True) -> keras.KerasTensor:
    """Resize to the backbone's input size, augment (training only), normalise."""
    x = keras.layers.Resizing(size, size, dtype=PIXEL_DTYPE)(images)
    if augment:
        x = augmentation()(x)
    return Normalization(mode, dtype=PIXEL_DTYPE)(x)


def design_head(features: keras.KerasTensor, hparams: Mapping[str, Any]) -> keras.KerasTensor:
    """The Xception/EfficientNet head: Dense 2w -> 3 x Dense w -> sigmoid (w = 512 by default)."""
    units = int(hparam(hparams, HEAD_UNITS))
    x = keras.layers.Dense(2 * units, activation="relu")(features)
    x = keras.layers.Dropout(float(hparam(hparams, DROPOUT)))(x)
    for _ in range(3):
        x = keras.layers.Dense(units, activation="relu")(x)
    return probability(x)


def probability(features: keras.KerasTensor) -> keras.KerasTensor:
    """The sigmoid output, kept in float32 under mixed precision."""
    return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_probability")(features)


def set_trainable_tail(base: keras.Model, layers: int) -> None:
    """Freezes `base` except its last `layers` layers (0: all frozen, -1: all trainable).

    BatchNormalization layers stay frozen so fine-tuning does not wreck their
    statistics with small batches.
    """
    base.trainable = layers != 0
    if layers <= 0:
        return
    for position, layer in enumerate(base.layers):
        tail = position >= len(base.layers) - layers
        layer.trainable = tail and not isinstance(layer, (keras.layers.BatchNormalization, FusedBatchNormalization))


BuildFn = Callable[[ModelSettings, Mapping[str, Any]], keras.Model]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A named model builder and its defaults.

    `base_layer` names the pretrained sub-model that two-phase fine-tuning
    freezes and then partly unfreezes; `temporal` models take clips;
    `learning_rate` is the default the tuner searches around;
    `min_input_size` is the smallest input side its layers accept (Keras'
    Xception refuses under 71), checked before any video is read.
    """

    name: str
    build: BuildFn
    input_size: int
    base_layer: Optional[str] = None
    temporal: bool = False
    learning_rate: float = DEFAULT_HPARAMS[LEARNING_RATE]
    min_input_size: int = 32

    def default_hparams(self) -> Dict[str, Any]:
        return {**DEFAULT_HPARAMS, LEARNING_RATE: self.learning_rate}
