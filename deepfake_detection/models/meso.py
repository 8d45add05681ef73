"""Meso-4 and MesoInception-4 (Afchar et al., 2018): compact forgery detectors on 256x256 faces.

Meso-4 has about 28 k parameters: four conv/BN/pool blocks and a tiny dense
head; MesoInception-4 replaces the first two blocks with inception modules
using dilated convolutions.

One change from the paper's code, found when MesoInception-4 stalled at
chance in most runs: its inception branches are 1 to 4 filters wide, with
Glorot initialisation and a ReLU straight after each convolution. A branch
whose few filters go negative on every input outputs zeros and receives no
gradient again, and with all of them dead the net predicts a constant. Here
every convolution is followed by batch normalisation and then the ReLU, with
He initialisation, and pixels are centred to [-1, 1]: the normalised
pre-activations keep about half of each branch alive, so both nets train
from scratch in every run. Parameter counts are unchanged but for the BN.
"""

from typing import Any, Mapping

import keras

from deepfake_detection.models.base import DROPOUT, Backbone, ModelSettings, hparam, image_input, prepare, probability


def _conv_bn_relu(x: keras.KerasTensor, filters: int, kernel: int, dilation: int = 1) -> keras.KerasTensor:
    x = keras.layers.Conv2D(
        filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, kernel_initializer="he_normal"
    )(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def _conv_block(x: keras.KerasTensor, filters: int, kernel: int, pool: int) -> keras.KerasTensor:
    return keras.layers.MaxPooling2D(pool, padding="same")(_conv_bn_relu(x, filters, kernel))


def _inception(x: keras.KerasTensor, a: int, b: int, c: int, d: int) -> keras.KerasTensor:
    branch1 = _conv_bn_relu(x, a, 1)
    branch2 = _conv_bn_relu(_conv_bn_relu(x, b, 1), b, 3)
    branch3 = _conv_bn_relu(_conv_bn_relu(x, c, 1), c, 3, dilation=2)
    branch4 = _conv_bn_relu(_conv_bn_relu(x, d, 1), d, 3, dilation=3)
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
    x = prepare(images, settings.input_size, "tf")
    x = _conv_block(x, 8, 3, 2)
    x = _conv_block(x, 8, 5, 2)
    x = _conv_block(x, 16, 5, 2)
    x = _conv_block(x, 16, 5, 4)
    return keras.Model(images, _meso_head(x, hparams), name="meso4")


def build_mesoinception4(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    x = prepare(images, settings.input_size, "tf")
    for sizes in ((1, 4, 4, 2), (2, 4, 4, 2)):
        x = keras.layers.MaxPooling2D(2, padding="same")(_inception(x, *sizes))
    x = _conv_block(x, 16, 5, 2)
    x = _conv_block(x, 16, 5, 4)
    return keras.Model(images, _meso_head(x, hparams), name="mesoinception4")


# Trained from scratch with Adam at 1e-3, as in the Meso paper.
BACKBONES = [
    Backbone("meso4", build_meso4, 256, learning_rate=1e-3),
    Backbone("mesoinception4", build_mesoinception4, 256, learning_rate=1e-3),
]
