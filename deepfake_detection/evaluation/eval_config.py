"""The TFMA EvalConfig of every model: sliced frame and video metrics, and the blessing thresholds.

A model is blessed when its overall AUC reaches `min_auc`, when every slice
threshold of `slice_thresholds` holds, and, once a blessed model of the same
backbone exists, when its AUC is not lower than that baseline's by more than
`max_auc_drop`, overall and on every span in the evaluated window (the
forgetting guard: a model retrained on new videos must not forget the
earlier spans' test data; examples carry their span as `contract.SPAN_FEATURE`).
TFX's Evaluator skips the change thresholds on the first run.
With `min_unseen_video_auc`, its video AUC on manipulation kinds it never
trained on (`video_auc_unseen`, see `cross_generator`) must reach that bound too.
Slices by manipulation hold one class only (fakes of one method, or the
originals), so their AUC is undefined: threshold their accuracy or recall.
"""

import dataclasses
import json
from typing import List, Mapping, Optional, Sequence

import tensorflow_model_analysis as tfma

from deepfake_detection import contract
from deepfake_detection.evaluation import cross_generator, frame_metrics, video_metrics, video_scores

CANDIDATE = "candidate"
BASELINE = "baseline"
MODEL_TYPE = "tf_generic"  # a Keras 3 export archive, called through its signatures
SLICE_FEATURES = (
    contract.MANIPULATION_KEY,
    contract.DATASET_KEY,
    contract.COMPRESSION_KEY,
    contract.FACE_SIZE_BUCKET_KEY,
)
CLIP_SLICE_FEATURES = (contract.MANIPULATION_KEY, contract.DATASET_KEY, contract.COMPRESSION_KEY)
SPAN_SLICE = tfma.SlicingSpec(feature_keys=[contract.SPAN_FEATURE])
STRICT = 1e-10  # TFMA's change threshold passes only strictly above its bound; this makes "no drop" allow a tie
# Metrics a slice threshold may name: {TFMA metric name: class name}.
SLICE_METRICS = {
    "auc": "AUC",
    "binary_accuracy": "BinaryAccuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1_score": "F1Score",
}


@dataclasses.dataclass(frozen=True)
class BlessingConfig:
    """When a model is good enough to push; every field is a pipeline setting."""

    min_auc: float = 0.7
    max_auc_drop: float = 0.0
    slice_thresholds: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    min_video_auc: Optional[float] = None
    min_unseen_video_auc: Optional[float] = None
    decision_threshold: float = 0.5
    video_rule: str = video_scores.RULE_MEAN

    def __post_init__(self) -> None:
        video_scores.check_rule(self.video_rule)
        for name in ("min_auc", "max_auc_drop", "decision_threshold"):
            _require_probability(name, getattr(self, name))
        for name in ("min_video_auc", "min_unseen_video_auc"):
            if getattr(self, name) is not None:
                _require_probability(name, getattr(self, name))
        for feature, bounds in self.slice_thresholds.items():
            if feature not in SLICE_FEATURES:
                raise ValueError(f"slice_thresholds names {feature!r}; slices are {list(SLICE_FEATURES)}")
            for metric, value in bounds.items():
                if metric not in SLICE_METRICS:
                    raise ValueError(
                        f"slice_thresholds[{feature!r}] names {metric!r}; expected one of {list(SLICE_METRICS)}"
                    )
                _require_probability(f"slice_thresholds[{feature!r}][{metric!r}]", value)


def _require_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Invalid blessing setting {name}={value!r}: expected within [0, 1]")


def _lower_bound(value: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}))


def _overall(threshold: tfma.MetricThreshold) -> tfma.PerSliceMetricThreshold:
    """A threshold on the overall slice only (a plain `threshold` would apply to every slice)."""
    return tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)


def _allowed_change(max_auc_drop: float) -> float:
    return -float(max_auc_drop) - STRICT


def _no_drop_beyond(max_auc_drop: float) -> tfma.GenericChangeThreshold:
    return tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": _allowed_change(max_auc_drop)}
    )


def _auc_thresholds(blessing: BlessingConfig) -> List[tfma.PerSliceMetricThreshold]:
    """The overall AUC's lower bound and allowed drop, and the forgetting guard: the same drop on each span."""
    overall = _lower_bound(blessing.min_auc)
    overall.change_threshold.CopyFrom(_no_drop_beyond(blessing.max_auc_drop))
    per_span = tfma.MetricThreshold(change_threshold=_no_drop_beyond(blessing.max_auc_drop))
    return [_overall(overall), tfma.PerSliceMetricThreshold(slicing_specs=[SPAN_SLICE], threshold=per_span)]


