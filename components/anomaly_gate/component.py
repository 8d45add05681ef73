"""AnomalyGate: stops the pipeline before training when the data breaks the curated schema, or drifted.

ExampleValidator and DistributionValidator only record anomalies; this
component reads them and fails with a message naming each offending feature.
Drift between the newest span and the previous one (DistributionValidator's
anomalies, given `drift`) stops the run when `on_drift` is `block` and is
recorded either way. Its `result` output is what the training branches wait on.
"""

from typing import Optional, Union

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import component_spec, standard_artifacts

from components.anomaly_gate import executor
from deepfake_detection import contract


class DataValidationResult(types.Artifact):
    """A folder with `validation_result.json`: the splits checked, the anomalies found and the drift measured."""

    TYPE_NAME = "deepfake.DataValidationResult"  # <namespace>.<Title>, as Kubeflow V2 requires


class AnomalyGateSpec(types.ComponentSpec):
    PARAMETERS = {"on_drift": component_spec.ExecutionParameter(type=str, optional=True)}
    INPUTS = {
        "anomalies": component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "drift": component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies, optional=True),
        "baseline_statistics": component_spec.ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True
        ),
    }
    OUTPUTS = {"result": component_spec.ChannelParameter(type=DataValidationResult)}


class AnomalyGate(base_component.BaseComponent):
    SPEC_CLASS = AnomalyGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        anomalies: types.BaseChannel,
        drift: Optional[types.BaseChannel] = None,
        baseline_statistics: Optional[types.BaseChannel] = None,
        on_drift: Union[str, data_types.RuntimeParameter] = contract.ON_DRIFT_WARN,
    ):
        """`drift`: DistributionValidator's anomalies, with the `baseline_statistics` it compared against."""
        spec = AnomalyGateSpec(
            anomalies=anomalies,
            drift=drift,
            baseline_statistics=baseline_statistics,
            on_drift=on_drift,
            result=types.Channel(type=DataValidationResult),
        )
        super().__init__(spec=spec)
