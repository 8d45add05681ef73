"""ResNeXt-50 (32x4d) frame embeddings followed by a bidirectional LSTM over time.

Keras ships no ResNeXt, so it is written here from the paper (Xie et al.,
2017) with grouped 3x3 convolutions: 25.0 M parameters with its 1000-class top.
The clip model applies the embedding to every frame (`TimeDistributed`) and
runs the recurrence over the time axis: inputs are [batch, time, features].
"""

from typing import Any, Mapping

import keras

from deepfake_detection.models.base import (
    DROPOUT,
    Backbone,
    ModelSettings,
    hparam,
    prepare,
    probability,
)

CARDINALITY = 32
BOTTLENECK_WIDTH = 4
STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))  # (blocks, base channels); outputs are 4x the base
EMBEDDING_LAYER = "resnext50"


def _conv_bn(x: keras.KerasTensor, filters: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", groups=groups, use_bias=False)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5)(x)
    return keras.layers.ReLU()(x) if relu else x


def _block(x: keras.KerasTensor, base_channels: int, stride: int) -> keras.KerasTensor:
    width = CARDINALITY * BOTTLENECK_WIDTH * base_channels // 64
    out_channels = 4 * base_channels
    shortcut = x
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = _conv_bn(x, out_channels, 1, stride, relu=False)
    y = _conv_bn(x, width, 1)
    y = _conv_bn(y, width, 3, stride, groups=CARDINALITY)
    y = _conv_bn(y, out_channels, 1, relu=False)
    return keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))


def resnext50(input_size: int, include_top: bool = False, classes: int = 1000) -> keras.Model:
    """ResNeXt-50 32x4d; without top it returns the 2048-d pooled embedding."""
    images = keras.Input(shape=(input_size, input_size, 3))
    x = _conv_bn(images, 64, 7, 2)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, (blocks, base_channels) in enumerate(STAGES):
        for block in range(blocks):
            x = _block(x, base_channels, 2 if block == 0 and stage > 0 else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if include_top:
        x = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(images, x, name=EMBEDDING_LAYER)


def build_resnext_lstm(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    """Clips [batch, T, H, W, 3] of raw crops -> probability that the face track is fake."""
    size = settings.input_size
    clips = keras.Input(shape=(settings.clip_length, None, None, 3), name="clip")
    frame = keras.Input(shape=(None, None, 3))
    x = prepare(frame, size, "torch")
    embedding = resnext50(size)
    if settings.weights:
        embedding.load_weights(settings.weights)
    per_frame = keras.Model(frame, embedding(x), name="frame_embedding")
    sequence = keras.layers.TimeDistributed(per_frame, name="embed_frames")(clips)
    units = settings.lstm_units
    x = keras.layers.Bidirectional(keras.layers.LSTM(units, activation="swish"), name="bilstm_over_time")(sequence)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dense(units, activation="swish")(x)
    x = keras.layers.Dropout(float(hparam(hparams, DROPOUT)))(x)
    return keras.Model(clips, probability(x), name="resnext_lstm")


BACKBONES = [Backbone("resnext_lstm", build_resnext_lstm, 224, temporal=True)]
