"""A TensorFlow Model Analysis metric: video-level AUC, log loss and accuracy from face scores.

TFMA scores one example (one face crop) at a time; the literature also reports
video-level metrics, where a video's face scores are first turned into one
score by a rule of `video_scores`. The combiner keeps each video's label and
its scores per face track, then applies the rule, so the numbers sit beside
the frame metrics in the same evaluation and can carry blessing thresholds.
"""

from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from pipeline import config
from pipeline.evaluation import video_scores

VIDEO_METRICS_NAME = "video"
AUC_SUFFIX = "_auc"
LOG_LOSS_SUFFIX = "_log_loss"
ACCURACY_SUFFIX = "_accuracy"
COUNT_SUFFIX = "_count"
SUFFIXES = (AUC_SUFFIX, LOG_LOSS_SUFFIX, ACCURACY_SUFFIX, COUNT_SUFFIX)


class VideoLevelMetrics(metric_types.Metric):
    """`<name>_auc`, `<name>_log_loss`, `<name>_accuracy` and `<name>_count` over videos.

    `rule` is one of `video_scores.RULES`; `threshold` decides the verdict for
    the accuracy. Needs the `video_id` and `track_id` features.
    """

    def __init__(self, name: str = VIDEO_METRICS_NAME, rule: str = video_scores.RULE_MEAN, threshold: float = 0.5):
        video_scores.check_rule(rule)
        super().__init__(
            metric_util.merge_per_key_computations(_video_metrics), name=name, rule=rule, threshold=threshold
        )


metric_types.register_metric(VideoLevelMetrics)


def _video_metrics(
    name: str = VIDEO_METRICS_NAME,
    rule: str = video_scores.RULE_MEAN,
    threshold: float = 0.5,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    keys = {
        suffix: metric_types.MetricKey(
            name=name + suffix, model_name=model_name, output_name=output_name, example_weighted=example_weighted
        )
        for suffix in SUFFIXES
    }
    return [
        metric_types.MetricComputation(
            keys=list(keys.values()),
            preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[config.VIDEO_ID_KEY, config.TRACK_ID_KEY])],
            combiner=_VideoCombiner(keys, eval_config, model_name, output_name, rule, threshold),
        )
    ]


class _Video:
    __slots__ = ("label", "tracks")

    def __init__(self, label: float):
        self.label = label
        self.tracks: Dict[int, List[float]] = {}


def _first(values: np.ndarray):
    value = np.asarray(values).ravel()[0]
    return value.decode() if isinstance(value, bytes) else value


class _VideoCombiner(beam.CombineFn):
    def __init__(
        self,
        keys: Dict[str, metric_types.MetricKey],
        eval_config: Optional[config_pb2.EvalConfig],
        model_name: str,
        output_name: str,
        rule: str,
        threshold: float,
    ):
        self._keys = keys
        self._eval_config = eval_config
        self._model_name = model_name
        self._output_name = output_name
        self._rule = rule
        self._threshold = threshold

    def create_accumulator(self) -> Dict[str, _Video]:
        return {}

    def add_input(self, videos: Dict[str, _Video], element: metric_types.StandardMetricInputs) -> Dict[str, _Video]:
        video_id = _first(element.features[config.VIDEO_ID_KEY])
        track_id = int(_first(element.features[config.TRACK_ID_KEY]))
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._model_name, output_name=self._output_name
        ):
            video = videos.setdefault(video_id, _Video(float(label)))
            video.tracks.setdefault(track_id, []).append(float(prediction))
        return videos

    def merge_accumulators(self, accumulators: Iterable[Dict[str, _Video]]) -> Dict[str, _Video]:
        merged: Dict[str, _Video] = {}
        for videos in accumulators:
            for video_id, video in videos.items():
                target = merged.setdefault(video_id, _Video(video.label))
                for track_id, scores in video.tracks.items():
                    target.tracks.setdefault(track_id, []).extend(scores)
        return merged

    def extract_output(self, videos: Dict[str, _Video]) -> Dict[metric_types.MetricKey, float]:
        labels = np.array([v.label for v in videos.values()])
        scores = np.array([video_scores.video_score(v.tracks, self._rule) for v in videos.values()], np.float64)
        empty = labels.size == 0
        return {
            self._keys[AUC_SUFFIX]: video_scores.roc_auc(labels, scores),
            self._keys[LOG_LOSS_SUFFIX]: float("nan") if empty else video_scores.log_loss(scores, labels),
            self._keys[ACCURACY_SUFFIX]: float("nan")
            if empty
            else float(((scores > self._threshold) == labels).mean()),
            self._keys[COUNT_SUFFIX]: float(labels.size),
        }
