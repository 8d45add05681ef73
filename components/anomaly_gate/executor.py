"""Executor of AnomalyGate: fails the run when ExampleValidator found anomalies, or on drift when told to."""

import json
import logging
import os
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.anomaly_gate.gate import (
    DataAnomaliesError,
    DataDriftError,
    anomaly_messages,
    drift_line,
    drifted_features,
)
from deepfake_detection import contract

RESULT_FILE_NAME = "validation_result.json"
# Where DistributionValidator writes the anomalies of each (statistics split, baseline split) pair.
SPLIT_PAIR_PREFIX = "SplitPair-"


def _read_anomalies(path: str) -> anomalies_pb2.Anomalies:
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
    return anomalies


def load_anomalies(anomalies_artifact: types.Artifact) -> Dict[str, anomalies_pb2.Anomalies]:
    """Reads ExampleValidator's per-split `SchemaDiff.pb` files."""
    return {
        split: _read_anomalies(
            os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), DEFAULT_FILE_NAME)
        )
        for split in artifact_utils.decode_split_names(anomalies_artifact.split_names)
    }


def load_drift(drift: types.Artifact, baseline_statistics: List[types.Artifact]) -> dict:
    """DistributionValidator's verdict: the spans compared and the features past their thresholds (every split
    pair it compared; none without a baseline)."""
    features: List[dict] = []
    for pair in artifact_utils.decode_split_names(drift.split_names):
        path = os.path.join(drift.uri, SPLIT_PAIR_PREFIX + pair, DEFAULT_FILE_NAME)
        features += drifted_features(_read_anomalies(path))
    worst: Dict[str, dict] = {}
    for feature in features:
        kept = worst.get(feature["feature"])
        if kept is None or (feature["distance"] or 0.0) > (kept["distance"] or 0.0):
            worst[feature["feature"]] = feature
    baseline_span = baseline_statistics[0].span if baseline_statistics else None
    return {"span": drift.span, "baseline_span": baseline_span, "features": list(worst.values())}


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        on_drift = exec_properties.get("on_drift") or contract.ON_DRIFT_WARN
        if on_drift not in contract.ON_DRIFT_CHOICES:
            raise ValueError(f"on_drift={on_drift!r}: expected one of {contract.ON_DRIFT_CHOICES}")
        anomalies = load_anomalies(artifact_utils.get_single_instance(input_dict["anomalies"]))
        messages = anomaly_messages(anomalies)
        drift: Optional[dict] = None
        if input_dict.get("drift"):
            drift_artifact = artifact_utils.get_single_instance(input_dict["drift"])
            drift = load_drift(drift_artifact, input_dict.get("baseline_statistics") or [])
        result = artifact_utils.get_single_instance(output_dict["result"])
        summary = {"splits": sorted(anomalies), "anomalies": messages, "drift": drift, "on_drift": on_drift}
        with tf.io.gfile.GFile(os.path.join(result.uri, RESULT_FILE_NAME), "w") as f:
            f.write(json.dumps(summary, indent=1))
        if messages:
            raise DataAnomaliesError(messages)
        line = drift_line(drift)
        logging.info("Data validation passed for splits %s; %s", sorted(anomalies), line)
        if on_drift == contract.ON_DRIFT_BLOCK and drift and drift["features"]:
            raise DataDriftError(line)
