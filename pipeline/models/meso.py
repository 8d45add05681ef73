"""Meso-4 and MesoInception-4 (Afchar et al., 2018): compact forgery detectors on 256x256 faces.

Meso-4 has about 28 k parameters: four conv/BN/pool blocks and a tiny dense
head; MesoInception-4 replaces the first two blocks with inception modules
using dilated convolutions.
"""

from typing import Any, Mapping

import keras

from pipeline.models.base import DROPOUT, Backbone, ModelSettings, hparam, image_input, prepare, probability


def _conv_block(x: keras.KerasTensor, filters: int, kernel: int, pool: int) -> keras.KerasTensor:
    x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.MaxPooling2D(pool, padding="same")(x)


def _inception(x: keras.KerasTensor, a: int, b: int, c: int, d: int) -> keras.KerasTensor:
    branch1 = keras.layers.Conv2D(a, 1, padding="same", activation="relu")(x)
    branch2 = keras.layers.Conv2D(b, 1, padding="same", activation="relu")(x)
    branch2 = keras.layers.Conv2D(b, 3, padding="same", activation="relu")(branch2)
    branch3 = keras.layers.Conv2D(c, 1, padding="same", activation="relu")(x)
    branch3 = keras.layers.Conv2D(c, 3, dilation_rate=2, padding="same", activation="relu")(branch3)
    branch4 = keras.layers.Conv2D(d, 1, padding="same", activation="relu")(x)
    branch4 = keras.layers.Conv2D(d, 3, dilation_rate=3, padding="same", activation="relu")(branch4)
    return keras.layers.Concatenate()([branch1, branch2, branch3, branch4])


def _meso_head(x: keras.KerasTensor, hparams: Mapping[str, Any]) -> keras.KerasTensor:
    dropout = float(hparam(hparams, DROPOUT))
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(16)(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1)(x)
    x = keras.layers.Dropout(dropout)(x)
    return probability(x)


def build_meso4(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    x = prepare(images, settings.input_size, "unit")
    x = _conv_block(x, 8, 3, 2)
    x = _conv_block(x, 8, 5, 2)
    x = _conv_block(x, 16, 5, 2)
    x = _conv_block(x, 16, 5, 4)
    return keras.Model(images, _meso_head(x, hparams), name="meso4")


def build_mesoinception4(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    x = prepare(images, settings.input_size, "unit")
    for sizes in ((1, 4, 4, 2), (2, 4, 4, 2)):
        x = _inception(x, *sizes)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = _conv_block(x, 16, 5, 2)
    x = _conv_block(x, 16, 5, 4)
    return keras.Model(images, _meso_head(x, hparams), name="mesoinception4")


# Trained from scratch with Adam at 1e-3, as in the Meso paper.
BACKBONES = [
    Backbone("meso4", build_meso4, 256, learning_rate=1e-3),
    Backbone("mesoinception4", build_mesoinception4, 256, learning_rate=1e-3),
]