def override_auc_threshold(
    eval_config: tfma.EvalConfig, min_auc: Optional[float] = None, max_auc_drop: Optional[float] = None
) -> None:
    """Sets the overall AUC bound and the allowed drop against the baseline, overall and per span, in place
    (per-run settings)."""
    for name, value in (("min_auc", min_auc), ("max_auc_drop", max_auc_drop)):
        if value is not None:
            _require_probability(name, float(value))
    found = False
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name != "AUC":
                continue
            for per_slice in metric.per_slice_thresholds:
                slices = list(per_slice.slicing_specs)
                if slices not in ([tfma.SlicingSpec()], [SPAN_SLICE]):
                    continue
                found = found or slices == [tfma.SlicingSpec()]
                if min_auc is not None and per_slice.threshold.HasField("value_threshold"):
                    per_slice.threshold.value_threshold.lower_bound.value = float(min_auc)
                if max_auc_drop is not None:
                    per_slice.threshold.change_threshold.absolute.value = _allowed_change(max_auc_drop)
    if not found:
        raise ValueError("The EvalConfig has no overall AUC threshold to override")


def _add_slice_thresholds(metrics: Mapping[str, tfma.MetricConfig], blessing: BlessingConfig) -> None:
    for feature, bounds in sorted(blessing.slice_thresholds.items()):
        for metric, value in sorted(bounds.items()):
            metrics[SLICE_METRICS[metric]].per_slice_thresholds.append(
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec(feature_keys=[feature])], threshold=_lower_bound(value)
                )
            )


def _video_configs(blessing: BlessingConfig) -> List[tfma.MetricConfig]:
    configs = []
    for statistic in video_metrics.STATISTICS:
        metric = tfma.MetricConfig(
            class_name=video_metrics.VideoLevelMetric.__name__,
            module=video_metrics.__name__,
            config=json.dumps(
                {"statistic": statistic, "rule": blessing.video_rule, "threshold": blessing.decision_threshold}
            ),
        )
        if statistic == video_metrics.AUC and blessing.min_video_auc is not None:
            metric.per_slice_thresholds.append(_overall(_lower_bound(blessing.min_video_auc)))
        configs.append(metric)
    return configs


def _cross_generator_config(blessing: BlessingConfig, unseen_manipulations: Sequence[str]) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(
        class_name=video_metrics.CrossGeneratorVideoMetric.__name__,
        module=video_metrics.__name__,
        config=json.dumps({"unseen_manipulations": list(unseen_manipulations), "rule": blessing.video_rule}),
    )
    if blessing.min_unseen_video_auc is not None:
        if not unseen_manipulations:
            raise ValueError(
                f"min_unseen_video_auc={blessing.min_unseen_video_auc!r} bounds the AUC on manipulation kinds "
                "the model never trained on, but this model trains on every kind (fake_source 'dataset' or 'both' "
                "with no held_out_manipulations): hold kinds out, train on self-blended fakes, or drop the bound"
            )
        metric.per_slice_thresholds.append(_overall(_lower_bound(blessing.min_unseen_video_auc)))
    return metric


def _metric_configs(blessing: BlessingConfig) -> List[tfma.MetricConfig]:
    threshold = blessing.decision_threshold
    metrics = {
        "ExampleCount": tfma.MetricConfig(class_name="ExampleCount"),
        "AUC": tfma.MetricConfig(class_name="AUC", per_slice_thresholds=_auc_thresholds(blessing)),
        "BinaryAccuracy": tfma.MetricConfig(class_name="BinaryAccuracy", config=json.dumps({"threshold": threshold})),
        **{
            name: tfma.MetricConfig(class_name=name, config=json.dumps({"thresholds": threshold}))
            for name in ("Precision", "Recall", "F1Score")
        },
        "ConfusionMatrixAtThresholds": tfma.MetricConfig(
            class_name="ConfusionMatrixAtThresholds", config=json.dumps({"thresholds": [threshold]})
        ),
        "FrameLogLoss": tfma.MetricConfig(
            class_name=frame_metrics.FrameLogLoss.__name__, module=frame_metrics.__name__
        ),
        **{name: tfma.MetricConfig(class_name=name) for name in ("Calibration", "CalibrationPlot")},
    }
    _add_slice_thresholds(metrics, blessing)
    return [*metrics.values(), *_video_configs(blessing)]


def build_eval_config(
    blessing: BlessingConfig,
    temporal: bool = False,
    unseen_manipulations: Sequence[str] = cross_generator.EVERY_KIND_UNSEEN,
) -> tfma.EvalConfig:
    """Candidate against the latest blessed baseline, on the `serving_tf_example` signature.

    `unseen_manipulations` are the kinds the model never trained on
    (`cross_generator.unseen_manipulations`); with none, `video_auc_unseen` is
    NaN and `min_unseen_video_auc` is refused.
    """
    model_specs = [
        tfma.ModelSpec(
            name=name,
            signature_name=contract.SERVING_TF_EXAMPLE,
            label_key=contract.LABEL_KEY,
            prediction_key=contract.OUTPUT_KEY,
            model_type=MODEL_TYPE,
            is_baseline=name == BASELINE,
        )
        for name in (CANDIDATE, BASELINE)
    ]
    features = CLIP_SLICE_FEATURES if temporal else SLICE_FEATURES
    return tfma.EvalConfig(
        model_specs=model_specs,
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=[f]) for f in features), SPAN_SLICE],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[*_metric_configs(blessing), _cross_generator_config(blessing, unseen_manipulations)]
            )
        ],
    )
