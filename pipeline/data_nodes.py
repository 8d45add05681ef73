"""The pipeline's data half, before any model: the newest span's videos -> examples -> statistics -> validation
against the curated schema and drift from the previous span -> the gate; and the channels the model branches read
(the window of spans). `pipeline.create_pipeline` puts it in front of the model branches."""

import dataclasses
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

from tfx import v1 as tfx
from tfx.components.distribution_validator.component import DistributionValidator
from tfx.dsl.components.base.base_node import BaseNode
from tfx.dsl.input_resolution import canned_resolver_functions as canned
from tfx.orchestration import data_types
from tfx.proto import distribution_validator_pb2
from tfx.types import BaseChannel

from components.anomaly_gate import AnomalyGate
from components.video_example_gen import spans
from components.video_example_gen.component import CLIP_EXAMPLES_KEY, EXAMPLES_KEY, VideoExampleGen
from deepfake_detection import contract

if TYPE_CHECKING:  # the settings are the factory's; an import at run time would be circular
    from pipeline.pipeline import PipelineSettings

VIDEO_EXAMPLE_GEN_ID = "VideoExampleGen"
BASELINE_STATISTICS_GEN_ID = "BaselineStatisticsGen"
DISTRIBUTION_VALIDATOR_ID = "DistributionValidator"


def _input_config(span_pattern: Union[str, data_types.RuntimeParameter]) -> Union[str, data_types.RuntimeParameter]:
    """The ingest's TFX input config: built from a span pattern, or a runtime parameter that holds one."""
    return (
        span_pattern if isinstance(span_pattern, data_types.RuntimeParameter) else spans.input_config_json(span_pattern)
    )


def _all_spans(example_gen: BaseNode, output_key: str) -> BaseChannel:
    """Every published output `output_key` of the ingest, of this run and the earlier ones (each a span)."""
    return tfx.dsl.Channel(
        type=tfx.types.standard_artifacts.Examples, producer_component_id=example_gen.id, output_key=output_key
    )


def _window(example_gen: BaseNode, output_key: str, train_spans: Optional[int]) -> BaseChannel:
    """The newest `train_spans` spans' examples (latest version of each), as TFX's rolling range resolves them;
    None: the span this run ingested."""
    if train_spans is None:
        return example_gen.outputs[output_key]
    return canned.rolling_range(_all_spans(example_gen, output_key), num_spans=train_spans, min_spans=1)


def _drift_nodes(
    example_gen: BaseNode,
    statistics_gen: BaseNode,
    drift_config: distribution_validator_pb2.DistributionValidatorConfig,
) -> List[BaseNode]:
    """The previous span's statistics and TFX's DistributionValidator between them and the newest span's.

    The previous span is the older of the two newest (TFX's rolling range); on
    the first span it is that span itself, and the comparison says so. Its
    statistics cover the train split only, the one compared, and without the
    schema, whose image domain would decode every crop again.
    """
    previous_span = canned.pick(
        canned.rolling_range(_all_spans(example_gen, EXAMPLES_KEY), num_spans=2, min_spans=1), 0
    )
    baseline = tfx.components.StatisticsGen(
        examples=previous_span, exclude_splits=[contract.EVAL_SPLIT, contract.TEST_SPLIT]
    ).with_id(BASELINE_STATISTICS_GEN_ID)
    baseline.add_upstream_node(example_gen)
    validator = DistributionValidator(
        statistics=statistics_gen.outputs["statistics"],
        baseline_statistics=baseline.outputs["statistics"],
        config=drift_config,
        include_split_pairs=[(contract.TRAIN_SPLIT, contract.TRAIN_SPLIT)],
    ).with_id(DISTRIBUTION_VALIDATOR_ID)
    return [baseline, validator]


def data_nodes(
    data_root: Union[str, data_types.RuntimeParameter], schema_path: str, settings: "PipelineSettings"
) -> Tuple[List[BaseNode], "DataChannels"]:
    """Newest span's videos -> examples -> statistics -> validation against the curated schema and drift from
    the previous span -> the gate (last); and the channels the model branches read: the window of spans."""
    example_gen = VideoExampleGen(
        input_base=data_root,
        input_config=_input_config(settings.span_pattern),
        layout=settings.layout,
        ingest_config=settings.ingest_config,
        code_version=settings.code_version,
    ).with_id(VIDEO_EXAMPLE_GEN_ID)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs[EXAMPLES_KEY], schema=schema_gen.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    nodes = [example_gen, schema_gen, statistics_gen, example_validator]
    drift: Dict[str, BaseChannel] = {}
    if settings.drift_config is not None:
        baseline, validator = _drift_nodes(example_gen, statistics_gen, settings.drift_config)
        nodes += [baseline, validator]
        drift = {"drift": validator.outputs["anomalies"], "baseline_statistics": baseline.outputs["statistics"]}
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"], on_drift=settings.on_drift, **drift)
    channels = DataChannels(
        _window(example_gen, EXAMPLES_KEY, settings.train_spans),
        _window(example_gen, CLIP_EXAMPLES_KEY, settings.train_spans),
        example_gen.outputs["ingest_report"],
        anomaly_gate,
        statistics_gen.outputs["statistics"],
    )
    return [*nodes, anomaly_gate], channels


@dataclasses.dataclass(frozen=True)
class DataChannels:
    """What the model branches take from the data nodes: the examples, the clips, the ingest report, the gate."""

    examples: BaseChannel
    clip_examples: BaseChannel
    ingest_report: BaseChannel
    gate: BaseNode
    # The examples' statistics, which each pushed version carries for drift (docs/drift.md).
    statistics: Optional[BaseChannel] = None
