"""A TensorFlow Model Analysis metric: video-level AUC, log loss and accuracy from face scores.

TFMA scores one example (one face crop) at a time; the literature also reports
video-level metrics, where a video's face scores are first turned into one
score by a rule of `video_scores`. The combiner keeps each video's label and
its scores per face track, then applies the rule, so the numbers sit beside
the frame metrics in the same evaluation and can carry blessing thresholds.

`CrossGeneratorVideoMetric` groups the same video scores by manipulation kind
and compression level to measure the AUC on kinds the model never trained on
(see `cross_generator`).
"""

from typing import Dict, Iterable, List, Optional, Sequence

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from deepfake_detection import contract
from deepfake_detection.evaluation import cross_generator, frame_metrics, video_scores

VIDEO_METRICS_NAME = "video"
AUC = "auc"
LOG_LOSS = "log_loss"
ACCURACY = "accuracy"
COUNT = "count"
STATISTICS = (AUC, LOG_LOSS, ACCURACY, COUNT)


def metric_name(statistic: str) -> str:
    """`video_auc`, `video_log_loss`, `video_accuracy`, `video_count`."""
    return f"{VIDEO_METRICS_NAME}_{statistic}"


class VideoLevelMetric(metric_types.Metric):
    """One video-level statistic (`auc`, `log_loss`, `accuracy` or `count`) under the name `video_<statistic>`.

    One metric per statistic, so a blessing threshold can name each; `rule` is
    one of `video_scores.RULES` and `threshold` decides the verdict for the
    accuracy. Needs the `video_id` and `track_id` features.
    """

    def __init__(
        self,
        statistic: str = AUC,
        rule: str = video_scores.RULE_MEAN,
        threshold: float = 0.5,
        name: Optional[str] = None,
    ):
        if statistic not in STATISTICS:
            raise ValueError(f"Unknown video statistic {statistic!r}; expected one of {list(STATISTICS)}")
        video_scores.check_rule(rule)
        super().__init__(
            metric_util.merge_per_key_computations(_video_metric),
            name=name or metric_name(statistic),
            statistic=statistic,
            rule=rule,
            threshold=threshold,
        )


metric_types.register_metric(VideoLevelMetric)


class CrossGeneratorVideoMetric(metric_types.Metric):
    """Video AUCs on unseen manipulation kinds: `video_auc_unseen`, per kind and per compression level.

    `unseen_manipulations` lists the kinds the model never trained on
    (`cross_generator.EVERY_KIND_UNSEEN` for all); names follow
    `cross_generator.metric_name`. Needs the `video_id`, `track_id`,
    `manipulation` and `compression` features.
    """

    def __init__(
        self,
        unseen_manipulations: Sequence[str] = cross_generator.EVERY_KIND_UNSEEN,
        rule: str = video_scores.RULE_MEAN,
    ):
        video_scores.check_rule(rule)
        super().__init__(
            metric_util.merge_per_key_computations(_cross_generator_metric),
            name=cross_generator.UNSEEN_AUC,
            unseen_manipulations=list(unseen_manipulations),
            rule=rule,
        )


metric_types.register_metric(CrossGeneratorVideoMetric)


def _video_metric(
    name: str,
    statistic: str = AUC,
    rule: str = video_scores.RULE_MEAN,
    threshold: float = 0.5,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
    )
    combiner = _VideoCombiner(key, statistic, eval_config, model_name, output_name, rule, threshold)
    return _computations(key, [contract.VIDEO_ID_KEY, contract.TRACK_ID_KEY], combiner)


def _computations(
    key: metric_types.MetricKey, features: Sequence[str], combiner: beam.CombineFn
) -> metric_types.MetricComputations:
    """One computation of `key` by `combiner` over the examples' `features`."""
    return [
        metric_types.MetricComputation(
            keys=[key],
            preprocessors=[metric_types.FeaturePreprocessor(feature_keys=list(features))],
            combiner=combiner,
        )
    ]


def _cross_generator_metric(
    name: str,
    unseen_manipulations: Sequence[str] = cross_generator.EVERY_KIND_UNSEEN,
    rule: str = video_scores.RULE_MEAN,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
    )
    features = [contract.VIDEO_ID_KEY, contract.TRACK_ID_KEY, contract.MANIPULATION_KEY, contract.COMPRESSION_KEY]
    combiner = _CrossGeneratorCombiner(key, eval_config, model_name, output_name, rule, unseen_manipulations)
    return _computations(key, features, combiner)


