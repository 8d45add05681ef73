"""Input functions: face and clip examples from gzipped TFRecords to batches of raw pixels.

`decode_images` is the one decoding step shared by training, the exported
serving signatures and the clients, so what the model sees in production is
what it saw in training.
"""

import dataclasses
import json
from typing import Callable, Dict, List, Optional, Tuple

import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.models import self_blend

CROP_SIZE = 256


def decode_image(encoded: tf.Tensor, size: int = CROP_SIZE) -> tf.Tensor:
    """JPEG/PNG bytes -> float32 [size, size, 3] pixels in 0-255."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size])
    return tf.ensure_shape(image, [size, size, 3])


def decode_images(encoded: tf.Tensor, size: int = CROP_SIZE) -> tf.Tensor:
    """A batch of encoded images (string tensor [N]) -> float32 [N, size, size, 3]."""
    return tf.map_fn(
        lambda item: decode_image(item, size), encoded, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32)
    )


def decode_clips(encoded: tf.Tensor, clip_length: int, size: int = CROP_SIZE) -> tf.Tensor:
    """Clips of encoded frames (string tensor [N, T]) -> float32 [N, T, size, size, 3]."""
    frames = decode_images(tf.reshape(encoded, [-1]), size)
    return tf.reshape(frames, [-1, clip_length, size, size, 3])


FACE_FEATURES = {
    contract.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    contract.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}
_MANIPULATION_FEATURE = tf.io.FixedLenFeature([], tf.string, default_value=contract.UNKNOWN)


def clip_features(clip_length: int) -> dict:
    return {
        contract.CLIP_FRAMES_KEY: tf.io.FixedLenFeature([clip_length], tf.string),
        contract.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }


def records(file_patterns: List[str]) -> tf.data.Dataset:
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No example files match {file_patterns}")
    return tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class FakeSource:
    """Which fakes training sees: the dataset's (minus `held_out` manipulations), self-blends of reals, or both."""

    kind: str = contract.FAKE_SOURCE_DATASET
    held_out: Tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in contract.FAKE_SOURCES:
            raise ValueError(f"Invalid fake source {self.kind!r}: expected one of {list(contract.FAKE_SOURCES)}")
        if not all(isinstance(kind, str) and kind for kind in self.held_out):
            raise ValueError(f"Invalid held-out manipulations {self.held_out!r}: expected manipulation kinds")
        if {contract.ORIGINAL_MANIPULATION, contract.ALL_MANIPULATIONS} & set(self.held_out):
            raise ValueError(
                f"Invalid held-out manipulations {self.held_out!r}: "
                f"{contract.ORIGINAL_MANIPULATION!r} and {contract.ALL_MANIPULATIONS!r} are not manipulation kinds"
            )

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "held_out": list(self.held_out), "seed": self.seed})

    @classmethod
    def from_json(cls, text: str) -> "FakeSource":
        values = json.loads(text) if text else {}
        return cls(
            values.get("kind", contract.FAKE_SOURCE_DATASET), tuple(values.get("held_out", ())), values.get("seed", 0)
        )

    @property
    def self_blends(self) -> bool:
        return self.kind != contract.FAKE_SOURCE_DATASET

    @property
    def dataset_fakes(self) -> bool:
        return self.kind != contract.FAKE_SOURCE_SELF_BLENDED


