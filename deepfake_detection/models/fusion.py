"""Feature-level fusion (fifth design document): two backbones without tops on the same face.

Their pooled features are concatenated -> Dense 256 -> Dropout 0.5 -> sigmoid.
Xception + DenseNet121 by default; any pair of keras.applications backbones
is configurable.
"""

from typing import Any, Mapping

import keras

from deepfake_detection.models import applications
from deepfake_detection.models.base import (
    DROPOUT,
    Backbone,
    ModelSettings,
    augmentation,
    hparam,
    image_input,
    probability,
)


def build_fusion(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    unknown = [n for n in settings.fusion_backbones if n not in applications.FEATURE_EXTRACTORS]
    if len(settings.fusion_backbones) < 2 or unknown:
        raise ValueError(
            f"fusion_backbones={settings.fusion_backbones!r}: expected two or more of "
            f"{sorted(applications.FEATURE_EXTRACTORS)}"
        )
    images = image_input()
    augmented = augmentation()(images)
    branches = [applications.features(name, settings, augmented, augment=False) for name in settings.fusion_backbones]
    x = keras.layers.Concatenate(name="fused_features")(branches)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(float(hparam(hparams, DROPOUT)))(x)
    return keras.Model(images, probability(x), name="fusion")


BACKBONES = [Backbone("fusion", build_fusion, 299, min_input_size=applications.XCEPTION_MIN_INPUT_SIZE)]