class _Video:
    __slots__ = ("label", "tracks", "manipulation", "compression")

    def __init__(self, label: float, manipulation: Optional[str] = None, compression: Optional[str] = None):
        self.label = label
        self.manipulation = manipulation
        self.compression = compression
        self.tracks: Dict[int, List[float]] = {}


def _first(values: np.ndarray):
    value = np.asarray(values).ravel()[0]
    return value.decode() if isinstance(value, bytes) else value


def _optional(element: metric_types.StandardMetricInputs, key: str) -> Optional[str]:
    """A string feature the metric's preprocessor kept; None when it did not ask for it."""
    return str(_first(element.features[key])) if key in element.features else None


class _VideoAccumulator(frame_metrics.OutputCombiner):
    """Gathers each video's label, provenance and face scores per track; subclasses turn them into metrics."""

    def __init__(
        self,
        key: metric_types.MetricKey,
        eval_config: Optional[config_pb2.EvalConfig],
        model_name: str,
        output_name: str,
        rule: str,
    ):
        super().__init__(key, eval_config, model_name, output_name)
        self._rule = rule

    def create_accumulator(self) -> Dict[str, _Video]:
        return {}

    def add_input(self, videos: Dict[str, _Video], element: metric_types.StandardMetricInputs) -> Dict[str, _Video]:
        video_id = _first(element.features[contract.VIDEO_ID_KEY])
        track_id = int(_first(element.features[contract.TRACK_ID_KEY]))
        for label, prediction, _ in self.labelled(element):
            video = videos.get(video_id)
            if video is None:
                video = videos[video_id] = _Video(
                    label,
                    _optional(element, contract.MANIPULATION_KEY),
                    _optional(element, contract.COMPRESSION_KEY),
                )
            video.tracks.setdefault(track_id, []).append(prediction)
        return videos

    def merge_accumulators(self, accumulators: Iterable[Dict[str, _Video]]) -> Dict[str, _Video]:
        merged: Dict[str, _Video] = {}
        for videos in accumulators:
            for video_id, video in videos.items():
                target = merged.setdefault(video_id, _Video(video.label, video.manipulation, video.compression))
                for track_id, scores in video.tracks.items():
                    target.tracks.setdefault(track_id, []).extend(scores)
        return merged


class _VideoCombiner(_VideoAccumulator):
    def __init__(
        self,
        key: metric_types.MetricKey,
        statistic: str,
        eval_config: Optional[config_pb2.EvalConfig],
        model_name: str,
        output_name: str,
        rule: str,
        threshold: float,
    ):
        super().__init__(key, eval_config, model_name, output_name, rule)
        self._statistic = statistic
        self._threshold = threshold

    def extract_output(self, videos: Dict[str, _Video]) -> Dict[metric_types.MetricKey, float]:
        labels = np.array([v.label for v in videos.values()])
        scores = np.array([video_scores.video_score(v.tracks, self._rule) for v in videos.values()], np.float64)
        if self._statistic == COUNT:
            value = float(labels.size)
        elif labels.size == 0:
            value = float("nan")
        elif self._statistic == AUC:
            value = video_scores.roc_auc(labels, scores)
        elif self._statistic == LOG_LOSS:
            value = video_scores.log_loss(scores, labels)
        else:
            value = float(((scores >= self._threshold) == labels).mean())
        return {self._key: value}


class _CrossGeneratorCombiner(_VideoAccumulator):
    def __init__(
        self,
        key: metric_types.MetricKey,
        eval_config: Optional[config_pb2.EvalConfig],
        model_name: str,
        output_name: str,
        rule: str,
        unseen_manipulations: Sequence[str],
    ):
        super().__init__(key, eval_config, model_name, output_name, rule)
        self._unseen = tuple(unseen_manipulations)

    def extract_output(self, videos: Dict[str, _Video]) -> Dict[metric_types.MetricKey, float]:
        outcomes = [
            cross_generator.VideoOutcome(
                label=int(round(v.label)),
                score=video_scores.video_score(v.tracks, self._rule),
                manipulation=v.manipulation or contract.UNKNOWN,
                compression=v.compression or contract.UNKNOWN,
            )
            for v in videos.values()
        ]
        return {
            self._key._replace(name=name): value
            for group in cross_generator.cross_generator_aucs(outcomes, self._unseen)
            for name, value in group.metrics().items()
        }
