"""The third design document's compact CNN baseline (31.5 M parameters at 256x256).

Conv 32 -> MaxPool -> Conv 64 -> MaxPool -> Flatten -> Dense 128 -> Dropout -> sigmoid;
almost all its weights sit in the dense layer after the flatten.
"""

from typing import Any, Mapping

import keras

from deepfake_detection.models.base import DROPOUT, Backbone, ModelSettings, hparam, image_input, prepare, probability


def build_compact_cnn(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    x = prepare(images, settings.input_size, "unit")
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dropout(float(hparam(hparams, DROPOUT)))(x)
    return keras.Model(images, probability(x), name="compact_cnn")


# Its 246 k-input dense layer sees only non-negative inputs: Adam steps of 2e-4
# move every weight the same way and kill the ReLUs within a few steps.
BACKBONES = [Backbone("compact_cnn", build_compact_cnn, 256, learning_rate=3e-5)]
