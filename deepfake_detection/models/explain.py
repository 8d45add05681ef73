"""Where a face looks manipulated: a map per face, from the locator and the classifier.

The fake probability beside each map is the classifier's own, computed in
the same pass, so detection does not depend on the map. Methods:

- `located_gradient` (what the `explain` signature serves when the model
  has a locator, `locator.py`): the locator's map of where the face looks
  pasted over, smoothed, weighted by the input gradient below. Trained on
  the self-blends' own masks, the locator knows regions (a mouth, the eyes,
  a whole face); the gradient says where this classifier's evidence lies.
- `input_gradient` (served without a locator): the magnitude of the fake
  probability's gradient with respect to the pixels, smoothed by a Gaussian
  of a sixteenth of the face crop and pooled onto a GRID x GRID grid. A
  self-blend detector answers to a blend's boundary and noise mismatch; the
  smoothing gathers a boundary's ring of gradient into the region it
  encloses, and it needs no feature map, so it serves every backbone alike.
- `grad_x_activation`: at a convolutional feature map of `grid` x `grid`
  cells, the gradient times the activation, summed over channels.
- `grad_cam` (Selvaraju et al., 2017): the same feature map weighted by the
  spatial mean of its gradient per channel.

Gradient maps are clipped at zero and scaled per face so that the peak is 1
(all zeros when nothing pushes towards fake). The feature-map methods are
kept for bench/explain_bench.py, whose figures (docs/explanations.md) chose
what is served.
"""

from typing import Callable, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

LOCATED_GRADIENT = "located_gradient"
INPUT_GRADIENT = "input_gradient"
GRAD_X_ACTIVATION = "grad_x_activation"
GRAD_CAM = "grad_cam"
METHODS = (INPUT_GRADIENT, GRAD_X_ACTIVATION, GRAD_CAM)
DEFAULT_METHOD = INPUT_GRADIENT
# The side of an input-gradient map: an eye or the mouth covers about 3 x 2 cells of a face crop.
GRID = 16
# Input gradients are pooled onto this finer grid, smoothed there by SMOOTHING cells (a sixteenth of the crop:
# the best of 0 to 1/8 in the bench), then pooled onto GRID.
_FINE_GRID = 64
_SMOOTHING = 4.0
# The locator's map is smoothed by this many cells of GRID before it weights the gradient: peaks move off a
# region's rim into it.
_LOCATED_SMOOTHING = 1.0

Explainer = Callable[[tf.Tensor], Tuple[tf.Tensor, tf.Tensor]]


def feature_layer(model: keras.Model, grid: int) -> Optional[keras.layers.Layer]:
    """The deepest layer of `model` whose output is a `grid` x `grid` feature map, None when none is.

    Chosen by resolution rather than by name, so models trained with Keras'
    generated layer names are explained alike.
    """
    found = None
    for layer in model.layers:
        shape = getattr(layer, "output", None) is not None and layer.output.shape
        if shape and len(shape) == 4 and tuple(shape[1:3]) == (grid, grid):
            found = layer
    return found


def _normalised(maps: tf.Tensor) -> tf.Tensor:
    """Each map clipped at zero and divided by its peak: [N, H, W] in [0, 1]."""
    maps = tf.nn.relu(maps)
    peak = tf.reduce_max(maps, axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(maps, peak)


def explainer(model: keras.Model, method: str = DEFAULT_METHOD, grid: Optional[int] = None) -> Explainer:
    """A function of pixels ([N, H, W, 3], 0-255) -> (fake probability [N], maps [N, g, g] in [0, 1]).

    `grid` picks the feature map of the feature-map methods
    (`feature_layer`); input-gradient maps are GRID x GRID.
    """
    if method == INPUT_GRADIENT:
        return lambda pixels: _input_gradient(model, pixels)
    if method not in METHODS:
        raise ValueError(f"Unknown explanation method {method!r}; expected one of {list(METHODS)}")
    layer = feature_layer(model, grid or 0)
    if layer is None:
        raise ValueError(f"{model.name} has no {grid} x {grid} feature map to explain with {method}")
    tapped = keras.Model(model.inputs, [layer.output, model.output])

    def explain(pixels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            features, probabilities = tapped(pixels, training=False)
            features = tf.cast(features, tf.float32)
            probabilities = tf.reshape(tf.cast(probabilities, tf.float32), [-1])
        gradients = tape.gradient(probabilities, features)
        if method == GRAD_CAM:
            gradients = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
        return probabilities, _normalised(tf.reduce_sum(gradients * features, axis=-1))

    return explain


def _gaussian(sigma: float) -> tf.Tensor:
    """A normalised 1-D Gaussian kernel of three sigmas each side, as [taps, 1, 1, 1] for conv2d."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    return tf.constant((taps / taps.sum()).reshape(-1, 1, 1, 1), tf.float32)


def _smoothed(maps: tf.Tensor, sigma: float) -> tf.Tensor:
    """Maps [N, H, W, 1] blurred by a Gaussian of `sigma` cells: a column pass, then a row pass."""
    kernel = _gaussian(sigma)
    columns = tf.nn.conv2d(maps, kernel, 1, "SAME")
    return tf.nn.conv2d(columns, tf.transpose(kernel, [1, 0, 2, 3]), 1, "SAME")


def located_gradient(model: keras.Model, locator: keras.Model) -> Explainer:
    """What the `explain` signature serves for a model with a locator (`locator.py`): where the face looks pasted
    over and the classifier's score answers to it.

    The locator's map, averaged with the map of the mirrored face (mirrored
    back) and smoothed by a Gaussian of one cell, times the input-gradient
    map (peak 1): the locator knows regions, the gradient where this
    classifier's evidence lies, and their product peaks where both agree.
    Each value stays at most the locator's probability that the cell was
    pasted, so a face the locator finds untouched gets a faint map.
    """

    def explain(pixels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        probabilities, gradient = _input_gradient(model, pixels)
        mirrored = tf.reverse(locator(tf.reverse(pixels, axis=[2]), training=False), axis=[2])
        located = 0.5 * (tf.cast(locator(pixels, training=False), tf.float32) + tf.cast(mirrored, tf.float32))
        return probabilities, _smoothed(located[..., None], _LOCATED_SMOOTHING)[..., 0] * gradient

    return explain


def _input_gradient(model: keras.Model, pixels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    with tf.GradientTape() as tape:
        tape.watch(pixels)
        probabilities = tf.reshape(tf.cast(model(pixels, training=False), tf.float32), [-1])
    magnitude = tf.reduce_sum(tf.abs(tape.gradient(probabilities, pixels)), axis=-1, keepdims=True)
    fine = tf.image.resize(magnitude, [_FINE_GRID, _FINE_GRID], method="area")
    pooled = tf.image.resize(_smoothed(fine, _SMOOTHING), [GRID, GRID], method="area")
    return probabilities, _normalised(pooled[..., 0])
