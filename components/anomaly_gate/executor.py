"""Executor of AnomalyGate: fails the run when ExampleValidator found anomalies."""

import json
import logging
import os
from typing import Any, Dict, List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.anomaly_gate.gate import DataAnomaliesError, anomaly_messages

RESULT_FILE_NAME = "validation_result.json"


def load_anomalies(anomalies_artifact: types.Artifact) -> Dict[str, anomalies_pb2.Anomalies]:
    """Reads ExampleValidator's per-split `SchemaDiff.pb` files."""
    result = {}
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), DEFAULT_FILE_NAME)
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
        result[split] = anomalies
    return result


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        anomalies = load_anomalies(artifact_utils.get_single_instance(input_dict["anomalies"]))
        messages = anomaly_messages(anomalies)
        result = artifact_utils.get_single_instance(output_dict["result"])
        with tf.io.gfile.GFile(os.path.join(result.uri, RESULT_FILE_NAME), "w") as f:
            f.write(json.dumps({"splits": sorted(anomalies), "anomalies": messages}, indent=1))
        if messages:
            raise DataAnomaliesError(messages)
        logging.info("Data validation passed for splits %s", sorted(anomalies))
