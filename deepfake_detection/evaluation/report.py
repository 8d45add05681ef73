"""What an Evaluator run found, in a few lines a person can read: metrics, blessing and why."""

import math
import os
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers import eval_config_writer

from deepfake_detection import component_ids, contract
from deepfake_detection.evaluation import cross_generator, model_card, operating_point, video_metrics
from deepfake_detection.evaluation.eval_config import BASELINE, CANDIDATE, SPAN_SLICE, STRICT
from deepfake_detection.models import warm_start

BLESSED_FILE = "BLESSED"
FRAME_METRICS = ("auc", "binary_accuracy", "binary_crossentropy", "precision", "recall", "f1_score", "example_count")
VIDEO_METRICS = tuple(video_metrics.metric_name(statistic) for statistic in video_metrics.STATISTICS)


def overall_metrics(evaluation_uri: str, model_name: str = CANDIDATE) -> Dict[str, float]:
    """The overall slice's frame, video and cross-generator metrics of one model of the evaluation."""
    for metrics in tfma.load_metrics(evaluation_uri):
        if metrics.slice_key.single_slice_keys:
            continue
        values = {}
        for item in metrics.metric_keys_and_values:
            key = item.key
            if key.model_name not in (model_name, "") or key.HasField("sub_key") or key.is_diff:
                continue
            wanted = key.name in FRAME_METRICS + VIDEO_METRICS or cross_generator.parse_metric_name(key.name)
            if wanted and item.value.HasField("double_value"):
                values[key.name] = item.value.double_value.value
        return values
    return {}


def _allowed_span_drop(evaluation_uri: str) -> Optional[float]:
    """The forgetting guard's allowed AUC drop per span in the evaluation's own EvalConfig; None when it ran
    without one (no baseline yet: TFX's Evaluator drops change thresholds)."""
    eval_config = eval_config_writer.load_eval_run(evaluation_uri)[0]
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            for per_slice in metric.per_slice_thresholds:
                guarded = metric.class_name == "AUC" and list(per_slice.slicing_specs) == [SPAN_SLICE]
                if guarded and per_slice.threshold.HasField("change_threshold"):
                    return max(0.0, -per_slice.threshold.change_threshold.absolute.value - STRICT)
    return None


def _span_of(slice_key: tfma.proto.metrics_for_slice_pb2.SliceKey) -> Optional[int]:
    keys = list(slice_key.single_slice_keys)
    if len(keys) == 1 and keys[0].column == contract.SPAN_FEATURE:
        return keys[0].int64_value
    return None


def forgetting_guard(evaluation_uri: str) -> Optional[Dict[str, Any]]:
    """The forgetting guard of one evaluation: per span, the candidate's and the baseline's AUC and whether
    the drop stayed within the bound; `held` for all of them. None when it did not apply (no baseline)."""
    max_drop = _allowed_span_drop(evaluation_uri)
    if max_drop is None:
        return None
    aucs: Dict[int, Dict[str, float]] = {}
    for metrics in tfma.load_metrics(evaluation_uri):
        span = _span_of(metrics.slice_key)
        for item in metrics.metric_keys_and_values if span is not None else ():
            key = item.key
            if key.name == "auc" and not key.is_diff and not key.HasField("sub_key"):
                aucs.setdefault(span, {})[key.model_name] = item.value.double_value.value
    failed = {
        _span_of(per_slice.slice_key)
        for per_slice in tfma.load_validation_result(evaluation_uri).metric_validations_per_slice
        if any(f.metric_key.name == "auc" and f.metric_key.is_diff for f in per_slice.failures)
    }
    spans = [
        {
            "span": span,
            "candidate_auc": values.get(CANDIDATE, float("nan")),
            "baseline_auc": values.get(BASELINE, float("nan")),
            "held": span not in failed,
        }
        for span, values in sorted(aucs.items())
    ]
    return {"max_auc_drop": max_drop, "held": bool(spans) and all(s["held"] for s in spans), "spans": spans}


def format_forgetting_guard(guard: Optional[Mapping[str, Any]]) -> str:
    """`forgetting guard held (AUC per span, candidate/baseline, allowed drop 0.020): span 1 0.912/0.925, ...`."""
    if guard is None:
        return "forgetting guard: no baseline yet"
    if not guard["spans"]:
        return f"forgetting guard FAILED: no example carries the {contract.SPAN_FEATURE!r} feature"
    spans = ", ".join(
        f"span {s['span']} {s['candidate_auc']:.3f}/{s['baseline_auc']:.3f}{'' if s['held'] else ' (dropped)'}"
        for s in guard["spans"]
    )
    outcome = "held" if guard["held"] else "FAILED"
    bound = f"allowed drop {guard['max_auc_drop']:.3f}"
    return f"forgetting guard {outcome} (AUC per span, candidate/baseline, {bound}): {spans}"


