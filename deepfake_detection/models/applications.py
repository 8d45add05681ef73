"""Backbones from keras.applications with the design's heads.

Xception and EfficientNetV2M carry the design's Dense 1024 -> 3 x 512 head;
ResNet50 the regularised head of the second design document; DenseNet121 a
small dense head. Pretrained bases are frozen first (`fine_tune_layers` = 0)
and partly unfrozen in the second training phase.
"""

from typing import Any, Mapping

import keras

from deepfake_detection.models.base import (
    DROPOUT,
    HEAD_UNITS,
    Backbone,
    ModelSettings,
    design_head,
    hparam,
    image_input,
    prepare,
    probability,
)


def base_layer_name(name: str) -> str:
    return f"{name}_base"


def features(name: str, settings: ModelSettings, images: keras.KerasTensor, augment: bool = True) -> keras.KerasTensor:
    """Pooled features of a keras.applications backbone on raw crops (fusion passes augmented crops)."""
    application, mode, extra = FEATURE_EXTRACTORS[name]
    pretrained = application(
        include_top=False,
        weights=settings.keras_weights(),
        input_shape=(settings.input_size, settings.input_size, 3),
        pooling="avg",
        **extra,
    )
    # Renamed by wrapping: EfficientNetV2 looks its blocks up by its `name` argument.
    base = keras.Model(pretrained.input, pretrained.output, name=base_layer_name(name))
    return base(prepare(images, settings.input_size, mode, augment))


def build_xception(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    return keras.Model(images, design_head(features("xception", settings, images), hparams), name="xception")


def build_efficientnet_v2m(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    output = design_head(features("efficientnet_v2m", settings, images), hparams)
    return keras.Model(images, output, name="efficientnet_v2m")


def build_resnet50(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    x = features("resnet50", settings, images)
    dropout = float(hparam(hparams, DROPOUT))
    units = int(hparam(hparams, HEAD_UNITS))
    for width in (units // 2, units // 4):
        x = keras.layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(settings.l2))(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(images, probability(x), name="resnet50")


def build_densenet121(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    x = features("densenet121", settings, images)
    x = keras.layers.Dense(int(hparam(hparams, HEAD_UNITS)) // 2, activation="relu")(x)
    x = keras.layers.Dropout(float(hparam(hparams, DROPOUT)))(x)
    return keras.Model(images, probability(x), name="densenet121")


# name -> (application, normalisation mode, extra keyword arguments)
FEATURE_EXTRACTORS = {
    "xception": (keras.applications.Xception, "tf", {}),
    "efficientnet_v2m": (keras.applications.EfficientNetV2M, "raw", {"include_preprocessing": True}),
    "resnet50": (keras.applications.ResNet50, "caffe", {}),
    "densenet121": (keras.applications.DenseNet121, "torch", {}),
}

# Keras refuses Xception inputs under 71 px, the others under 32.
XCEPTION_MIN_INPUT_SIZE = 71

BACKBONES = [
    Backbone(name, build, size, base_layer_name(name), min_input_size=smallest)
    for name, build, size, smallest in (
        ("xception", build_xception, 299, XCEPTION_MIN_INPUT_SIZE),
        ("efficientnet_v2m", build_efficientnet_v2m, 299, 32),
        ("resnet50", build_resnet50, 224, 32),
        ("densenet121", build_densenet121, 224, 32),
    )
]
