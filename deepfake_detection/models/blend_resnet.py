"""A compact residual network for blending artefacts, trained from scratch in minutes on a CPU.

Self-blended training asks a detector to find a faint boundary and a colour
and sharpness mismatch: local, high-frequency evidence anywhere in the face.
So the first layers keep full resolution (a stride-1 stem), every stage is a
residual block with batch normalisation (which trains from scratch at Adam's
1e-3 where Meso-4's plain stack stalls), and the head pools both the mean and
the maximum of the last features, because one strong boundary response must
be able to decide. About 1.2 M parameters; no geometric augmentation in the
graph, since rotation and zoom resampling blur the very artefacts it looks for
(self-blending flips and re-compresses its pairs itself).

The stem sees the colour image and, beside it, its noise residuals: three
fixed high-pass filters of steganalysis's rich models (Fridrich and
Kodovsky, 2012), as in two-stream forgery detectors (Zhou et al., CVPR 2018;
Luo et al., CVPR 2021). A pasted face lacks its frame's sensor noise, or has
it resampled, and the residuals show that mismatch at full strength where a
colour image buries it under the face's own shading. Measured on held-out
sample videos (docs/experiments.md): the pseudo-fake task is learned faster and the
seeds spread less (the worst model is better, the best worse, the mean the
same), and all three seeds' main jobs pass the blessing bounds.
"""

from typing import Any, Mapping

import keras
import numpy as np

from deepfake_detection.models.base import (
    DROPOUT,
    PIXEL_DTYPE,
    Backbone,
    FusedBatchNormalization,
    ModelSettings,
    hparam,
    image_input,
    prepare,
    probability,
)

_STAGES = (32, 64, 128, 256)
# The full-resolution stem's width: 32 rather than 24 channels, because oneDNN's
# fast batch-norm kernel needs a multiple of 16 under bfloat16 (24 channels
# fell back to its reference kernel: 538 against 347 ms a training step).
_STEM = 32
# Batch-norm statistics follow the weights closely: with Keras's default 0.99 the moving averages lagged
# Adam's early steps and every other validation pass collapsed to one class (val loss above 3).
_BN_MOMENTUM = 0.9
# SRM's 3x3 second-order, 5x5 "KV" and 1-D second-order residual kernels, applied to the grey level.
_SRM_KERNELS = (
    np.pad(np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]) / 4, 1),
    np.array([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]]) / 12,
    np.pad(np.array([[1, -2, 1]]) / 2, ((2, 2), (1, 1))),
)
# Pixels arrive in [-1, 1], where sensor noise of 2 grey levels is 0.016: the gain brings it to about 0.2, and
# the clip at +-1 (steganalysis's truncation) keeps edges from outweighing the noise.
_SRM_GAIN = 10.0


def conv_bn(
    x: keras.KerasTensor, filters: int, strides: int = 1, activate: bool = True, dilation: int = 1
) -> keras.KerasTensor:
    """3x3 convolution, batch normalisation, ReLU (unless `activate` is False)."""
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, dilation_rate=dilation)(x)
    x = FusedBatchNormalization(momentum=_BN_MOMENTUM)(x)
    return keras.layers.ReLU()(x) if activate else x


def noise_residuals(x: keras.KerasTensor) -> keras.KerasTensor:
    """The SRM residuals of the grey level of `x` ([N, H, W, 3] in [-1, 1]): [N, H, W, 3], fixed, clipped to +-1."""
    kernel = np.zeros((5, 5, 3, len(_SRM_KERNELS)), np.float32)
    for number, srm in enumerate(_SRM_KERNELS):
        kernel[:, :, :, number] = (srm * _SRM_GAIN / 3)[:, :, None]
    residuals = keras.layers.Conv2D(
        len(_SRM_KERNELS),
        5,
        padding="same",
        use_bias=False,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(kernel),
        dtype=PIXEL_DTYPE,
        name="noise_residuals",
    )(x)
    return keras.layers.Activation("hard_tanh", dtype=PIXEL_DTYPE)(residuals)


def residual(x: keras.KerasTensor, filters: int, strides: int, dilation: int = 1) -> keras.KerasTensor:
    """A basic residual block (two 3x3 convolutions), with a 1x1 projection when its shape changes."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
        shortcut = FusedBatchNormalization(momentum=_BN_MOMENTUM)(shortcut)
    y = conv_bn(x, filters, strides, dilation=dilation)
    y = conv_bn(y, filters, activate=False, dilation=dilation)
    return keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))


def build_blend_resnet(settings: ModelSettings, hparams: Mapping[str, Any]) -> keras.Model:
    images = image_input()
    x = prepare(images, settings.input_size, "tf", augment=False)
    x = keras.layers.Concatenate(dtype=PIXEL_DTYPE)([x, noise_residuals(x)])
    x = conv_bn(x, _STEM)
    x = conv_bn(x, _STAGES[0], strides=2)
    for number, filters in enumerate(_STAGES):
        x = residual(x, filters, strides=1 if number == 0 else 2)
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(x), keras.layers.GlobalMaxPooling2D()(x)]
    )
    x = keras.layers.Dropout(float(hparam(hparams, DROPOUT)))(pooled)
    return keras.Model(images, probability(x), name="blend_resnet")


BACKBONES = [Backbone("blend_resnet", build_blend_resnet, 128, learning_rate=1e-3)]