def _slice_text(slice_key: tfma.proto.metrics_for_slice_pb2.SliceKey) -> str:
    parts = [f"{k.column}={k.bytes_value.decode() or k.int64_value}" for k in slice_key.single_slice_keys]
    return ", ".join(parts) or "overall"


def blessing_failures(evaluation_uri: str) -> List[str]:
    """Why the model was not blessed: one line per failed threshold; empty when it was blessed."""
    result = tfma.load_validation_result(evaluation_uri)
    if result.validation_ok:
        return []
    lines = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            value = failure.metric_value.double_value.value
            bound = failure.metric_threshold
            name = failure.metric_key.name + (" change vs. baseline" if failure.metric_key.is_diff else "")
            lines.append(f"{name} = {value:.4f} on {_slice_text(per_slice.slice_key)} fails {_threshold_text(bound)}")
    lines.extend(
        f"no examples in the slice {list(spec.feature_keys)} that a threshold names" for spec in result.missing_slices
    )
    return lines or ["validation failed (see the Evaluator's validations file)"]


def _threshold_text(threshold: tfma.MetricThreshold) -> str:
    if threshold.HasField("value_threshold"):
        return f"lower bound {threshold.value_threshold.lower_bound.value:g}"
    if threshold.HasField("change_threshold"):
        return f"allowed change {threshold.change_threshold.absolute.value:+.4g}"
    return str(threshold).replace("\n", " ")


def is_blessed(blessing_uri: str) -> bool:
    return tf.io.gfile.exists(os.path.join(blessing_uri, BLESSED_FILE))


def format_auc(metrics: Mapping[str, Any]) -> str:
    """A trained model's eval AUC, or `undefined (...)` when the eval split holds one class only.

    Keras reports 0.0 for an AUC over one class; that number would read as a
    model that is always wrong.
    """
    real, fake = metrics.get(contract.EVAL_REAL_EXAMPLES), metrics.get(contract.EVAL_FAKE_EXAMPLES)
    if real is not None and fake is not None and (real == 0 or fake == 0):
        missing = "real" if real == 0 else "fake"
        return f"undefined (the eval split has no {missing} example: {real} real, {fake} fake)"
    return f"{metrics['auc']:.3f}"


def starting_text(trained: Mapping[str, Any]) -> str:
    """Where a trained model's training started, from its eval metrics (`warm_start.START_KEY`): `warm start from
    URI (5 epochs)` or `fresh start: why (12 epochs)`, and its locator's when it differs; "" for models that
    record none (an ensemble is fitted, not trained)."""
    parts = []
    for label, key in (("", warm_start.START_KEY), ("locator: ", warm_start.LOCATOR_START_KEY)):
        if key in trained:
            parts.append(label + warm_start.StartingPoint.from_dict(trained[key]).describe())
    if not parts:
        return ""
    if len(parts) == 2 and parts[1] == "locator: " + parts[0]:
        parts.pop()
    epochs = trained.get(warm_start.EPOCHS_TRAINED_KEY)
    return "; ".join(parts) + (f" ({epochs} epochs)" if epochs is not None else "")