def _parser(clip_length: Optional[int], source: FakeSource, size: int) -> Callable[[tf.Tensor], Dict[str, tf.Tensor]]:
    """Batched serialized examples -> dict of uint8 pixels, label, manipulation (and landmarks for self-blends)."""
    features = dict(clip_features(clip_length) if clip_length else FACE_FEATURES)
    features[contract.MANIPULATION_KEY] = _MANIPULATION_FEATURE
    if source.self_blends:
        values = contract.NUM_LANDMARKS * 2 * (clip_length or 1)
        features[contract.FACE_LANDMARKS_KEY] = tf.io.FixedLenFeature([values], tf.float32)

    def parse(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, features)
        if clip_length:
            pixels = decode_clips(parsed[contract.CLIP_FRAMES_KEY], clip_length, size)
        else:
            pixels = decode_images(parsed[contract.IMAGE_KEY], size)
        element = {
            "pixels": tf.cast(tf.round(pixels), tf.uint8),
            "label": parsed[contract.LABEL_KEY],
            "manipulation": parsed[contract.MANIPULATION_KEY],
        }
        if source.self_blends:
            shape = [-1, clip_length, contract.NUM_LANDMARKS * 2] if clip_length else [-1, contract.NUM_LANDMARKS * 2]
            element["landmarks"] = tf.reshape(parsed[contract.FACE_LANDMARKS_KEY], shape)
        return element

    return parse


def _kept(element: Dict[str, tf.Tensor], source: FakeSource) -> tf.Tensor:
    """Reals always; dataset fakes unless self-blends are the only fakes or their manipulation is held out."""
    real = tf.equal(element["label"], contract.REAL_LABEL)
    if not source.dataset_fakes:
        return real
    held_out = tf.reduce_any(tf.equal(element["manipulation"], tf.constant(list(source.held_out) or [""])))
    return tf.logical_or(real, tf.logical_not(held_out))


# Faces blended together: a cross-blend's partner is another real face of the same group.
BLEND_GROUP = 8


