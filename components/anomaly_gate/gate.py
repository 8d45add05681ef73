"""Turns TFDV anomalies into readable messages that name the split and the feature, and drift into one line."""

import re
from typing import Dict, List, Optional

from tensorflow_metadata.proto.v0 import anomalies_pb2

# TFDV's drift reasons read "... is 0.52 (up to six significant digits), above the threshold 0.1."
_NUMBER = r"([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
_DISTANCE = re.compile(rf" is {_NUMBER} .*above the threshold {_NUMBER}")


def anomaly_messages(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> List[str]:
    """One line per anomaly: `split 'train', feature 'label': <short> (<description>)`."""
    messages = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            messages.append(f"split {split!r}, feature {feature!r}: {info.short_description} ({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            messages.append(f"split {split!r}, whole dataset: {info.short_description} ({info.description})")
    return messages


def drifted_features(anomalies: anomalies_pb2.Anomalies) -> List[dict]:
    """The features DistributionValidator flagged, each with its distance and threshold (from TFDV's reason)."""
    drifted = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        for reason in info.reason:
            match = _DISTANCE.search(reason.description)
            distance, threshold = (float(match.group(1)), float(match.group(2))) if match else (None, None)
            drifted.append({"feature": feature, "distance": distance, "threshold": threshold})
    return drifted


def drift_line(drift: Optional[dict]) -> str:
    """`Drift (span N against span M): none`, or the features past their thresholds, or why none was measured."""
    if not drift:
        return "Drift: not measured (no drift check in this pipeline)"
    span, baseline = drift["span"], drift["baseline_span"]
    if baseline is None or baseline == span:
        return f"Drift (span {span}): no earlier span to compare with"
    features = ", ".join(
        f"{d['feature']} ({d['distance']:.3g} > {d['threshold']:.3g})" if d["distance"] is not None else d["feature"]
        for d in drift["features"]
    )
    return f"Drift (span {span} against span {baseline}): {features or 'none'}"


class DataAnomaliesError(RuntimeError):
    """Raised to stop a run whose examples do not match the curated schema."""

    def __init__(self, messages: List[str]):
        self.messages = messages
        super().__init__(
            "Data validation failed: the examples do not match the curated schema, so the run stops before "
            "training.\n  " + "\n  ".join(messages)
        )


class DataDriftError(RuntimeError):
    """Raised with `--on-drift block` to stop a run whose newest span drifted from the previous one."""

    def __init__(self, line: str):
        super().__init__(f"{line}\nThe run stops before training (--on-drift block); the anomalies are in ML Metadata.")