def training_start(trained: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The model card's record of where training started (`starting_text` and its parts), None without one."""
    text = starting_text(trained)
    if not text:
        return None
    return {
        "summary": text,
        "classifier": trained.get(warm_start.START_KEY),
        "locator": trained.get(warm_start.LOCATOR_START_KEY),
        "epochs_trained": trained.get(warm_start.EPOCHS_TRAINED_KEY),
    }


def format_metrics(values: Dict[str, float]) -> str:
    def show(name: str) -> str:
        value = values.get(name, float("nan"))
        return "-" if math.isnan(value) else f"{value:.3f}"

    video = video_metrics.metric_name
    return (
        f"AUC {show('auc')}  accuracy {show('binary_accuracy')}  log loss {show('binary_crossentropy')}  "
        f"F1 {show('f1_score')}  | video AUC {show(video(video_metrics.AUC))}  "
        f"video log loss {show(video(video_metrics.LOG_LOSS))}  "
        f"({int(values.get(video(video_metrics.COUNT), 0))} videos, {int(values.get('example_count', 0))} faces)"
    )


def format_cross_generator(values: Mapping[str, float]) -> str:
    """`unseen video AUC 0.812 | face_swap 0.80 poisson_swap (seen) 0.95 | c23 0.86 c40 0.75`; "" without them.

    An undefined AUC reads `undefined (why)`, from the video counts beside it.
    """
    groups = [
        parsed
        for parsed in map(cross_generator.parse_metric_name, values)
        if parsed and parsed.statistic == cross_generator.AUC
    ]
    if not groups:
        return ""

    def show(group: cross_generator.MetricName, digits: int) -> str:
        auc = values[cross_generator.metric_name(*group)]
        if not cross_generator.is_undefined(auc):
            return f"{auc:.{digits}f}"
        fakes, reals = (
            values.get(cross_generator.metric_name(statistic, *group[1:]))
            for statistic in (cross_generator.FAKES, cross_generator.REALS)
        )
        if fakes is None or reals is None:
            return "undefined"
        at = group.value if group.feature == contract.COMPRESSION_KEY else None
        return f"undefined ({cross_generator.undefined_reason(int(fakes), int(reals), group.seen, at)})"

    def part(feature: str) -> str:
        chosen = sorted((g for g in groups if g.feature == feature), key=lambda g: g.value)
        return " ".join(f"{g.value}{' (seen)' if g.seen else ''} {show(g, 2)}" for g in chosen)

    overall = [g for g in groups if g.feature is None and not g.seen]
    parts = [f"unseen video AUC {show(overall[0], 3) if overall else 'undefined'}"]
    parts += [text for text in (part(contract.MANIPULATION_KEY), part(contract.COMPRESSION_KEY)) if text]
    return " | ".join(parts)


def latest_output_dirs(pipeline_root: str, output_key: str, component_prefix: str = "") -> Dict[str, str]:
    """{component id: its latest execution's `output_key` folder} under a local pipeline root."""
    latest: Dict[str, tuple] = {}
    for path in tf.io.gfile.glob(os.path.join(pipeline_root, f"{component_prefix}*", output_key, "*")):
        component, _, execution = path.rstrip("/").split("/")[-3:]
        if execution.isdigit() and int(execution) >= latest.get(component, (-1, ""))[0]:
            latest[component] = (int(execution), path)
    return {component: path for component, (_, path) in sorted(latest.items())}


def evaluation_lines(pipeline_root: str, serving_model_dir: str = "") -> List[str]:
    """Per evaluated model: its test metrics, its video AUCs on unseen manipulation kinds, whether it was
    blessed (and why not), where it was pushed, and the forgetting guard's AUC per span against the baseline."""
    blessings = latest_output_dirs(pipeline_root, "blessing", component_ids.node_id(component_ids.EVALUATOR, ""))
    pushes = latest_output_dirs(pipeline_root, "pushed_model", component_ids.node_id(component_ids.PUSHER, ""))
    lines = []
    evaluations = latest_output_dirs(pipeline_root, "evaluation", component_ids.node_id(component_ids.EVALUATOR, ""))
    for component, evaluation_uri in evaluations.items():
        name = component_ids.model_of(component)
        metrics = overall_metrics(evaluation_uri)
        lines.append(f"{name:<16} {format_metrics(metrics)}")
        cross = format_cross_generator(metrics)
        if cross:
            lines.append(f"{'':<16} {cross}")
        blessing_uri = blessings.get(component)
        if blessing_uri and is_blessed(blessing_uri):
            pushed = pushes.get(component_ids.node_id(component_ids.PUSHER, name))
            where = os.path.join(serving_model_dir, name) if serving_model_dir else ""
            if pushed and tf.io.gfile.listdir(pushed):
                lines.append(f"{'':<16} blessed; pushed to {where}")
            else:
                lines.append(f"{'':<16} blessed; not pushed (no serving directory)")
        else:
            reasons = "; ".join(blessing_failures(evaluation_uri))
            lines.append(f"{'':<16} NOT blessed, not pushed: {reasons}")
        lines.append(f"{'':<16} {format_forgetting_guard(forgetting_guard(evaluation_uri))}")
    return lines


def _rate_text(rate: Mapping[str, Any]) -> str:
    low, high = rate["ci95"]
    return f"{rate['count']}/{rate['of']} ({low:.0%}-{high:.0%})"


def operating_point_lines(pipeline_root: str) -> List[str]:
    """Per model card of the latest run: the fitted point, how it was fitted, and what it achieves on the test
    split (fakes caught, reals accused, uncertain share) with 95 % intervals, and the calibration error."""
    lines = []
    for component, card_uri in latest_output_dirs(pipeline_root, "model_card", component_ids.MODEL_CARD).items():
        card = model_card.read_card(card_uri)
        fitted = card and card.get("operating_point")
        name = component_ids.model_of(component)
        if not fitted:
            lines.append(f"{name:<16} no operating point: every verdict is uncertain")
            continue
        lines.append(
            f"{name:<16} fake at P >= {fitted['fake_threshold']:.3f}, real under {fitted['real_threshold']:.3f} "
            f"(fitted on {fitted['real_videos']} real and {fitted['fake_videos']} fake videos; {fitted['notes']})"
        )
        rates = card.get("test_rates")
        if rates:
            lines.append(
                f"{'':<16} test: fakes caught {_rate_text(rates['fakes_caught'])}, reals accused "
                f"{_rate_text(rates['reals_accused'])}, uncertain {_rate_text(rates['uncertain'])}; calibration "
                f"error {rates['ece_raw']:.3f} raw, {rates['ece_calibrated']:.3f} calibrated"
            )
        if fitted["fake_method"] != operating_point.METHOD_EMPIRICAL:
            lines.append(
                f"{'':<16} too few real videos to measure the {fitted['false_alarm_budget']:.0%} false-alarm budget: "
                "the threshold is set conservatively from the real scores (see the model card)"
            )
    return lines
