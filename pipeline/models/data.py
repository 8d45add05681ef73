"""Input functions: face and clip examples from gzipped TFRecords to batches of raw pixels.

`decode_images` is the one decoding step shared by training, the exported
serving signatures and the clients, so what the model sees in production is
what it saw in training.
"""

from typing import List, Optional, Tuple

import tensorflow as tf

from pipeline import config

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
    config.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    config.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}


def clip_features(clip_length: int) -> dict:
    return {
        config.CLIP_FRAMES_KEY: tf.io.FixedLenFeature([clip_length], tf.string),
        config.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }


def _records(file_patterns: List[str]) -> tf.data.Dataset:
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No example files match {file_patterns}")
    return tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)


def dataset(
    file_patterns: List[str],
    batch_size: int,
    training: bool,
    clip_length: Optional[int] = None,
    seed: int = 0,
    cache: bool = False,
) -> tf.data.Dataset:
    """(pixels, label) batches; face crops, or clips when `clip_length` is given.

    Training data is shuffled and repeated (epochs are counted in steps);
    evaluation data is read once in order. With `cache`, crops are decoded
    once and kept in memory as uint8 (a quarter of float32), so later epochs
    skip decoding: on a few CPU cores, decoding PNGs otherwise takes half the
    time of a small backbone's training step. Augmentation lives in the model,
    so cached pixels stay exactly what serving decodes.
    """
    features = clip_features(clip_length) if clip_length else FACE_FEATURES

    def parse(serialized: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, features)
        label = tf.cast(parsed[config.LABEL_KEY], tf.float32)
        if clip_length:
            return decode_clips(parsed[config.CLIP_FRAMES_KEY], clip_length), label
        return decode_images(parsed[config.IMAGE_KEY]), label

    elements = _records(file_patterns)
    if cache:
        elements = (
            elements.batch(256)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
            .map(lambda pixels, label: (tf.cast(tf.round(pixels), tf.uint8), label))
            .unbatch()
            .cache()
        )
    if training:
        elements = elements.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()
    if cache:
        batches = elements.batch(batch_size).map(lambda pixels, label: (tf.cast(pixels, tf.float32), label))
    else:
        batches = elements.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def label_counts(file_patterns: List[str]) -> Tuple[int, int]:
    """(real, fake) example counts, read from the label feature alone."""
    labels = (
        _records(file_patterns)
        .batch(1024)
        .map(lambda s: tf.io.parse_example(s, {config.LABEL_KEY: FACE_FEATURES[config.LABEL_KEY]})[config.LABEL_KEY])
    )
    fake = total = 0
    for batch in labels:
        fake += int(tf.reduce_sum(batch))
        total += int(tf.size(batch))
    return total - fake, fake


def class_weights(real: int, fake: int) -> dict:
    """Weights that make both classes count equally in the loss (fakes usually outnumber reals)."""
    if real == 0 or fake == 0:
        raise ValueError(f"Training data needs both classes; got {real} real and {fake} fake examples")
    total = real + fake
    return {0: total / (2.0 * real), 1: total / (2.0 * fake)}