def _with_self_blends(elements: tf.data.Dataset, source: FakeSource) -> tf.data.Dataset:
    """Each real face followed by its pseudo-fake; a dataset fake (with `both`) passes through post-processed.

    Faces are blended in groups of `BLEND_GROUP` (partners for cross-blends),
    and the n-th group is seeded by (seed, n): the same run draws the same
    pseudo-fakes.
    """

    def pairs(index: tf.Tensor, group: Dict[str, tf.Tensor]):  # noqa: ANN202 - (pixels, labels, keep)
        pixels = group["pixels"]
        seed = tf.stack([tf.constant(source.seed, tf.int64), index])
        is_real = tf.equal(group["label"], contract.REAL_LABEL)
        images = tf.numpy_function(
            self_blend.blend_batch, [pixels, group["landmarks"], is_real, seed], tf.uint8, stateful=False
        )
        images = tf.ensure_shape(images, [None, 2] + pixels.shape.as_list()[1:])
        labels = tf.where(is_real[:, None], tf.constant([[0, 1]], tf.int64), tf.constant([[1, 1]], tf.int64))
        keep = tf.logical_or(is_real[:, None], tf.constant([[True, False]]))
        return images, labels, keep

    return (
        elements.batch(BLEND_GROUP)
        .enumerate()
        .map(pairs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(4)
        .unbatch()
        .unbatch()
        .filter(lambda images, labels, keep: keep)
        .map(lambda images, labels, keep: (images, labels))
    )


def _elements(file_patterns: List[str], clip_length: Optional[int], source: FakeSource, size: int) -> tf.data.Dataset:
    """The examples training keeps (`_kept`), parsed to uint8 pixels, label (and landmarks for self-blends)."""
    return (
        records(file_patterns)
        .batch(256)
        .map(_parser(clip_length, source, size), num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .filter(lambda element: _kept(element, source))
        .map(lambda element: {k: v for k, v in element.items() if k != "manipulation"})
    )


def dataset(
    file_patterns: List[str],
    batch_size: int,
    training: bool,
    clip_length: Optional[int] = None,
    seed: int = 0,
    cache: bool = False,
    fake_source: Optional[FakeSource] = None,
    size: int = CROP_SIZE,
) -> tf.data.Dataset:
    """(pixels, label) batches; face crops, or clips when `clip_length` is given.

    Training data is shuffled and repeated (epochs are counted in steps);
    evaluation data is read once in order. With `cache`, crops are decoded
    once and kept in memory as uint8, so later epochs skip decoding: on a few
    CPU cores, decoding PNGs otherwise takes half the time of a small
    backbone's training step. `fake_source` decides the fakes: with
    self-blending each real face is followed by its own blend (made fresh
    every epoch in training, once for evaluation). Augmentation lives in the
    model, so cached pixels stay what serving decodes. `size`: decode straight
    to the model's input size (what its own bilinear resize of a `CROP_SIZE`
    decode gives), so caching and blending handle no more pixels than the
    model sees.
    """
    source = fake_source or FakeSource()
    elements = _elements(file_patterns, clip_length, source, size)
    blended_once = source.self_blends and not training
    if cache and not blended_once:
        elements = elements.cache()
    if training:
        elements = elements.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()
    if source.self_blends:
        elements = _with_self_blends(elements, dataclasses.replace(source, seed=seed))
        if cache and blended_once:
            elements = elements.cache()
    else:
        elements = elements.map(lambda element: (element["pixels"], element["label"]))
    batches = elements.batch(batch_size).map(
        lambda pixels, label: (tf.cast(pixels, tf.float32), tf.cast(label, tf.float32))
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def locator_dataset(
    file_patterns: List[str], batch_size: int, training: bool, grid: int, seed: int = 0, size: int = CROP_SIZE
) -> tf.data.Dataset:
    """(pixels, map) batches for the locator: every real face, then its pseudo-fake pasted through a whole-face or
    part-of-face region, with what of each of `grid` x `grid` cells was pasted (`self_blend.located_batch`).

    Only real faces are read: a dataset fake's changed region is unknown.
    Crops are decoded once and kept as uint8; pseudo-fakes are drawn afresh
    every epoch in training and once, seeded, for validation.
    """
    reals = _elements(file_patterns, None, FakeSource(contract.FAKE_SOURCE_SELF_BLENDED), size).cache()
    if training:
        reals = reals.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()

    def located(index: tf.Tensor, group: Dict[str, tf.Tensor]):  # noqa: ANN202 - (pixels, maps)
        seed_pair = tf.stack([tf.constant(seed, tf.int64), index])
        pixels, maps = tf.numpy_function(
            self_blend.located_batch,
            [group["pixels"], group["landmarks"], seed_pair, grid],
            [tf.uint8, tf.float32],
            stateful=False,
        )
        pixels = tf.ensure_shape(pixels, [None, 2, size, size, 3])
        return pixels, tf.ensure_shape(maps, [None, 2, grid, grid])

    pairs = reals.batch(BLEND_GROUP).enumerate().map(located, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    examples = pairs.unbatch().unbatch()
    if not training:
        examples = examples.cache()
    batches = examples.batch(batch_size).map(lambda pixels, maps: (tf.cast(pixels, tf.float32), maps))
    return batches.prefetch(tf.data.AUTOTUNE)


def label_counts(file_patterns: List[str], fake_source: Optional[FakeSource] = None) -> Tuple[int, int]:
    """(real, fake) examples as training will see them: self-blends count one fake per real face."""
    source = fake_source or FakeSource()
    features = {contract.LABEL_KEY: FACE_FEATURES[contract.LABEL_KEY], contract.MANIPULATION_KEY: _MANIPULATION_FEATURE}
    elements = (
        records(file_patterns)
        .batch(1024)
        .map(lambda s: tf.io.parse_example(s, features))
        .unbatch()
        .map(lambda e: {"label": e[contract.LABEL_KEY], "manipulation": e[contract.MANIPULATION_KEY]})
        .filter(lambda element: _kept(element, source))
        .map(lambda element: element["label"])
        .batch(4096)
    )
    fake = total = 0
    for batch in elements:
        fake += int(tf.reduce_sum(batch))
        total += int(tf.size(batch))
    real = total - fake
    return real, fake + (real if source.self_blends else 0)


def class_weights(real: int, fake: int) -> dict:
    """Weights that make both classes count equally in the loss (fakes usually outnumber reals)."""
    if real == 0 or fake == 0:
        raise ValueError(f"Training data needs both classes; got {real} real and {fake} fake examples")
    total = real + fake
    return {0: total / (2.0 * real), 1: total / (2.0 * fake)}
