"""The TFMA EvalConfig of every model: sliced frame and video metrics, and the blessing thresholds.

A model is blessed when its AUC reaches `min_auc` (overall, and on each slice
named in `slice_min_auc`) and, once a blessed model of the same backbone
exists, when its AUC is not lower than that baseline's by more than
`max_auc_drop`. TFX's Evaluator skips the change threshold on the first run.
"""

import dataclasses
import json
from typing import Any, List, Mapping, Optional

import tensorflow_model_analysis as tfma

from pipeline import config
from pipeline.evaluation import video_metrics, video_scores

CANDIDATE = "candidate"
BASELINE = "baseline"
MODEL_TYPE = "tf_generic"  # a Keras 3 export archive, called through its signatures
SLICE_FEATURES = (config.MANIPULATION_KEY, config.DATASET_KEY, config.COMPRESSION_KEY, config.FACE_SIZE_BUCKET_KEY)
CLIP_SLICE_FEATURES = (config.MANIPULATION_KEY, config.DATASET_KEY, config.COMPRESSION_KEY)
AUC_METRIC = "auc"


@dataclasses.dataclass(frozen=True)
class BlessingConfig:
    """When a model is good enough to push; every field is a pipeline setting."""

    min_auc: float = 0.7
    max_auc_drop: float = 0.0
    slice_min_auc: Mapping[str, float] = dataclasses.field(default_factory=dict)
    min_video_auc: Optional[float] = None
    decision_threshold: float = 0.5
    video_rule: str = video_scores.RULE_MEAN

    def __post_init__(self) -> None:
        video_scores.check_rule(self.video_rule)
        for name in ("min_auc", "decision_threshold"):
            _require_probability(name, getattr(self, name))
        if self.min_video_auc is not None:
            _require_probability("min_video_auc", self.min_video_auc)
        if not 0.0 <= self.max_auc_drop <= 1.0:
            raise ValueError(f"Invalid blessing setting max_auc_drop={self.max_auc_drop!r}: expected within [0, 1]")
        for feature, value in self.slice_min_auc.items():
            if feature not in SLICE_FEATURES:
                raise ValueError(f"slice_min_auc names {feature!r}; slices are {list(SLICE_FEATURES)}")
            _require_probability(f"slice_min_auc[{feature!r}]", value)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BlessingConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown blessing setting(s) {unknown}; known settings are {sorted(known)}")
        return cls(**values)


def _require_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Invalid blessing setting {name}={value!r}: expected within [0, 1]")


def _auc_threshold(lower_bound: float, max_drop: Optional[float]) -> tfma.MetricThreshold:
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}))
    if max_drop is not None:
        threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_drop - 1e-10}
            )
        )
    return threshold


def _auc_config(blessing: BlessingConfig) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name="AUC", threshold=_auc_threshold(blessing.min_auc, blessing.max_auc_drop))
    for feature, lower_bound in sorted(blessing.slice_min_auc.items()):
        metric.per_slice_thresholds.append(
            tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec(feature_keys=[feature])],
                threshold=_auc_threshold(lower_bound, None),
            )
        )
    return metric


def _video_config(blessing: BlessingConfig) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(
        class_name=video_metrics.VideoLevelMetrics.__name__,
        module=video_metrics.__name__,
        config=json.dumps({"rule": blessing.video_rule, "threshold": blessing.decision_threshold}),
    )
    if blessing.min_video_auc is not None:
        metric.threshold.CopyFrom(_auc_threshold(blessing.min_video_auc, None))
    return metric


def _metric_configs(blessing: BlessingConfig) -> List[tfma.MetricConfig]:
    at_threshold = json.dumps({"thresholds": [blessing.decision_threshold]})
    thresholded = ("BinaryAccuracy", "Precision", "Recall", "F1Score", "ConfusionMatrixAtThresholds")
    return [
        tfma.MetricConfig(class_name="ExampleCount"),
        _auc_config(blessing),
        *(tfma.MetricConfig(class_name=name, config=at_threshold) for name in thresholded),
        *(tfma.MetricConfig(class_name=name) for name in ("BinaryCrossEntropy", "Calibration", "CalibrationPlot")),
        _video_config(blessing),
    ]


def build_eval_config(blessing: BlessingConfig, temporal: bool = False) -> tfma.EvalConfig:
    """Candidate against the latest blessed baseline, on the `serving_tf_example` signature."""
    model_specs = [
        tfma.ModelSpec(
            name=name,
            signature_name=config.SERVING_TF_EXAMPLE,
            label_key=config.LABEL_KEY,
            prediction_key=config.OUTPUT_KEY,
            model_type=MODEL_TYPE,
            is_baseline=name == BASELINE,
        )
        for name in (CANDIDATE, BASELINE)
    ]
    features = CLIP_SLICE_FEATURES if temporal else SLICE_FEATURES
    return tfma.EvalConfig(
        model_specs=model_specs,
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=[f]) for f in features)],
        metrics_specs=[tfma.MetricsSpec(metrics=_metric_configs(blessing))],
    )
