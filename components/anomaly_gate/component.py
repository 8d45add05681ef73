"""AnomalyGate: stops the pipeline before training when the data breaks the curated schema.

ExampleValidator only records anomalies; this component reads them and fails
with a message naming each offending feature. Its `result` output is what the
training branches wait on.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.anomaly_gate import executor


class DataValidationResult(types.Artifact):
    """A folder with `validation_result.json`: the splits checked and the anomalies found."""

    TYPE_NAME = "deepfake.DataValidationResult"  # <namespace>.<Title>, as Kubeflow V2 requires


class AnomalyGateSpec(types.ComponentSpec):
    PARAMETERS = {}
    INPUTS = {"anomalies": component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
    OUTPUTS = {"result": component_spec.ChannelParameter(type=DataValidationResult)}


class AnomalyGate(base_component.BaseComponent):
    SPEC_CLASS = AnomalyGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, anomalies: types.BaseChannel):
        super().__init__(spec=AnomalyGateSpec(anomalies=anomalies, result=types.Channel(type=DataValidationResult)))
