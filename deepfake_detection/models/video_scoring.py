"""A trained model's video scores on a split of examples, and the operating point fitted on them.

The Trainer and the EnsembleTrainer call `fit_on_examples` on the eval split
after training: the model scores each face, faces are grouped by video and
person track, a video's score is its most fake person's (`video_scores`),
and the operating point is fitted on the real and fake videos. The model
card scores the test split the same way to report what the point achieves.
"""

import dataclasses
import logging
from typing import Callable, Dict, List, Sequence

import numpy as np
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.evaluation import operating_point, video_scores
from deepfake_detection.models import data

Scorer = Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass
class ScoredVideo:
    """One video's label, provenance and its faces' scores per person track."""

    video_id: str
    label: int
    manipulation: str
    compression: str
    tracks: Dict[int, List[float]] = dataclasses.field(default_factory=dict)

    def score(self, rule: str = video_scores.RULE_MEAN) -> float:
        return video_scores.video_score(self.tracks, rule)


def _features(clip_length: int) -> dict:
    context = {
        contract.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        contract.VIDEO_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        contract.TRACK_ID_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        contract.MANIPULATION_KEY: tf.io.FixedLenFeature([], tf.string, default_value=contract.UNKNOWN),
        contract.COMPRESSION_KEY: tf.io.FixedLenFeature([], tf.string, default_value=contract.UNKNOWN),
    }
    if clip_length:
        return {**context, contract.CLIP_FRAMES_KEY: tf.io.FixedLenFeature([clip_length], tf.string)}
    return {**context, contract.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}


def score_videos(
    scorer: Scorer, file_patterns: Sequence[str], clip_length: int = 0, batch_size: int = 64
) -> List[ScoredVideo]:
    """Every video of the examples with its faces' scores; `scorer` maps decoded pixels to probabilities."""
    records = data.records(list(file_patterns)).batch(batch_size)
    videos: Dict[str, ScoredVideo] = {}
    for serialized in records:
        parsed = tf.io.parse_example(serialized, _features(clip_length))
        if clip_length:
            pixels = data.decode_clips(parsed[contract.CLIP_FRAMES_KEY], clip_length)
        else:
            pixels = data.decode_images(parsed[contract.IMAGE_KEY])
        scores = np.asarray(scorer(pixels), np.float64).ravel()
        columns = zip(
            parsed[contract.VIDEO_ID_KEY].numpy(),
            parsed[contract.TRACK_ID_KEY].numpy(),
            parsed[contract.LABEL_KEY].numpy(),
            parsed[contract.MANIPULATION_KEY].numpy(),
            parsed[contract.COMPRESSION_KEY].numpy(),
            scores,
            strict=True,
        )
        for video_id, track_id, label, manipulation, compression, score in columns:
            key = video_id.decode()
            video = videos.get(key) or ScoredVideo(key, int(label), manipulation.decode(), compression.decode())
            videos[key] = video
            video.tracks.setdefault(int(track_id), []).append(float(score))
    return list(videos.values())


def keras_scorer(model: tf.keras.Model) -> Scorer:
    """A Keras model's fake probabilities on decoded pixels, in inference mode."""

    def score(pixels: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(model(pixels, training=False), tf.float32), [-1])

    return score


def fit_for_model(
    model: tf.keras.Model,
    file_patterns: Sequence[str],
    clip_length: int = 0,
    rule: str = video_scores.RULE_MEAN,
    false_alarm_budget: float = operating_point.DEFAULT_FALSE_ALARM_BUDGET,
    miss_budget: float = operating_point.DEFAULT_MISS_BUDGET,
) -> operating_point.FittedPoint:
    """The operating point of a trained Keras model, fitted on the videos of `file_patterns` (the eval split)."""
    videos = score_videos(keras_scorer(model), file_patterns, clip_length)
    fitted = fit_on_videos(videos, rule, false_alarm_budget, miss_budget)
    logging.info("Operating point on %d videos: %s (%s)", len(videos), fitted.point, fitted.notes())
    return fitted


def fit_on_videos(
    videos: Sequence[ScoredVideo],
    rule: str = video_scores.RULE_MEAN,
    false_alarm_budget: float = operating_point.DEFAULT_FALSE_ALARM_BUDGET,
    miss_budget: float = operating_point.DEFAULT_MISS_BUDGET,
) -> operating_point.FittedPoint:
    """The operating point fitted on scored videos' raw scores, reals and fakes apart."""
    reals = [v.score(rule) for v in videos if v.label == 0]
    fakes = [v.score(rule) for v in videos if v.label == 1]
    return operating_point.fit_operating_point(reals, fakes, false_alarm_budget, miss_budget)
