"""The locator: where a face was pasted over, as a GRID x GRID map per face, learned from the self-blends' masks.

Every pseudo-fake the Trainer makes comes with the exact region it pasted
(`self_blend`), so where-supervision is free, as in Face X-ray, LAA-Net and
FakeSTormer. The locator is its own small fully convolutional network,
trained after the classifier on pseudo-fakes pasted through whole-face and
part-of-face regions (`self_blend.region_mask`: mouths, eyes, noses, lower
faces as well as SBI's face hulls), each beside its real face with an empty
map. Being a separate network, it leaves the classifier's weights, and so
every verdict, exactly as trained without it; an earlier trial that made the
classifier learn masks itself lost transfer to unseen fakes
(docs/experiments.md).

Its input is the crop the classifier sees, at LOCATOR_INPUT_SIZE px, in
colour beside its noise residuals (`blend_resnet.noise_residuals`), through
three stride-2 residual stages to a GRID x GRID map and two dilated blocks
that see most of the face, so a cell is judged with its neighbourhood:
a pasted region shows at its boundary and in a colour, noise or sharpness
that differs from the face around it. Each cell's output is the probability
that it lies in a pasted region.
"""

from typing import Sequence

import keras

from deepfake_detection.models import explain
from deepfake_detection.models.base import PIXEL_DTYPE, image_input, prepare
from deepfake_detection.models.blend_resnet import conv_bn, noise_residuals, residual

GRID = explain.GRID
# The locator's own input side, whatever the classifier's: three stride-2 stages bring it to GRID.
LOCATOR_INPUT_SIZE = 128
_STEM = 16
_STAGES = (32, 48, 64)
_DILATIONS = (2, 4)
NAME = "locator"


def build_locator() -> keras.Model:
    """Raw face crops (float pixels 0-255, any size) -> float32 [N, GRID, GRID] in [0, 1]."""
    images = image_input()
    x = prepare(images, LOCATOR_INPUT_SIZE, "tf", augment=False)
    x = keras.layers.Concatenate(dtype=PIXEL_DTYPE)([x, noise_residuals(x)])
    x = conv_bn(x, _STEM)
    for filters in _STAGES:
        x = residual(x, filters, strides=2)
    for dilation in _DILATIONS:
        x = residual(x, _STAGES[-1], strides=1, dilation=dilation)
    cells = keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32")(x)
    maps = keras.layers.Reshape((GRID, GRID), dtype="float32", name="heatmap")(cells)
    return keras.Model(images, maps, name=NAME)


def mean_map(locators: Sequence[keras.Model]) -> keras.Model:
    """One locator whose map is the mean of `locators`' maps (the locator itself when there is one). Each is
    wrapped under a name of its own: locators loaded from several models (an ensemble's) share theirs."""
    if len(locators) == 1:
        return locators[0]
    members = [keras.Model(m.inputs[0], m.outputs[0], name=f"{NAME}_{n}") for n, m in enumerate(locators)]
    images = image_input()
    maps = keras.layers.Average(dtype="float32")([member(images) for member in members])
    return keras.Model(images, maps, name=NAME)
